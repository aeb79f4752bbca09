"""The arithmetic that turns the network's outputs into labels, metres and unit normals, in one
place: the pipeline runs it on every camera frame, and evaluation (train/evaluate.py) runs the
same on its batches, so the metrics describe what the node and the `hydranet` command publish.

Every function takes a batch (N,C,h,w) at the network's 1/4 resolution and returns it at
``size`` (height, width), on the same device. With a ``geometry`` (runtime/geometry.InputGeometry)
the frame's area is cut out of the padded network input first: the inverse of the input's mapping.
The ``*_host`` functions at the end do the same for one frame in numpy with OpenCV (the pipeline
on CPU).
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np
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


# --- the same arithmetic for one frame on the host (the pipeline on CPU) ------------------------
# OpenCV's float bilinear resize is torch's ``interpolate(mode="bilinear", align_corners=False)``
# (pixel centres at +0.5, edges clamped; float coefficients for float images) at a fraction of the
# cost on a CPU: at 640x480 torch's upsample + argmax + depth took tens of milliseconds of host
# time after a forward of ~100 ms, against a target of <= 10 % over the forward. Each function
# takes one frame's (C,h,w) numpy array (any strides: planar from ONNX Runtime and OpenVINO,
# channels-last from torch) and returns numpy at ``size`` (height, width); test_network_output
# holds them equal to the torch functions above.


def _resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    plane = np.ascontiguousarray(plane, dtype=np.float32)  # a copy only of a 1/4-resolution plane
    if plane.shape == tuple(size):
        return plane
    return cv2.resize(plane, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def upsample_plane(plane: np.ndarray, size: tuple[int, int], geometry=None) -> np.ndarray:
    """One (h,w) plane -> float32 (H,W): ``upsample`` on the host (the padding cut off the same way)."""
    if geometry is not None and geometry.scaled_size != geometry.network_size:
        (net_w, net_h), (left, top), (w, h) = geometry.network_size, geometry.offset, geometry.scaled_size
        plane = _resize_plane(plane, (net_h, net_w))[top:top + h, left:left + w]
    return _resize_plane(plane, size)


def _running_argmax(planes: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Upsampled class planes, in class order -> (H,W) uint8 ids of the top class and (H,W)
    float32 top score, one pass over the frame per class with no (H,W,C) array (numpy's argmax
    over a short last axis loops per pixel; a boolean-mask assignment costs ~2 ms a class at
    640x480). Classes come in ascending order, so where one scores strictly higher its index
    exceeds every id set before: ids = max(ids, index where higher) needs no masked write, and
    the first class wins a tie, as in torch's argmax. The planes are never written."""
    planes = iter(planes)
    # A copy, contiguous: the running maximum writes it (OpenCV writes contiguous arrays only).
    best = np.array(next(planes), dtype=np.float32, order="C")
    ids = np.zeros(best.shape, np.uint8)
    for index, plane in enumerate(planes, start=1):
        plane = np.ascontiguousarray(plane)
        higher = cv2.compare(plane, best, cv2.CMP_GT)  # 255 where this class leads, else 0
        cv2.max(ids, cv2.bitwise_and(higher, index), dst=ids)
        cv2.max(best, plane, dst=best)
    return ids, best


def labels_from_logits_host(segm: np.ndarray, size: tuple[int, int], geometry=None) -> np.ndarray:
    """(C,h,w) class scores -> (H,W) uint8 class ids: ``labels_from_logits`` on the host. Each
    class plane is upsampled on its own, as the running argmax reaches it."""
    return _running_argmax(upsample_plane(segm[index], size, geometry) for index in range(segm.shape[0]))[0]


def labels_and_confidence_host(segm: np.ndarray, size: tuple[int, int], geometry=None, *, labels: bool = True,
                               confidence: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(C,h,w) class scores -> (H,W) uint8 class ids and (H,W) float32 confidence: ``class_scores``
    then ``labels_and_confidence`` on the host, the same definition (the top class's softmax
    probability, 1 / sum_c exp(s_c - s_max)). Without confidence it is labels_from_logits_host;
    with it, every upsampled class plane is kept for the second pass over the classes that the
    sum needs (C x H x W float32: 7 MB for 6 classes at 640x480)."""
    if not confidence:
        return (labels_from_logits_host(segm, size, geometry) if labels else None), None
    planes = [upsample_plane(segm[index], size, geometry) for index in range(segm.shape[0])]
    ids, best = _running_argmax(planes)
    total = np.zeros(best.shape, np.float32)
    for plane in planes:  # exp(s - max) <= 1: nothing overflows; the top class adds exactly 1
        total += np.exp(plane - best)
    return (ids if labels else None), np.reciprocal(total, out=total)


def depth_in_metres_host(depth: np.ndarray, size: tuple[int, int], geometry=None, factor: float = 1.0) -> np.ndarray:
    """(1,h,w) raw depth head -> (H,W) float32 metres, NaN where not finite: ``depth_in_metres``
    on the host."""
    metres = upsample_plane(depth[0], size, geometry)
    metres = np.abs(metres)  # a fresh array: the in-place steps below touch nothing shared
    if factor != 1.0:
        metres *= np.float32(factor)
    infinite = np.isinf(metres)
    if infinite.any():  # rare: a masked write costs milliseconds even when it writes nothing
        metres[infinite] = np.nan
    return metres


def unit_normals_host(normals: np.ndarray, size: tuple[int, int], geometry=None) -> np.ndarray:
    """(3,h,w) raw normals head -> (H,W,3) unit vectors: ``unit_normals`` on the host."""
    n = np.stack([upsample_plane(normals[i], size, geometry) for i in range(normals.shape[0])], axis=-1)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), np.float32(1e-6))
    return n
