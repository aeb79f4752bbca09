"""Run a HydraNet over a dataset and report segmentation, depth (and normals) metrics.

The frames go through the shipped pipeline's own arithmetic (runtime/network_input.py before
the network, runtime/network_output.py after it), so the numbers describe what the node and
`hydranet infer` publish: labels from bilinearly upsampled logits at the ground truth's size
(``output_size="input"``), |depth| in metres with NaN where the network gave no finite value.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from hydranet_ros.io import staging
from hydranet_ros.presets import Preset, class_group
from hydranet_ros.runtime.network_input import normalise_images
from hydranet_ros.runtime.network_output import depth_in_metres, labels_from_logits, unit_normals
from hydranet_ros.train.data import Collate, frame_to_tensors
from hydranet_ros.train.metrics import DepthMetrics, NormalsMetrics, SegmentationMetrics

LOG = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Metrics per task plus the raw accumulators the plots are drawn from."""

    class_names: tuple[str, ...]
    frames: int
    segm: dict | None = None
    depth: dict | None = None
    normals: dict | None = None
    confusion: np.ndarray | None = None
    depth_error_histogram: np.ndarray | None = None
    depth_error_edges: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """The headline numbers, flat (for logs and the affinity table)."""
        out: dict[str, float] = {}
        if self.segm:
            out["miou"] = self.segm["miou"]
            out["pixel_accuracy"] = self.segm["pixel_accuracy"]
        if self.depth:
            for key in ("abs_rel", "rmse", "rmse_log", "delta1"):
                out[key] = self.depth[key]
        if self.normals:
            out["normals_mean_deg"] = self.normals["mean_deg"]
        return out

    def to_json(self) -> dict:
        data: dict = {"frames": self.frames, "class_names": list(self.class_names), **self.extra}
        if self.segm:
            data["segmentation"] = {
                **{k: v for k, v in self.segm.items() if k != "iou_per_class"},
                "iou_per_class": dict(zip(self.class_names, self.segm["iou_per_class"], strict=True)),
                "note": "mIoU averages the classes present in ground truth or prediction; "
                        "classes absent from both are excluded (IoU null)",
            }
            data["confusion_matrix"] = self.confusion.tolist() if self.confusion is not None else None
        if self.depth:
            data["depth"] = self.depth
        if self.normals:
            data["normals"] = self.normals
        return data


