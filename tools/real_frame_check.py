"""The default model on the real KITTI frame at the sizes users launch: the acceptance figures.

    python tools/real_frame_check.py [--weights default] [--sizes 320x96,640x192,1226x370,640x480]
                                     [--mirror] [--backend auto] [--json real_frame.json]

Each size runs exactly what ``hydranet infer FRAME --size SIZE --output-size input --device cpu``
runs (the same Pipeline, the same geometry, the same default backend, no --focal: the training
camera is assumed), then scores:

- segmentation against the authors' ground truth (000099_segm_gt.png, void ignored): mIoU over
  the classes present, and the road's IoU;
- depth on ground-truth road pixels against flat-ground geometry: a camera 1.65 m above a flat
  road (KITTI's mounting height) sees road row v at depth z = fy * 1.65 / (v - v_horizon), with
  fy = 707.0912 px, the focal length of KITTI's 1226x370 frames (P_rect_02 of the 2011_09_30
  calibration; 721.5377 px at 1242x375 on 2011_09_26 drives) and v_horizon taken from the frame:
  the row where straight lines fitted to the left and right edges of the ground-truth road meet.
  Rows within 8 px of the horizon (beyond ~70 m, where a pixel is metres) are left out; the
  figure is the median of |predicted - geometric| / geometric.

Targets (issue 13): mIoU >= 0.50, road IoU >= 0.60, road depth median error <= 0.15 at every size.

``--mirror`` judges each size twice, on the frame and on its left-right mirror image (labels
mirrored with it; the road's horizon is found again). Training flips half its frames, so the
mirror image is as fair a test as the frame, and its different composition at every pixel of the
network input gives a second, partly independent figure: one frame is a noisy judge. The last
line then gives the means over all views and how many meet every target.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydranet_ros.presets import palettes  # noqa: E402
from hydranet_ros.train.datasets import read_colour_labels, read_rgb  # noqa: E402

KITTI_FOCAL_1226_PX = 707.0912  # fy of KITTI's 1226x370 frames (2011_09_30 calibration)
CAMERA_HEIGHT_M = 1.65
ROAD = 2
HORIZON_MARGIN_PX = 8
TARGETS = {"miou": 0.50, "road_iou": 0.60, "road_depth_median_rel_error": 0.15}
_REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout (from a git worktree further down: the nearest one above)
_SHARED = next((p / "shared" / "data" for p in _REPO.parents if (p / "shared" / "data").is_dir()), _REPO.parent / "shared" / "data")
DEFAULT_FRAME = _SHARED / "kitti" / "000099.png"


def road_horizon_row(labels: np.ndarray) -> float:
    """Row where lines through the left and right edges of the road (lower half) meet."""
    height = labels.shape[0]
    rows, lefts, rights = [], [], []
    for v in range(height // 2 + 20, height):
        cols = np.flatnonzero(labels[v] == ROAD)
        if cols.size > 10:
            rows.append(v)
            lefts.append(cols[0])
            rights.append(cols[-1])
    rows = np.asarray(rows, float)
    left = np.polyfit(rows, np.asarray(lefts, float), 1)  # column = a * row + b
    right = np.polyfit(rows, np.asarray(rights, float), 1)
    return float((right[1] - left[1]) / (left[0] - right[0]))


def flat_ground_depth(shape: tuple[int, int], horizon: float, fy: float) -> np.ndarray:
    rows = np.arange(shape[0], dtype=np.float64)[:, None] - horizon
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(rows > HORIZON_MARGIN_PX, fy * CAMERA_HEIGHT_M / rows, np.nan)
    return np.broadcast_to(depth, shape)


def judged_frame(frame_path: Path) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """The frame, its ground-truth labels, the road's horizon row and the flat-ground depth the
    road is judged against."""
    frame = read_rgb(frame_path)
    labels_gt = read_colour_labels(frame_path.with_name(frame_path.stem + "_segm_gt.png"), palettes.KITTI6)
    return (frame, labels_gt, *road_geometry(labels_gt))


def road_geometry(labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The road's horizon row in these labels and the flat-ground depth judged against."""
    horizon = road_horizon_row(labels)
    return horizon, flat_ground_depth(labels.shape, horizon, KITTI_FOCAL_1226_PX)


