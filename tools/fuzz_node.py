"""Push many adversarial camera messages through perception_node's frame path; count how each ended.

    python tools/fuzz_node.py [--count 10000] [--seed 0] [--json PATH]

The path is the node's own (hydranet_ros.runtime.intake.offer in this thread, outputs.render.render in the
newest-frame-wins FrameWorker) with a small real pipeline (random HydraNet 'kitti', 64x48 input,
CPU). Messages come from test/adversarial_messages.py, the generator the CI fuzz test uses:
malformed sensor_msgs/Image (wrong step, short/long data, zero/huge/negative sizes, unknown and
misspelled encodings, big-endian flags on 8-bit data, NaN/Inf float images), broken JPEG/PNG
CompressedImage, and CameraInfo with zero/NaN/Inf intrinsics.

Prints the counts by outcome (published, rejected.<reason>), CameraInfo outcomes, escapes
(exceptions that left the path, a blocked worker, inconsistent output) and well-formed frames
that were refused. Exit status 1 if there was any escape or refused well-formed frame.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from adversarial_messages import NodePathRig, RngDraw, any_case  # noqa: E402
from hydranet_ros.model.hydranet import HydraNet  # noqa: E402
from hydranet_ros.presets import get_preset  # noqa: E402
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig  # noqa: E402


def _silence_native_stderr() -> int:
    """libjpeg and libpng print a line per broken file straight to fd 2; keep the report readable."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="messages to generate (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the counts here as JSON")
    parser.add_argument("--keep-stderr", action="store_true", help="let libjpeg/libpng warnings through")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    torch.set_num_threads(1)
    preset = get_preset("kitti")
    pipeline = Pipeline.from_model(HydraNet(preset).eval(), preset, PipelineConfig(input_size=(64, 48), device="cpu"))
    rig = NodePathRig(pipeline)
    draw = RngDraw(np.random.default_rng(args.seed))
    refused_pristine: list[str] = []
    kinds: Counter[str] = Counter()
    saved_stderr = None if args.keep_stderr else _silence_native_stderr()
    started = time.perf_counter()
    try:
        for index in range(args.count):
            case = any_case(draw, index)
            kinds[case.kind] += 1
            outcome = rig.push(case)
            if case.pristine and outcome.label != "published":
                refused_pristine.append(f"{case.kind}: {outcome.label} {outcome.detail}")
    finally:
        rig.close()
        if saved_stderr is not None:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    elapsed = time.perf_counter() - started

    report = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "count": args.count,
        "seed": args.seed,
        "seconds": round(elapsed, 1),
        "messages_by_kind": dict(kinds),
        "outcomes": dict(sorted(rig.counts.items(), key=lambda item: -item[1])),
        "camera_info_outcomes": dict(sorted(rig.camera_info_counts.items(), key=lambda item: -item[1])),
        "escapes": len(rig.escapes),
        "escape_examples": rig.escapes[:20],
        "well_formed_refused": len(refused_pristine),
        "well_formed_refused_examples": refused_pristine[:20],
        "max_offer_ms": round(rig.max_offer_ms, 2),
    }
    print(f"{args.count} messages ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}) in {elapsed:.1f} s, seed {args.seed}")
    print(f"{'outcome':40s} {'count':>7s}")
    for label, count in report["outcomes"].items():
        print(f"{label:40s} {count:7d}")
    print(f"{'camera_info outcome':40s} {'count':>7s}")
    for label, count in report["camera_info_outcomes"].items():
        print(f"{label:40s} {count:7d}")
    print(f"escapes: {report['escapes']}   well-formed frames refused: {report['well_formed_refused']}   "
          f"slowest offer (executor-side): {report['max_offer_ms']} ms")
    for line in report["escape_examples"] + report["well_formed_refused_examples"]:
        print("  " + line[:300])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["escapes"] or report["well_formed_refused"] else 0


if __name__ == "__main__":
    sys.exit(main())