@torch.no_grad()
def predict(model: nn.Module, images_u8: torch.Tensor, *, preset: Preset,
            size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """uint8 (N,3,H,W) -> {'labels': (N,H,W) uint8, 'depth_m': (N,H,W) metres, 'normals': (N,3,H,W)}
    at ``size`` (height, width; default: the input size), as the pipeline makes them."""
    size = tuple(images_u8.shape[-2:]) if size is None else size
    outputs = model(normalise_images(images_u8, mean=preset.mean, std=preset.std))
    result = {}
    if "segm" in outputs:
        result["labels"] = labels_from_logits(outputs["segm"], size)
    if "depth" in outputs:
        result["depth_m"] = depth_in_metres(outputs["depth"], size)
    if "normals" in outputs:
        result["normals"] = unit_normals(outputs["normals"], size)
    return result


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    *,
    preset: Preset,
    tasks: Sequence[str] = ("segm", "depth"),
    device: torch.device | str = "cpu",
    batch_size: int = 4,
    num_workers: int = 0,
    max_frames: int | None = None,
    depth_max_m: float | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Metrics of ``model`` on ``dataset`` (the first ``max_frames`` frames when given)."""
    if max_frames is not None and max_frames < len(dataset):
        dataset = Subset(dataset, range(max_frames))
    device = torch.device(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=Collate(with_normals="normals" in tasks))
    segm = SegmentationMetrics(num_classes=preset.num_classes) if "segm" in tasks else None
    depth = DepthMetrics(max_depth_m=depth_max_m) if "depth" in tasks else None
    normals = NormalsMetrics() if "normals" in tasks else None
    was_training = model.training
    model.eval()
    frames = 0
    iterator = loader
    if progress:
        from tqdm import tqdm

        iterator = tqdm(loader, desc="evaluate", unit="batch", leave=False)
    try:
        for batch in iterator:
            images = batch["image"].to(device)
            out = predict(model, images, preset=preset)
            frames += images.shape[0]
            if segm is not None:
                segm.update(out["labels"], batch["labels"])
            if depth is not None:
                depth.update(out["depth_m"], batch["depth_m"])
            if normals is not None:
                normals.update(out["normals"], batch["normals"])
    finally:
        model.train(was_training)
    return EvaluationResult(
        class_names=tuple(preset.class_names),
        frames=frames,
        segm=segm.compute() if segm else None,
        depth=depth.compute() if depth else None,
        normals=normals.compute() if normals else None,
        confusion=segm.confusion.copy() if segm else None,
        depth_error_histogram=depth.histogram.copy() if depth else None,
        depth_error_edges=depth.histogram_edges.copy() if depth else None,
    )


def evaluate_pipeline(
    pipeline,
    dataset: Dataset,
    *,
    tasks: Sequence[str] = ("segm", "depth"),
    max_frames: int | None = None,
    depth_max_m: float | None = None,
    focal=None,
    progress: bool = False,
) -> EvaluationResult:
    """Metrics of the inference ``pipeline`` (runtime.pipeline.Pipeline, what `hydranet infer` and
    the node run: the same geometry, pre- and post-processing, focal-length correction) on
    ``dataset``, compared at the ground truth's size (the pipeline's output_size must be 'input').

    focal: a runtime.focal.CameraFocal (from --focal / --camera-info) for every frame; without it
    a frame's own camera_k gives its focal length, and a frame without one assumes the training
    camera, as `hydranet infer` does without --focal.
    """
    if pipeline.config.output_size != "input":
        raise ValueError("evaluate_pipeline compares at the ground truth's size: use output_size 'input'")
    count = len(dataset) if max_frames is None else min(max_frames, len(dataset))
    # Joint weights restricted to one dataset's classes (--classes kitti: ids 40-45 of 46) label
    # in the weights' ids; the ground truth is in that dataset's own (0-5).
    first, stop = class_group(pipeline.preset.name, pipeline.config.classes) or (0, pipeline.preset.num_classes)
    segm = SegmentationMetrics(num_classes=stop - first) if "segm" in tasks else None
    depth = DepthMetrics(max_depth_m=depth_max_m) if "depth" in tasks else None
    normals = NormalsMetrics() if "normals" in tasks else None
    wanted = frozenset({"segm": "labels", "depth": "depth", "normals": "normals"}[t] for t in tasks)
    indices = range(count)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="evaluate", unit="frame", leave=False)
    for index in indices:
        frame = dataset[index]
        truth = frame_to_tensors(frame, with_normals=normals is not None)
        image = np.asarray(frame["image"])
        if focal is not None:
            focal_px = focal.for_width(image.shape[1])
        elif frame.get("camera_k") is not None:
            k = np.asarray(frame["camera_k"], np.float64)
            focal_px = float(np.sqrt(k[0, 0] * k[1, 1]))
        else:
            focal_px = None
        result = pipeline.process(image, outputs=wanted, focal_px=focal_px)
        if segm is not None:
            segm.update(np.asarray(result.labels, np.int64) - first if first else result.labels, truth["labels"])
        if depth is not None:
            depth.update(result.depth_m, truth["depth_m"])
        if normals is not None and result.normals is not None:
            normals.update(np.moveaxis(result.normals, -1, 0)[None], truth["normals"][None])
    return EvaluationResult(
        class_names=tuple(pipeline.preset.class_names[first:stop]),
        frames=count,
        segm=segm.compute() if segm else None,
        depth=depth.compute() if depth else None,
        normals=normals.compute() if normals else None,
        confusion=segm.confusion.copy() if segm else None,
        depth_error_histogram=depth.histogram.copy() if depth else None,
        depth_error_edges=depth.histogram_edges.copy() if depth else None,
    )


def format_table(result: EvaluationResult) -> str:
    """A plain-text report: per-class IoU, then the headline numbers."""
    lines = [f"frames evaluated: {result.frames}"]
    if result.segm:
        lines.append("")
        lines.append(f"{'class':<22}{'IoU':>8}")
        for name, iou in zip(result.class_names, result.segm["iou_per_class"], strict=True):
            lines.append(f"{name:<22}{'absent' if iou is None else f'{iou:.4f}':>8}")
        lines.append(f"{'mIoU':<22}{result.segm['miou']:>8.4f}   "
                     f"(over {result.segm['classes_evaluated']} classes present in GT or prediction)")
        lines.append(f"{'pixel accuracy':<22}{result.segm['pixel_accuracy']:>8.4f}")
    if result.depth:
        d = result.depth
        lines.append("")
        lines.append(f"{'abs rel':>9}{'sq rel':>9}{'RMSE m':>9}{'RMSE log':>10}{'d<1.25':>9}{'d<1.25^2':>10}{'d<1.25^3':>10}")
        lines.append(f"{d['abs_rel']:>9.4f}{d['sq_rel']:>9.4f}{d['rmse']:>9.3f}{d['rmse_log']:>10.4f}"
                     f"{d['delta1']:>9.4f}{d['delta2']:>10.4f}{d['delta3']:>10.4f}   ({d['pixels']} valid pixels)")
    if result.normals:
        n = result.normals
        lines.append("")
        lines.append(f"normals: mean {n['mean_deg']:.2f} deg, median {n['median_deg']:.2f} deg, "
                     f"<11.25: {n['within_11_25']:.3f}, <22.5: {n['within_22_5']:.3f}, <30: {n['within_30']:.3f}")
    return "\n".join(lines)


def draw_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted) as a PNG heat map."""
    n = confusion.shape[0]
    cell = max(24, min(60, 720 // max(n, 1)))
    label_w = 150
    top = 40
    width, height = label_w + n * cell + 20, top + n * cell + label_w
    image = np.full((height, width, 3), 255, np.uint8)
    rows = confusion.astype(np.float64)
    totals = rows.sum(axis=1, keepdims=True)
    share = np.divide(rows, totals, out=np.zeros_like(rows), where=totals > 0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, "true class (rows) vs predicted (columns), share of row", (10, 25), font, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    for g in range(n):
        for p in range(n):
            x0, y0 = label_w + p * cell, top + g * cell
            shade = int(round(255 * (1.0 - share[g, p])))
            colour = (255, shade, shade) if g != p else (shade, 255, shade)  # BGR: blue errors, green hits
            cv2.rectangle(image, (x0, y0), (x0 + cell - 1, y0 + cell - 1), colour, -1)
            cv2.rectangle(image, (x0, y0), (x0 + cell - 1, y0 + cell - 1), (200, 200, 200), 1)
            if cell >= 36 and totals[g, 0] > 0:
                cv2.putText(image, f"{share[g, p]:.2f}", (x0 + 3, y0 + cell // 2 + 4), font, 0.35, (0, 0, 0), 1,
                            cv2.LINE_AA)
        cv2.putText(image, str(class_names[g])[:18], (5, top + g * cell + cell // 2 + 4), font, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    # Column labels, written sideways: draw them horizontally into a strip (in reverse order) and
    # turn it clockwise, so each reads downwards from just below its column.
    strip = np.full((cell * n, label_w, 3), 255, np.uint8)
    for p in range(n):
        row = (n - 1 - p) * cell
        cv2.putText(strip, str(class_names[p])[:18], (5, row + cell // 2 + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    image[top + n * cell: top + n * cell + label_w, label_w: label_w + n * cell] = cv2.rotate(
        strip, cv2.ROTATE_90_CLOCKWISE)
    return staging.write_image(path, image)


def draw_depth_error_histogram(histogram: np.ndarray, edges: np.ndarray, path: str | Path) -> Path:
    """Histogram of the signed relative depth error (pred - gt) / gt; end bins hold the tails."""
    width, height, left, bottom, top = 720, 360, 60, 50, 35
    image = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    total = max(int(histogram.sum()), 1)
    share = histogram / total
    peak = max(float(share.max()), 1e-9)
    bins = len(histogram)
    plot_w, plot_h = width - left - 20, height - top - bottom
    for i, value in enumerate(share):
        x0 = left + int(i * plot_w / bins)
        x1 = left + int((i + 1) * plot_w / bins) - 1
        y0 = top + plot_h - int(round(value / peak * plot_h))
        colour = (60, 60, 200) if i in (0, bins - 1) else (180, 110, 40)
        cv2.rectangle(image, (x0, y0), (x1, top + plot_h), colour, -1)
    cv2.rectangle(image, (left, top), (left + plot_w, top + plot_h), (0, 0, 0), 1)
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + int(frac * plot_w)
        value = edges[0] + frac * (edges[-1] - edges[0])
        cv2.putText(image, f"{value:+.2f}", (x - 18, top + plot_h + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, f"{peak:.3f}", (5, top + 10), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "(pred - gt) / gt   (red: beyond the range)", (left, height - 10), font, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    cv2.putText(image, f"depth relative error, {total} pixels", (left, 22), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return staging.write_image(path, image)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_report(result: EvaluationResult, out_dir: str | Path, *, prefix: str = "eval") -> dict[str, Path]:
    """JSON + confusion-matrix PNG + depth-error-histogram PNG; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": out_dir / f"{prefix}.json"}
    staging.write_atomic(written["json"], json.dumps(_json_safe(result.to_json()), indent=2).encode())
    if result.confusion is not None:
        written["confusion"] = draw_confusion_matrix(result.confusion, result.class_names,
                                                     out_dir / f"{prefix}_confusion.png")
    if result.depth_error_histogram is not None and result.depth_error_edges is not None:
        written["depth_hist"] = draw_depth_error_histogram(result.depth_error_histogram, result.depth_error_edges,
                                                           out_dir / f"{prefix}_depth_error.png")
    return written