def score(labels_pred: np.ndarray, depth_pred: np.ndarray, labels_gt: np.ndarray, geometric: np.ndarray, num_classes: int) -> dict:
    keep = labels_gt != 255
    gt, pred = labels_gt[keep].astype(np.int64), labels_pred[keep].astype(np.int64)
    confusion = np.bincount(gt * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    inter = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - inter
    present = union > 0
    iou = np.where(present, inter / np.maximum(union, 1), np.nan)
    road = (labels_gt == ROAD) & np.isfinite(geometric)
    rel = np.abs(depth_pred[road] - geometric[road]) / geometric[road]
    rel = rel[np.isfinite(rel)]
    return {"miou": float(np.nanmean(iou)), "road_iou": float(iou[ROAD]),
            "iou_per_class": [None if np.isnan(v) else float(v) for v in iou],
            "road_depth_median_rel_error": float(np.median(rel)) if rel.size else float("nan"),
            "road_depth_pixels": int(rel.size)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="default")
    parser.add_argument("--frame", default=str(DEFAULT_FRAME))
    parser.add_argument("--sizes", default="320x96,640x192,1226x370,640x480")
    parser.add_argument("--mirror", action="store_true", help="judge the left-right mirror image too, and print means")
    parser.add_argument("--focal", type=float, help="pass --focal PX to the pipeline (default: none, as the infer command)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="auto", help="the engine (default auto, as users get: OpenVINO, then "
                        "ONNX Runtime, then torch on the CPU); every engine gets the same geometry")
    args = parser.parse_args(argv)

    import torch

    from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
    from hydranet_ros.runtime.sizes import parse_size

    torch.set_num_threads(args.threads)
    frame_path = Path(args.frame)
    frame, labels_gt, horizon, geometric = judged_frame(frame_path)
    views = [("frame", frame, labels_gt, geometric)]
    if args.mirror:
        mirrored = labels_gt[:, ::-1]
        views.append(("mirror", np.ascontiguousarray(frame[:, ::-1]), mirrored, road_geometry(mirrored)[1]))
    rows = []
    pipes = {}
    for size, (view, image, labels, ground) in ((s, v) for s in args.sizes.split(",") for v in views):
        if size not in pipes:  # one pipeline a size, for both views
            pipes[size] = Pipeline.create(PipelineConfig(weights=args.weights, backend=args.backend, device="cpu",
                                                         input_size=parse_size(size), output_size="input"))
        pipe = pipes[size]
        result = pipe.process(image, **({"focal_px": args.focal} if args.focal else {}))
        figures = score(result.labels, result.depth_m, labels, ground, pipe.preset.num_classes)
        figures["size"] = size
        figures["view"] = view
        figures["network_input"] = "x".join(str(v) for v in result.geometry.network_size) if getattr(result, "geometry", None) else size
        figures["ok"] = all(figures[k] >= v if k != "road_depth_median_rel_error" else figures[k] <= v for k, v in TARGETS.items())
        rows.append(figures)
        figures["backend"] = pipe.info["backend"]
        print(f"{size:>9}{' mirror' if view == 'mirror' else ''} ({figures['backend']}, network {figures['network_input']:>8}): mIoU {figures['miou']:.3f}  road IoU {figures['road_iou']:.3f}  "
              f"road depth median error {figures['road_depth_median_rel_error'] * 100:.1f} %  {'ok' if figures['ok'] else 'MISSED'}", flush=True)
        # Which classes hold the mIoU down is the first thing the next training run needs to know.
        print("          IoU per class: " + "  ".join(f"{name} {'-' if iou is None else f'{iou:.2f}'}" for name, iou
                                                    in zip(pipe.preset.class_names, figures["iou_per_class"])), flush=True)
    report = {"date": str(datetime.date.today()), "frame": str(frame_path), "weights": pipe.info["weights"],
              "weights_sha256": pipe.info["weights_sha256"], "horizon_row": horizon, "focal_px": KITTI_FOCAL_1226_PX,
              "camera_height_m": CAMERA_HEIGHT_M, "targets": TARGETS, "sizes": rows}
    report["means"] = {key: float(np.mean([r[key] for r in rows])) for key in TARGETS}
    report["views_meeting_all_targets"] = sum(r["ok"] for r in rows)
    if args.mirror:
        print(f"means over {len(rows)} views: mIoU {report['means']['miou']:.3f}  road IoU {report['means']['road_iou']:.3f}  road depth "
              f"median error {report['means']['road_depth_median_rel_error'] * 100:.1f} %; {report['views_meeting_all_targets']} of "
              f"{len(rows)} views meet every target")
    print(f"horizon row {horizon:.1f}; all targets {'met' if all(r['ok'] for r in rows) else 'NOT met'}")
    if args.json:  # complete or not at all: written beside, then renamed over
        out = Path(args.json)
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
