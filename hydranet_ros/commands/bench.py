"""`hydranet bench`: per-stage latency of the pipeline as configured, on one frame, repeated."""

from __future__ import annotations

import argparse
import json

import numpy as np

from hydranet_ros.commands.common import add_pipeline_arguments, pipeline_from_args
from hydranet_ros.runtime.result import STAGES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=30, help="timed frames after warm-up (default: 30)")
    parser.add_argument("--frame-size", default="640x480", help="camera frame size WIDTHxHEIGHT (default: 640x480)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.runtime.pipeline import parse_size

    if args.frames < 1:
        raise ValueError("--frames must be at least 1")
    size = parse_size(args.frame_size)
    if size is None:
        raise ValueError("--frame-size needs WIDTHxHEIGHT")
    pipe = pipeline_from_args(args)
    frame = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    for _ in range(3):
        pipe.process(frame)
    timings = [pipe.process(frame).timings_ms for _ in range(args.frames)]
    rows = {stage: np.array([t[stage] for t in timings]) for stage in (*STAGES, "total")}
    print(f"{pipe.info['backend']} {pipe.info['precision']} {pipe.info['device']}, frame {args.frame_size} -> network "
          f"{'x'.join(map(str, pipe.network_size_for(*size)))} (--size {args.size})")
    print(f"{'stage':12s} {'median ms':>10s} {'p90 ms':>10s}")
    figures = {}
    for stage, values in rows.items():
        figures[stage] = {"median_ms": float(np.median(values)), "p90_ms": float(np.percentile(values, 90))}
        print(f"{stage:12s} {figures[stage]['median_ms']:10.2f} {figures[stage]['p90_ms']:10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": pipe.info, "frame_size": args.frame_size, "stages": figures}, f, indent=2)
    return 0
