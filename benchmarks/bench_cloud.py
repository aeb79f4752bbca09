"""What semantic/points costs on top of the CPU pipeline, at 640x480 and stride 1 by default.

    python benchmarks/bench_cloud.py [--size 640x480] [--stride 1] [--frames 15] [--threads N]
                                     [--backend auto|torch|openvino|onnxruntime] [--json PATH]

The shipped model, the KITTI sample resized to --size (network and outputs at --size), CameraInfo
from config/cameras/kitti_2011_09_30_cam2.yaml scaled to it. Two measurements, each timed in
turn frame by frame (a drift of the machine falls on all rows alike). --backend picks the CPU
engine as the node's `backend` parameter does (default auto: OpenVINO where installed, a
fixed-size engine; torch otherwise); the cloud's share is larger the faster the engine.

1. Whole frames, uint8 camera frame to message fields:
     pipeline           Pipeline.process for labels and depth (what the node runs for the images)
     + semantic/points  the same with confidence, then the cloud (cloud_points, PointCloud2 fields)
     + both clouds      semantic/points and semantic/obstacles
   ratio = median over frames of (row / the pipeline frame timed next to it).
2. The added work alone, repeated on one frame's network output: post-processing with and
   without the confidence softmax, and the cloud from held outputs. added = their difference plus
   the cloud; ratio = 1 + added / pipeline median. The same cost as 1., without the network's
   frame-to-frame noise (on a busy shared CPU that noise is larger than the cloud itself).

Target (issue 14): semantic/points adds at most 10 % to the pipeline; the verdict uses 2. and
prints 1. beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_pipeline import SAMPLE, timed_in_turn  # noqa: E402
from hydranet_ros.io.camera_info import read_camera_calibration, scale_camera_info  # noqa: E402
from hydranet_ros.model.checkpoints import load_weights  # noqa: E402
from hydranet_ros.outputs import cloud  # noqa: E402
from hydranet_ros.outputs.choices import CloudSettings, obstacle_classes, point_classes  # noqa: E402
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig  # noqa: E402

CALIBRATION = ROOT / "config" / "cameras" / "kitti_2011_09_30_cam2.yaml"
TARGET = 1.10


def stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(ms), "p90_ms": float(np.percentile(ms, 90)), "n": len(ms)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x480", help="frame, network and output size WxH (default 640x480)")
    parser.add_argument("--stride", type=int, default=1, help="the clouds' pixel stride (default 1)")
    parser.add_argument("--frames", type=int, default=15, help="timed frames per row (default 15)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--backend", default="auto", help="the CPU engine, as the node's parameter (default auto)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))

    weights = load_weights("default")
    pipe = Pipeline.from_model(weights.build_model(), weights.preset, PipelineConfig(backend=args.backend, device="cpu", input_size=(width, height)))
    image = cv2.imread(str(SAMPLE))[..., ::-1] if SAMPLE.is_file() else np.random.default_rng(0).integers(0, 255, (370, 1226, 3), np.uint8)
    frame = np.ascontiguousarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
    intrinsics = cloud.Intrinsics.from_camera_info(scale_camera_info(read_camera_calibration(CALIBRATION), width, height))
    # Metric depth for this camera's focal length, as the node passes CameraInfo's (frame = outputs here).
    focal = intrinsics.fx
    settings = CloudSettings(stride=args.stride)
    palette = cloud.packed_palette(pipe.preset.palette)
    keep_points = cloud.label_mask(point_classes(settings, pipe.preset))
    keep_obstacles = cloud.label_mask(obstacle_classes(settings, pipe.preset))
    images = frozenset({"labels", "depth"})
    with_confidence = images | {"confidence"}
    counts = {}

    def make_cloud(result, keep, name):
        points = cloud.cloud_points(result.depth_m, result.labels, result.confidence, intrinsics, keep=keep,
                                    stride=settings.stride, palette_packed=palette)
        counts[name] = len(points)
        return cloud.point_cloud_fields(points)

    held = pipe.process(frame, outputs=with_confidence, focal_px=focal)
    whole = {
        "pipeline": lambda: pipe.process(frame, outputs=images, focal_px=focal),
        "+ semantic/points": lambda: make_cloud(pipe.process(frame, outputs=with_confidence, focal_px=focal), keep_points, "points"),
        "+ both clouds": lambda: (lambda r: (make_cloud(r, keep_points, "points"),
                                             make_cloud(r, keep_obstacles, "obstacles")))(
            pipe.process(frame, outputs=with_confidence, focal_px=focal)),
    }
    whole_ms = dict(zip(whole, timed_in_turn(list(whole.values()), args.frames)))

    geometry = pipe.geometry_for(width, height)
    factor = pipe.depth_scale_for(geometry, focal).factor
    out_hw = pipe.output_size_for(width, height)[::-1]
    raw = pipe.engine(pipe._preprocess(frame, "rgb", geometry))
    parts = {
        "post-processing": lambda: pipe._postprocess(raw, geometry, factor, out_hw, images),
        "post-processing + confidence": lambda: pipe._postprocess(raw, geometry, factor, out_hw, with_confidence),
        "semantic/points from held outputs": lambda: make_cloud(held, keep_points, "points"),
    }
    parts_ms = dict(zip(parts, timed_in_turn(list(parts.values()), max(30, 4 * args.frames))))

    base = statistics.median(whole_ms["pipeline"])
    median = {name: statistics.median(ms) for name, ms in {**whole_ms, **parts_ms}.items()}
    added_ms = (median["post-processing + confidence"] - median["post-processing"]
                + median["semantic/points from held outputs"])
    parts_ratio = 1.0 + added_ms / base
    paired = {name: statistics.median(b / a for a, b in zip(whole_ms["pipeline"], ms)) for name, ms in whole_ms.items()}

    engine = pipe.info.get("backend", "?")
    print(f"bench_cloud  {datetime.date.today()}  {platform.node()}  engine {engine} (backend {args.backend})  torch "
          f"{torch.__version__}  threads {torch.get_num_threads()}  {width}x{height} stride {args.stride}  "
          f"weights {weights.source}")
    print(f"points {counts['points']} (semantic/points), {counts['obstacles']} (semantic/obstacles) of {width * height} pixels")
    print(f"| {'row':34s} | {'median ms':>9s} | {'p90 ms':>7s} | {'x pipeline':>10s} |")
    print(f"|{'-' * 36}|{'-' * 11}|{'-' * 9}|{'-' * 12}|")
    report_rows = []
    for name, ms in {**whole_ms, **parts_ms}.items():
        row = {"row": name, **stats(ms)}
        if name in paired:
            row["ratio_to_pipeline"] = paired[name]
        report_rows.append(row)
        ratio_text = f"{paired[name]:10.3f}" if name in paired else f"{'':10s}"
        print(f"| {name:34s} | {row['median_ms']:9.1f} | {row['p90_ms']:7.1f} | {ratio_text} |")
    verdict = "ok" if parts_ratio <= TARGET else "MISSED"
    print(f"semantic/points adds {added_ms:.1f} ms = {100 * (parts_ratio - 1):.1f} % to the pipeline's {base:.0f} ms "
          f"(target <= {100 * (TARGET - 1):.0f} %): {verdict};  whole frames in turn: "
          f"{100 * (paired['+ semantic/points'] - 1):+.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": str(datetime.date.today()), "machine": platform.node(), "cpu_count": __import__("os").cpu_count(),
            "backend": args.backend, "engine": engine, "torch": torch.__version__, "threads": torch.get_num_threads(), "size": f"{width}x{height}",
            "stride": args.stride, "frames": args.frames, "weights": weights.source, "points": counts,
            "rows": report_rows, "added_ms": added_ms, "points_ratio": parts_ratio,
            "points_ratio_whole_frames": paired["+ semantic/points"], "target": TARGET, "verdict": verdict,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
