"""The arithmetic that turns the network's outputs into labels, metres and unit normals, in one
place: the pipeline runs it on every camera frame, and evaluation (train/evaluate.py) runs the
same on its batches, so the metrics describe what the node and the `hydranet` command publish.

Every function takes a batch (N,C,h,w) at the network's 1/4 resolution and returns it at
``size`` (height, width), on the same device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float, bilinear to ``size`` (height, width); unchanged when already there."""
    x = x.float()
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def labels_from_logits(segm: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N,C,h,w) class scores -> (N,H,W) uint8 class ids.

    Labels come from bilinearly upsampled logits, then argmax: boundaries fall between the
    network's pixels where the class scores cross, instead of in 4x4 blocks (nearest labels) or
    on invented ids (interpolating class ids). Channels-last keeps each pixel's class scores
    adjacent: argmax over them is ~10x faster than over planar (NCHW) logits on CPU.
    """
    logits = upsample(segm.to(torch.float32, memory_format=torch.channels_last), size)
    return logits.argmax(dim=1).to(torch.uint8)


def depth_in_metres(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N,1,h,w) raw depth head -> (N,H,W) float32 metres, NaN where the network gave no finite value.

    The absolute value, as the authors take it. A fresh tensor, so +/-inf is marked invalid in
    place (NaN already is) instead of allocating a whole NaN frame to select from.
    """
    metres = upsample(depth, size)[:, 0].abs()
    return metres.masked_fill_(torch.isinf(metres), float("nan"))


def unit_normals(normals: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N,3,h,w) raw normals head -> (N,3,H,W) unit vectors."""
    n = upsample(normals, size)
    return n / n.norm(dim=1, keepdim=True).clamp_min(1e-6)
