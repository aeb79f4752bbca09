"""Training losses for the three HydraNet tasks, and how they are weighted against each other.

Every loss sees only the pixels that carry ground truth: frames may lack one annotation (the
paper's "asymmetric annotations"), labels use 255 for "not annotated" and depth uses 0, NaN or any
non-finite value for "no measurement". A batch with no valid pixel at all gives a loss of exactly
zero that is still connected to the graph, so ``backward()`` works and no NaN reaches the weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hydranet_ros.train.datasets import IGNORE as IGNORE_INDEX

TASK_NAMES = ("segm", "depth", "normals")
DEPTH_LOSSES = ("l1", "berhu", "silog")
# Kendall et al. (CVPR 2018) weigh regression and classification likelihoods differently.
UNCERTAINTY_FORMS = {"segm": "classification", "depth": "regression", "normals": "regression"}


def _zero_like_graph(pred: torch.Tensor) -> torch.Tensor:
    """A zero that depends on ``pred``: backward() runs and gives zero gradients, never NaN."""
    return pred.sum() * 0.0


def _at_least_f32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision outputs (AMP) are lifted to float32 for the loss; float64 stays float64."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def valid_depth_mask(target_m: torch.Tensor) -> torch.Tensor:
    """Pixels with a depth measurement: finite and strictly positive."""
    return torch.isfinite(target_m) & (target_m > 0)


# --- segmentation -------------------------------------------------------------------------------


def segmentation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    class_weights: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Cross-entropy of logits (N,C,H,W) against labels (N,H,W), ignoring ``ignore_index``.

    With class weights the result is the weighted mean (sum of w[y] * nll over the sum of w[y]),
    the same normalisation as ``F.cross_entropy``; unlike it, no valid pixel gives 0, not NaN.
    """
    if logits.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ in size")
    labels = labels.long()
    valid = labels != ignore_index
    num_classes = logits.shape[1]
    if bool((labels[valid] >= num_classes).any()) or bool((labels[valid] < 0).any()):
        bad = labels[valid & ((labels >= num_classes) | (labels < 0))].unique().tolist()
        raise ValueError(f"labels {bad} outside 0..{num_classes - 1} (and not the ignore index {ignore_index})")
    if not bool(valid.any()):
        return _zero_like_graph(logits)
    per_pixel = F.cross_entropy(logits.float(), labels, weight=class_weights, ignore_index=ignore_index, reduction="none")
    if class_weights is None:
        denominator = valid.sum().to(per_pixel.dtype)
    else:
        denominator = class_weights.to(per_pixel.dtype)[labels[valid]].sum()
    if float(denominator) <= 0.0:  # every valid pixel belongs to a class weighted zero
        return _zero_like_graph(logits)
    return per_pixel.sum() / denominator


# --- depth --------------------------------------------------------------------------------------


