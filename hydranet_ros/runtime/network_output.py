"""The arithmetic that turns the network's outputs into labels, metres and unit normals, in one
place: the pipeline runs it on every camera frame, and evaluation (train/evaluate.py) runs the
same on its batches, so the metrics describe what the node and the `hydranet` command publish.

Every function takes a batch (N,C,h,w) at the network's 1/4 resolution and returns it at
``size`` (height, width), on the same device. With a ``geometry`` (runtime/geometry.InputGeometry)
the frame's area is cut out of the padded network input first: the inverse of the input's mapping.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def upsample(x: torch.Tensor, size: tuple[int, int], geometry=None) -> torch.Tensor:
    """Float, bilinear to ``size`` (height, width); unchanged when already there. With a padded
    ``geometry``: upsampled to the network input, the padding cut off, then resized to ``size``
    (InputGeometry.network_to_output)."""
    x = x.float()
    if geometry is not None and geometry.scaled_size != geometry.network_size:
        (net_w, net_h), (left, top), (w, h) = geometry.network_size, geometry.offset, geometry.scaled_size
        x = _resize(x, (net_h, net_w))[..., top:top + h, left:left + w]
    return _resize(x, size)


def class_scores(segm: torch.Tensor, size: tuple[int, int], geometry=None) -> torch.Tensor:
    """(N,C,h,w) class scores -> (N,C,H,W) float32 scores at ``size`` (through ``geometry`` as
    upsample does), channels-last: each pixel's scores adjacent, for the reductions over classes
    below."""
    return upsample(segm.to(torch.float32, memory_format=torch.channels_last), size, geometry)


def labels_and_confidence(scores: torch.Tensor, *, labels: bool = True,
                          confidence: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(N,C,H,W) upsampled class scores -> (N,H,W) uint8 class ids and (N,H,W) float32 confidence.

    Confidence is the top class's softmax probability, 1 / sum_c exp(s_c - s_max): in (1/C, 1],
    computed from the max the argmax finds anyway, without normalising every class. The one place
    that defines it: every post-processing path calls this. Either output may be skipped (None).
    """
    if not confidence:
        return (scores.argmax(dim=1).to(torch.uint8) if labels else None), None
    top, ids = scores.max(dim=1, keepdim=True)
    # exp(s - max) <= 1, so nothing overflows; the top class contributes exactly 1 to the sum.
    total = scores.sub(top).exp_().sum(dim=1)
    return (ids[:, 0].to(torch.uint8) if labels else None), total.reciprocal_()


def labels_from_logits(segm: torch.Tensor, size: tuple[int, int], geometry=None) -> torch.Tensor:
    """(N,C,h,w) class scores -> (N,H,W) uint8 class ids.

    Labels come from bilinearly upsampled logits, then argmax: boundaries fall between the
    network's pixels where the class scores cross, instead of in 4x4 blocks (nearest labels) or
    on invented ids (interpolating class ids). Channels-last keeps each pixel's class scores
    adjacent: argmax over them is ~10x faster than over planar (NCHW) logits on CPU.
    """
    return class_scores(segm, size, geometry).argmax(dim=1).to(torch.uint8)


def depth_in_metres(depth: torch.Tensor, size: tuple[int, int], geometry=None, factor: float = 1.0) -> torch.Tensor:
    """(N,1,h,w) raw depth head -> (N,H,W) float32 metres, NaN where the network gave no finite value.

    The absolute value, as the authors take it, times ``factor``: the camera's focal length over
    the training camera's (runtime/focal.py). A fresh tensor, so +/-inf is marked invalid in
    place (NaN already is) instead of allocating a whole NaN frame to select from.
    """
    metres = upsample(depth, size, geometry)[:, 0].abs()
    if factor != 1.0:
        metres.mul_(factor)
    return metres.masked_fill_(torch.isinf(metres), float("nan"))


def unit_normals(normals: torch.Tensor, size: tuple[int, int], geometry=None) -> torch.Tensor:
    """(N,3,h,w) raw normals head -> (N,3,H,W) unit vectors."""
    n = upsample(normals, size, geometry)
    return n / n.norm(dim=1, keepdim=True).clamp_min(1e-6)
