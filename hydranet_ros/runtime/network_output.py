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


def labels_from_logits(segm: torch.Tensor, size: tuple[int, int], geometry=None) -> torch.Tensor:
    """(N,C,h,w) class scores -> (N,H,W) uint8 class ids.

    Labels come from bilinearly upsampled logits, then argmax: boundaries fall between the
    network's pixels where the class scores cross, instead of in 4x4 blocks (nearest labels) or
    on invented ids (interpolating class ids). Channels-last keeps each pixel's class scores
    adjacent: argmax over them is ~10x faster than over planar (NCHW) logits on CPU.
    """
    logits = upsample(segm.to(torch.float32, memory_format=torch.channels_last), size, geometry)
    return logits.argmax(dim=1).to(torch.uint8)


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