def _depth_residuals(pred_m: torch.Tensor, target_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred_m.shape != target_m.shape:
        raise ValueError(f"depth prediction {tuple(pred_m.shape)} and target {tuple(target_m.shape)} differ")
    valid = valid_depth_mask(target_m)
    # Indexing (not multiplying by the mask) keeps NaN targets out of the graph entirely.
    return _at_least_f32(pred_m[valid]) - target_m[valid].to(_at_least_f32(pred_m).dtype), valid


def depth_l1_loss(pred_m: torch.Tensor, target_m: torch.Tensor) -> torch.Tensor:
    """Mean absolute error in metres over valid pixels."""
    residual, _ = _depth_residuals(pred_m, target_m)
    if residual.numel() == 0:
        return _zero_like_graph(pred_m)
    return residual.abs().mean()


def berhu_loss(pred_m: torch.Tensor, target_m: torch.Tensor, *, threshold_fraction: float = 0.2) -> torch.Tensor:
    """Reverse Huber (Laina et al. 2016): |r| up to c, (r^2 + c^2) / 2c beyond it.

    c = threshold_fraction * max |r| over the valid pixels of the whole batch, held constant for
    the gradient (it is a statistic of the batch, not something to optimise).
    """
    residual, _ = _depth_residuals(pred_m, target_m)
    if residual.numel() == 0:
        return _zero_like_graph(pred_m)
    magnitude = residual.abs()
    c = threshold_fraction * magnitude.detach().max()
    if float(c) <= 0.0:  # perfect prediction: both branches agree on 0
        return magnitude.mean()
    quadratic = (residual**2 + c**2) / (2.0 * c)
    return torch.where(magnitude <= c, magnitude, quadratic).mean()


def silog_loss(
    pred_m: torch.Tensor,
    target_m: torch.Tensor,
    *,
    variance_focus: float = 0.5,
    min_depth_m: float = 1e-3,
) -> torch.Tensor:
    """Scale-invariant log loss (Eigen et al., NIPS 2014), per image, averaged over images.

    With d = log(pred) - log(target) over an image's n valid pixels:
    L = mean(d^2) - lambda * mean(d)^2. lambda = 0 is plain log-MSE, 1 is fully scale invariant;
    Eigen et al. train with 0.5. Predictions are clamped to ``min_depth_m`` so log stays finite.
    Images without valid pixels do not count.
    """
    if pred_m.shape != target_m.shape:
        raise ValueError(f"depth prediction {tuple(pred_m.shape)} and target {tuple(target_m.shape)} differ")
    valid = valid_depth_mask(target_m)
    batch = pred_m.shape[0]
    valid_flat = valid.reshape(batch, -1)
    counts = valid_flat.sum(dim=1)
    if int(counts.sum()) == 0:
        return _zero_like_graph(pred_m)
    pred_m = _at_least_f32(pred_m)
    safe_target = torch.where(valid, target_m, torch.ones_like(target_m)).to(pred_m.dtype)
    log_diff = torch.log(pred_m.clamp_min(min_depth_m)) - torch.log(safe_target)
    log_diff = torch.where(valid, log_diff, torch.zeros_like(log_diff)).reshape(batch, -1)
    has_pixels = counts > 0
    n = counts.clamp_min(1).to(log_diff.dtype)
    mean_sq = (log_diff**2).sum(dim=1) / n
    mean = log_diff.sum(dim=1) / n
    per_image = mean_sq - variance_focus * mean**2
    return per_image[has_pixels].mean()


def depth_loss(pred_m: torch.Tensor, target_m: torch.Tensor, *, kind: str, silog_lambda: float = 0.5) -> torch.Tensor:
    """The depth loss named ``kind`` ("l1", "berhu" or "silog")."""
    if kind == "l1":
        return depth_l1_loss(pred_m, target_m)
    if kind == "berhu":
        return berhu_loss(pred_m, target_m)
    if kind == "silog":
        return silog_loss(pred_m, target_m, variance_focus=silog_lambda)
    raise ValueError(f"unknown depth loss {kind!r}; choose one of {', '.join(DEPTH_LOSSES)}")


# --- normals ------------------------------------------------------------------------------------


def normals_cosine_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(angle) between predicted and true normals (N,3,H,W).

    A pixel counts where the target vector has a non-zero, finite norm; predictions are
    normalised, so only their direction is trained.
    """
    if pred.shape != target.shape or pred.shape[1] != 3:
        raise ValueError(f"normals must be (N,3,H,W) of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    target = target.float()
    finite = torch.isfinite(target).all(dim=1)
    safe_target = torch.where(finite.unsqueeze(1), target, torch.zeros_like(target))
    norm = safe_target.norm(dim=1)
    valid = finite & (norm > 0)
    if not bool(valid.any()):
        return _zero_like_graph(pred)
    pred_unit = F.normalize(pred.float(), dim=1, eps=1e-6)
    target_unit = safe_target / norm.clamp_min(1e-12).unsqueeze(1)
    cosine = (pred_unit * target_unit).sum(dim=1)
    return (1.0 - cosine[valid]).mean()


# --- task weighting -----------------------------------------------------------------------------


class FixedWeighting(nn.Module):
    """L = sum_t w_t * L_t, the paper's alpha * L_segm + beta * L_depth."""

    def __init__(self, *, weights: Mapping[str, float]) -> None:
        super().__init__()
        self.weights = dict(weights)

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [t for t in losses if t not in self.weights]
        if missing:
            raise KeyError(f"no fixed weight for task(s) {missing}")
        return sum(self.weights[t] * loss for t, loss in losses.items())

    def describe(self) -> dict[str, float]:
        return {f"weight_{t}": float(w) for t, w in self.weights.items()}


class UncertaintyWeighting(nn.Module):
    """Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    One learnable s_t = log(sigma_t^2) per task. Regression (Gaussian likelihood):
    0.5 * exp(-s) * L + 0.5 * s; classification (softmax with temperature): exp(-s) * L + 0.5 * s.
    Learning s rather than sigma keeps the weight positive and the optimisation stable.
    """

    def __init__(self, *, tasks: Sequence[str], initial_log_variance: float = 0.0) -> None:
        super().__init__()
        unknown = [t for t in tasks if t not in UNCERTAINTY_FORMS]
        if unknown:
            raise ValueError(f"no uncertainty form for task(s) {unknown}")
        self.tasks = tuple(tasks)
        self.log_variance = nn.ParameterDict(
            {t: nn.Parameter(torch.tensor(float(initial_log_variance))) for t in self.tasks}
        )

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = None
        for task, loss in losses.items():
            s = self.log_variance[task]
            scale = 1.0 if UNCERTAINTY_FORMS[task] == "classification" else 0.5
            term = scale * torch.exp(-s) * loss + 0.5 * s
            total = term if total is None else total + term
        if total is None:
            raise ValueError("no task losses to weigh")
        return total

    def describe(self) -> dict[str, float]:
        return {f"log_var_{t}": float(p.detach()) for t, p in self.log_variance.items()}


def make_weighting(*, kind: str, tasks: Sequence[str], weights: Mapping[str, float] | None = None) -> nn.Module:
    """"fixed" (weights per task, default 1) or "uncertainty" (learned)."""
    if kind == "fixed":
        given = dict(weights or {})
        return FixedWeighting(weights={t: float(given.get(t, 1.0)) for t in tasks})
    if kind == "uncertainty":
        return UncertaintyWeighting(tasks=tasks)
    raise ValueError(f"unknown task weighting {kind!r}; choose 'fixed' or 'uncertainty'")


# --- everything together ------------------------------------------------------------------------


def _resize_to(pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(pred.shape[-2:]) == tuple(size):
        return pred
    return F.interpolate(pred.float(), size=size, mode="bilinear", align_corners=False)


class MultiTaskLoss(nn.Module):
    """Network outputs (at 1/4 resolution) + a batch of targets -> weighted total and parts.

    Predictions are upsampled bilinearly to the targets' resolution, so the loss sees the same
    pixels the metrics do. Depth is trained as |output| because inference reads it that way.
    """

    def __init__(
        self,
        *,
        tasks: Sequence[str],
        weighting: nn.Module,
        depth_kind: str = "berhu",
        silog_lambda: float = 0.5,
        class_weights: torch.Tensor | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        unknown = [t for t in tasks if t not in TASK_NAMES]
        if unknown or not tasks:
            raise ValueError(f"tasks must be a non-empty subset of {TASK_NAMES}, got {list(tasks)}")
        if depth_kind not in DEPTH_LOSSES:
            raise ValueError(f"unknown depth loss {depth_kind!r}; choose one of {', '.join(DEPTH_LOSSES)}")
        self.tasks = tuple(tasks)
        self.weighting = weighting
        self.depth_kind = depth_kind
        self.silog_lambda = silog_lambda
        self.ignore_index = ignore_index
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        if "segm" in self.tasks:
            labels = batch["labels"]
            logits = _resize_to(outputs["segm"], labels.shape[-2:])
            parts["segm"] = segmentation_loss(
                logits, labels, class_weights=self.class_weights, ignore_index=self.ignore_index
            )
        if "depth" in self.tasks:
            target = batch["depth_m"]
            pred = _resize_to(outputs["depth"], target.shape[-2:])[:, 0].abs()
            parts["depth"] = depth_loss(pred, target, kind=self.depth_kind, silog_lambda=self.silog_lambda)
        if "normals" in self.tasks:
            target = batch["normals"]
            parts["normals"] = normals_cosine_loss(_resize_to(outputs["normals"], target.shape[-2:]), target)
        return self.weighting(parts), parts
