"""Streaming evaluation metrics: segmentation (confusion matrix), depth, surface normals.

Each metric accumulates SUMS and COUNTS over batches and divides only in ``compute()``, so the
result over a dataset equals the result over all its pixels at once, whatever the batch sizes.
(Averaging per-batch means would weight small batches, or batches with few valid pixels, wrongly.)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hydranet_ros.train.losses import IGNORE_INDEX


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class SegmentationMetrics:
    """Confusion matrix over batches -> mIoU, pixel accuracy, per-class IoU.

    ``confusion[g, p]`` counts pixels of true class g predicted as p. Pixels labelled
    ``ignore_index`` are not counted. A class absent from both ground truth and prediction has an
    undefined IoU (0/0): it is reported as None and EXCLUDED from the mean, so evaluating on frames
    without, say, cars neither rewards nor punishes the car class.
    """

    def __init__(self, *, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError("num_classes must be at least 1")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)

    def reset(self) -> None:
        self.confusion[:] = 0

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add predicted class ids and true labels of the same shape (any leading dims)."""
        pred_np = _to_numpy(pred).astype(np.int64).ravel()
        target_np = _to_numpy(target).astype(np.int64).ravel()
        if pred_np.shape != target_np.shape:
            raise ValueError(f"prediction has {pred_np.size} pixels, target {target_np.size}")
        keep = target_np != self.ignore_index
        pred_np, target_np = pred_np[keep], target_np[keep]
        n = self.num_classes
        out_of_range = (target_np < 0) | (target_np >= n) | (pred_np < 0) | (pred_np >= n)
        if out_of_range.any():
            raise ValueError(f"class ids outside 0..{n - 1} in prediction or target")
        self.confusion += np.bincount(target_np * n + pred_np, minlength=n * n).reshape(n, n)

    def compute(self) -> dict:
        c = self.confusion.astype(np.float64)
        true_positive = np.diag(c)
        gt_pixels = c.sum(axis=1)
        pred_pixels = c.sum(axis=0)
        union = gt_pixels + pred_pixels - true_positive
        total = c.sum()
        iou: list[float | None] = [
            float(true_positive[k] / union[k]) if union[k] > 0 else None for k in range(self.num_classes)
        ]
        defined = [v for v in iou if v is not None]
        return {
            "miou": float(np.mean(defined)) if defined else float("nan"),
            "pixel_accuracy": float(true_positive.sum() / total) if total > 0 else float("nan"),
            "iou_per_class": iou,
            "classes_evaluated": len(defined),
            "pixels": int(total),
        }


