"""Push many adversarial camera messages through perception_node's frame path; count how each ended.

    python tools/fuzz_node.py [--count 10000] [--seed 0] [--json PATH]

The path is the node's own (hydranet_ros.runtime.intake.offer in this thread, outputs.render.render in the
newest-frame-wins FrameWorker) with a small real pipeline (random HydraNet 'kitti', 64x48 input,
CPU). Messages come from test/adversarial_messages.py, the generator the CI fuzz test uses:
malformed sensor_msgs/Image (wrong step, short/long data, zero/huge/negative sizes, unknown and
misspelled encodings, big-endian flags on 8-bit data, NaN/Inf float images), broken JPEG/PNG
CompressedImage, and CameraInfo with zero/NaN/Inf intrinsics.

CompressedImage cases include edits aimed at the containers themselves
(test/container_mutations.py): PNG chunk lengths, names, order, split or cut image data, bad
CRCs, ancillary chunks (text bombs, animation control); JPEG segment lengths, dropped or repeated
segments, scans cut short with the end marker put back, hundreds of scans, restart markers, fill
bytes, comments, bytes after the end.

Prints the counts by outcome (published, rejected.<reason>), CameraInfo outcomes, escapes
(exceptions that left the path, a blocked worker, inconsistent output), well-formed frames that
were refused, the slowest offer (the time the subscription callback would spend: conversion and
decoding) with the case that took it, and the process RSS after a warm-up and at the end.
Targets: no escape, no well-formed frame refused, no offer over --max-offer-ms (250), RSS growth
after warm-up under 5 %. Exit status 1 if a target fails.
"""

from __future__ import annotations

import argparse
import gc
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


def rss_mib() -> float:
    """This process's resident memory from /proc (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


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
    parser.add_argument("--warmup", type=int, default=1000, help="messages before the first RSS reading (default 1000)")
    parser.add_argument("--max-offer-ms", type=float, default=250.0, help="target for the slowest offer (default 250)")
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
    rss_start = rss_mib()
    try:
        for index in range(args.count):
            if index == min(args.warmup, args.count - 1):
                gc.collect()
                rss_start = rss_mib()
            case = any_case(draw, index)
            kinds[case.kind] += 1
            outcome = rig.push(case)
            if case.pristine and outcome.label != "published":
                refused_pristine.append(f"{case.kind} {case.mutations}: {outcome.label} {outcome.detail}")
    finally:
        rig.close()
        if saved_stderr is not None:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    elapsed = time.perf_counter() - started
    gc.collect()
    rss_end = rss_mib()
    growth = (rss_end - rss_start) / rss_start * 100.0 if rss_start else float("nan")

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
        "slowest_offer": rig.slowest_offer,
        "warmup_messages": args.warmup,
        "rss_after_warmup_mib": round(rss_start, 1),
        "rss_end_mib": round(rss_end, 1),
        "rss_growth_percent": round(growth, 2),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    report["targets"] = {
        "no_escapes": not rig.escapes,
        "no_well_formed_refused": not refused_pristine,
        f"slowest_offer_below_{args.max_offer_ms:g}_ms": rig.max_offer_ms < args.max_offer_ms,
        "rss_growth_below_5_percent": growth < 5.0,
    }
    print(f"{args.count} messages ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}) in {elapsed:.1f} s, seed {args.seed}")
    print(f"{'outcome':40s} {'count':>7s}")
    for label, count in report["outcomes"].items():
        print(f"{label:40s} {count:7d}")
    print(f"{'camera_info outcome':40s} {'count':>7s}")
    for label, count in report["camera_info_outcomes"].items():
        print(f"{label:40s} {count:7d}")
    print(f"escapes: {report['escapes']}   well-formed frames refused: {report['well_formed_refused']}")
    print(f"slowest offer (executor-side): {report['max_offer_ms']} ms: {report['slowest_offer'][:200]}")
    print(f"RSS after {args.warmup} messages -> end: {report['rss_after_warmup_mib']} -> {report['rss_end_mib']} MiB "
          f"({report['rss_growth_percent']:+.2f} %); load average {report['load_average']}")
    for line in report["escape_examples"] + report["well_formed_refused_examples"]:
        print("  " + line[:300])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("targets: " + ", ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in report["targets"].items()))
    return 0 if all(report["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
