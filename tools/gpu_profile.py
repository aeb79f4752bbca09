"""Where a GPU frame's time goes, kernel by kernel: the companion of benchmarks/bench_gpu.py for a
missed target, so that one device run already says which stage to work on.

    python tools/gpu_profile.py [--size 640x480] [--precision fp16] [--frames 20] [--json PATH]

Runs the eager torch pipeline (the same kernels the cuda-graph engine replays, but visible to the
profiler one by one) on a uint8 frame at --size, network at the same size, outputs at the input
size, and prints the CUDA kernels and copies by GPU time per frame, with the count of device
operations per frame (what a CUDA graph saves in launches). Needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydranet_ros.model.checkpoints import load_weights  # noqa: E402
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig  # noqa: E402

RESULTS = frozenset({"labels", "depth"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--precision", default="fp16", choices=("fp32", "fp16"))
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", help="write the kernel table here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_profile: needs a CUDA device (none on this machine)", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.lower().split("x"))
    weights = load_weights("default")
    config = PipelineConfig(backend="torch", device="cuda", precision=args.precision, input_size=(width, height),
                            output_size="input", strict=True)
    pipe = Pipeline.from_model(weights.build_model(), weights.preset, config)
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    for _ in range(10):
        pipe.process(frame, outputs=RESULTS)
    torch.cuda.synchronize()

    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.frames):
            pipe.process(frame, outputs=RESULTS)
        torch.cuda.synchronize()

    kernels: dict[str, dict[str, float]] = {}
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        entry = kernels.setdefault(event.name, {"calls": 0, "us": 0.0})
        entry["calls"] += 1
        entry["us"] += event.device_time_total if hasattr(event, "device_time_total") else event.cuda_time_total
    total_us = sum(k["us"] for k in kernels.values())
    launches = sum(k["calls"] for k in kernels.values())
    rows = sorted(kernels.items(), key=lambda kv: -kv[1]["us"])
    print(f"gpu_profile  torch {torch.__version__}  {torch.cuda.get_device_name()}  {args.size} {args.precision}  "
          f"{args.frames} frames: {total_us / args.frames / 1e3:.3f} ms of GPU work and {launches / args.frames:.0f} device ops per frame")
    print(f"{'us/frame':>9s} {'share':>6s} {'calls/frame':>11s}  kernel")
    for name, k in rows[:args.top]:
        print(f"{k['us'] / args.frames:9.1f} {100 * k['us'] / total_us:5.1f}% {k['calls'] / args.frames:11.1f}  {name[:110]}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "size": args.size, "precision": args.precision,
            "frames": args.frames, "gpu_ms_per_frame": total_us / args.frames / 1e3, "ops_per_frame": launches / args.frames,
            "kernels": [{"name": n, "us_per_frame": k["us"] / args.frames, "calls_per_frame": k["calls"] / args.frames} for n, k in rows],
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
