"""What the pipeline hands back for one frame."""

from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # plain data: the result does not need the modules that made it
    from hydranet_ros.runtime.focal import DepthScale
    from hydranet_ros.runtime.geometry import InputGeometry

STAGES = ("preprocess", "inference", "postprocess")
ALL_OUTPUTS = frozenset({"labels", "depth", "normals"})
# What a frame may ask for: ALL_OUTPUTS plus the labels' confidence, which costs a softmax over
# the upsampled class scores and is computed only when asked for.
KNOWN_OUTPUTS = ALL_OUTPUTS | {"confidence"}


@dataclass(frozen=True)
class FrameRequest:
    """One camera frame for ``Pipeline.submit_batch`` / ``process_batch``: what ``submit`` takes.

    pixels: uint8 HxWx3; color_order: 'rgb' or 'bgr'; outputs: the post-processing wanted (names in
    KNOWN_OUTPUTS; a skipped output is None in the Result, "confidence" only when named); focal_px: the camera's focal length in frame pixels
    (CameraInfo's K) for metric depth, None to assume the training camera. Plain data, so the
    torch-free layers (outputs/render) can make one.
    """

    pixels: np.ndarray
    color_order: str = "rgb"
    outputs: frozenset[str] = ALL_OUTPUTS
    focal_px: float | None = None


@dataclass
class Result:
    """Outputs for one camera frame, all at the same (output) resolution.

    labels:  uint8 HxW class ids.
    depth_m: float32 HxW metres along the optical axis; NaN where the network gave no valid value.
    normals: float32 HxWx3 unit vectors, or None when the weights have no normals head.
    confidence: float32 HxW softmax probability of each pixel's class (0..1), or None when not
        asked for (Pipeline.process outputs without "confidence").
    timings_ms: per-stage time ('preprocess', 'inference', 'postprocess', 'total'): host wall time on
        CPU, CUDA event time on a GPU (see PendingResult).
    geometry: how the frame was mapped into the network (runtime/geometry.InputGeometry).
    depth_scale: the focal-length correction applied to depth_m and where the focal length came
        from (runtime/focal.DepthScale).
    batch_size: how many frames (cameras) shared the network pass that made this one (1 alone).
    """

    labels: np.ndarray
    depth_m: np.ndarray
    normals: np.ndarray | None = None
    confidence: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    geometry: "InputGeometry | None" = None
    depth_scale: "DepthScale | None" = None
    batch_size: int = 1

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the outputs."""
        return int(self.labels.shape[1]), int(self.labels.shape[0])