class DepthMetrics:
    """Standard monocular depth metrics (Eigen et al. 2014) over valid pixels of all batches.

    Valid: target finite and > 0, and within ``max_depth_m`` when given (KITTI evaluations cap at
    80 m). Predictions are clamped to ``min_depth_m`` so the logarithms stay finite.
    """

    DELTA_THRESHOLDS = (1.25, 1.25**2, 1.25**3)

    def __init__(
        self,
        *,
        min_depth_m: float = 1e-3,
        max_depth_m: float | None = None,
        histogram_edges: np.ndarray | None = None,
    ) -> None:
        self.min_depth_m = min_depth_m
        self.max_depth_m = max_depth_m
        # Signed relative error (pred - gt) / gt; the outermost bins collect everything beyond.
        self.histogram_edges = np.linspace(-0.5, 0.5, 51) if histogram_edges is None else np.asarray(histogram_edges)
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sum_sq = 0.0
        self.sum_sq_log = 0.0
        self.sum_abs_rel = 0.0
        self.sum_sq_rel = 0.0
        self.sum_abs = 0.0
        self.delta_counts = [0, 0, 0]
        self.histogram = np.zeros(len(self.histogram_edges) - 1, dtype=np.int64)

    def update(self, pred_m: torch.Tensor | np.ndarray, target_m: torch.Tensor | np.ndarray) -> None:
        pred = _to_numpy(pred_m).astype(np.float64).ravel()
        target = _to_numpy(target_m).astype(np.float64).ravel()
        if pred.shape != target.shape:
            raise ValueError(f"depth prediction has {pred.size} pixels, target {target.size}")
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(target) & (target > 0)
            if self.max_depth_m is not None:
                valid &= target <= self.max_depth_m
        pred, target = pred[valid], target[valid]
        if pred.size == 0:
            return
        pred = np.nan_to_num(pred, nan=self.min_depth_m, posinf=1e6).clip(min=self.min_depth_m)
        diff = pred - target
        log_diff = np.log(pred) - np.log(target)
        ratio = np.maximum(pred / target, target / pred)
        self.count += pred.size
        self.sum_sq += float((diff**2).sum())
        self.sum_sq_log += float((log_diff**2).sum())
        self.sum_abs_rel += float((np.abs(diff) / target).sum())
        self.sum_sq_rel += float((diff**2 / target).sum())
        self.sum_abs += float(np.abs(diff).sum())
        for i, threshold in enumerate(self.DELTA_THRESHOLDS):
            self.delta_counts[i] += int((ratio < threshold).sum())
        edges = self.histogram_edges
        rel = np.clip(diff / target, edges[0], edges[-1])
        self.histogram += np.histogram(rel, bins=edges)[0]

    def compute(self) -> dict:
        n = self.count
        if n == 0:
            nan = float("nan")
            return {"rmse": nan, "rmse_log": nan, "abs_rel": nan, "sq_rel": nan, "mae": nan,
                    "delta1": nan, "delta2": nan, "delta3": nan, "pixels": 0}
        return {
            "rmse": math.sqrt(self.sum_sq / n),
            "rmse_log": math.sqrt(self.sum_sq_log / n),
            "abs_rel": self.sum_abs_rel / n,
            "sq_rel": self.sum_sq_rel / n,
            "mae": self.sum_abs / n,
            "delta1": self.delta_counts[0] / n,
            "delta2": self.delta_counts[1] / n,
            "delta3": self.delta_counts[2] / n,
            "pixels": n,
        }


class NormalsMetrics:
    """Angular error of surface normals in degrees: mean, median (from 0.1-degree bins), and the
    share of pixels within 11.25, 22.5 and 30 degrees. Valid where the target norm is > 0."""

    THRESHOLDS_DEG = (11.25, 22.5, 30.0)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sum_deg = 0.0
        self.histogram = np.zeros(1800, dtype=np.int64)  # 0.1-degree bins over 0..180
        self.within = [0, 0, 0]

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """pred and target as (N,3,H,W)."""
        p = np.moveaxis(_to_numpy(pred).astype(np.float64), 1, -1).reshape(-1, 3)
        t = np.moveaxis(_to_numpy(target).astype(np.float64), 1, -1).reshape(-1, 3)
        if p.shape != t.shape:
            raise ValueError("normals prediction and target differ in shape")
        t_norm = np.linalg.norm(t, axis=1)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(t_norm) & (t_norm > 0)
        p, t, t_norm = p[valid], t[valid], t_norm[valid]
        if p.size == 0:
            return
        p_norm = np.maximum(np.linalg.norm(p, axis=1), 1e-12)
        cosine = np.clip((p * t).sum(axis=1) / (p_norm * t_norm), -1.0, 1.0)
        angle = np.degrees(np.arccos(cosine))
        self.count += angle.size
        self.sum_deg += float(angle.sum())
        self.histogram += np.bincount(np.minimum((angle * 10).astype(np.int64), 1799), minlength=1800)
        for i, threshold in enumerate(self.THRESHOLDS_DEG):
            self.within[i] += int((angle < threshold).sum())

    def compute(self) -> dict:
        n = self.count
        if n == 0:
            nan = float("nan")
            return {"mean_deg": nan, "median_deg": nan, "within_11_25": nan, "within_22_5": nan,
                    "within_30": nan, "pixels": 0}
        cumulative = np.cumsum(self.histogram)
        median_bin = int(np.searchsorted(cumulative, n / 2.0))
        return {
            "mean_deg": self.sum_deg / n,
            "median_deg": (median_bin + 0.5) / 10.0,
            "within_11_25": self.within[0] / n,
            "within_22_5": self.within[1] / n,
            "within_30": self.within[2] / n,
            "pixels": n,
        }
