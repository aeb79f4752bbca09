"""`hydranet bench`: per-stage latency of the pipeline as configured, on one frame, repeated."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from hydranet_ros.commands.common import add_pipeline_arguments, network_options, pipeline_from_args, positive_int
from hydranet_ros.errors import UsageError
from hydranet_ros.runtime.sizes import frame_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=positive_int, default=30, help="timed frames after warm-up (default: 30)")
    parser.add_argument("--frame-size", default="640x480", help="camera frame size WIDTHxHEIGHT (default: 640x480)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    add_pipeline_arguments(parser)


def check_json_path(path: str) -> Path:
    """Refuse, before the run, a --json path that cannot be written: a folder, or a missing or
    read-only folder around it."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--json {target}: that is a folder; name a file")
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"--json {target}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UsageError(f"--json {target}: not writable")
    return target


def run(args: argparse.Namespace) -> int:
    width, height = frame_size(args.frame_size)
    options = network_options(args)
    json_path = check_json_path(args.json) if args.json else None
    import numpy as np

    from hydranet_ros.runtime.result import STAGES

    pipe = pipeline_from_args(args)
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    for _ in range(3):
        pipe.process(frame)
    timings = [pipe.process(frame).timings_ms for _ in range(args.frames)]
    rows = {stage: np.array([t[stage] for t in timings]) for stage in (*STAGES, "total")}
    net_w, net_h = pipe.network_size_for(width, height)
    out_w, out_h = pipe.output_size_for(width, height)
    said = f" (--size {args.size})" if options.input_size is None or isinstance(options.input_size, str) else ""
    print(f"{pipe.info['backend']} {pipe.info['precision']} {pipe.info['device']}: frame {width}x{height} -> "
          f"network {net_w}x{net_h}{said} -> outputs {out_w}x{out_h}, {args.frames} frames")
    print(f"{'stage':12s} {'median ms':>10s} {'p90 ms':>10s}")
    figures = {}
    for stage, values in rows.items():
        figures[stage] = {"median_ms": float(np.median(values)), "p90_ms": float(np.percentile(values, 90))}
        print(f"{stage:12s} {figures[stage]['median_ms']:10.2f} {figures[stage]['p90_ms']:10.2f}")
    if json_path is not None:
        with open(json_path, "w") as f:
            json.dump({"info": pipe.info, "frame_size": f"{width}x{height}", "network_size": f"{net_w}x{net_h}",
                       "output_size": f"{out_w}x{out_h}", "frames": args.frames, "stages": figures}, f, indent=2)
    return 0
