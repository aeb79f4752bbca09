"""Metric depth for the camera that is actually used (the canonical-camera idea, Metric3D, ICCV 2023).

A monocular network judges distance by apparent size in pixels: an object X metres wide at z
metres spans f * X / z pixels. A network trained with focal length f_train (pixels at its input)
that sees a camera whose focal length at the network's input is f_net reads every distance as
z * f_train / f_net. Multiplying its depth by f_net / f_train gives metres again. f_net is the
camera's focal length in frame pixels times the geometry's scale (runtime/geometry.py).

The training camera is recorded in the weights' metadata by our trainer ("focal_px": focal
length in pixels at the training input size "input_size"). For the authors' published weights,
which record nothing, it is the intrinsics of their datasets:
- KITTI: fx = 721.5377 px at 1242 px width (P_rect_02 of KITTI raw's 2011_09_26 calibration,
  the drives most KITTI training frames come from; 1226x370 frames of 2011_09_30 have 707.09 px:
  the same field of view to 0.6 %);
- NYU Depth v2: fx = 518.8579 px at 640 px width (fx_rgb in the NYU toolbox's camera_params.m).
The joint NYU+KITTI weights learned two cameras and get no correction (nothing to pick one by).

Without the camera's focal length, the camera is assumed to have the training camera's field of
view (its focal length scaled to the frame's width): right for the camera the weights came from,
and said once wherever depth is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = ["TrainingCamera", "PUBLISHED_CAMERAS", "training_camera", "DepthScale", "depth_scale",
           "CameraFocal", "assumption_note", "depth_focal_status"]


@dataclass(frozen=True)
class TrainingCamera:
    """Focal length (pixels) of the camera the weights learned depth with, at ``width_px`` wide."""

    focal_px: float
    width_px: int
    source: str = ""

    def focal_at_width(self, width: int) -> float:
        """The training camera's focal length for an image ``width`` pixels wide (same field of view)."""
        return self.focal_px * width / self.width_px


PUBLISHED_CAMERAS: dict[str, TrainingCamera] = {
    "kitti": TrainingCamera(721.5377, 1242, "KITTI raw calibration 2011_09_26, P_rect_02"),
    "nyud": TrainingCamera(518.8579, 640, "NYU Depth v2 toolbox camera_params.m, fx_rgb"),
    "nyud_three": TrainingCamera(518.8579, 640, "NYU Depth v2 toolbox camera_params.m, fx_rgb"),
}


def training_camera(metadata: Mapping[str, str], preset_name: str) -> TrainingCamera | None:
    """The weights' training camera, focal length at the training input: from their metadata
    ("focal_px" at "input_size"); else the preset's dataset camera, scaled to the recorded
    training width when there is one (frames of that camera resized, as our trainer did before
    it recorded focal lengths); else None (depth is then not rescaled)."""
    try:
        trained_width = int(str(metadata.get("input_size", "")).split("x")[0])
    except ValueError:
        trained_width = None
    focal = metadata.get("focal_px")
    if focal and trained_width:
        try:
            return TrainingCamera(float(focal), trained_width, "weights metadata")
        except ValueError:
            pass
    published = PUBLISHED_CAMERAS.get(preset_name)
    if published is not None and trained_width:
        return TrainingCamera(published.focal_at_width(trained_width), trained_width, published.source)
    return published


@dataclass(frozen=True)
class DepthScale:
    """The factor applied to the network's depth for one frame, and where its focal length came from."""

    factor: float
    focal_network_px: float | None  # the camera's focal length at the network's input
    source: str  # 'camera' (given), 'assumed' (training camera's field of view), 'none' (no training camera)


def depth_scale(training: TrainingCamera | None, *, frame_width: int, scale: float,
                focal_frame_px: float | None) -> DepthScale:
    """f_net / f_train for a frame ``frame_width`` wide scaled by ``scale`` into the network.

    focal_frame_px: the camera's focal length in frame pixels (from CameraInfo, --focal or a
    calibration file), or None to assume the training camera's field of view.
    """
    if training is None:
        return DepthScale(1.0, None, "none")
    if focal_frame_px is not None:
        if not focal_frame_px > 0:
            raise ValueError(f"focal length must be > 0 pixels, got {focal_frame_px}")
        source = "camera"
    else:
        focal_frame_px = training.focal_at_width(frame_width)
        source = "assumed"
    focal_network = focal_frame_px * scale
    # Both focal lengths are in pixels of the network's input: their ratio is the whole correction.
    return DepthScale(focal_network / training.focal_px, focal_network, source)


def assumption_note(training: TrainingCamera | None) -> str:
    """The one line said when depth runs without the camera's focal length."""
    if training is None:
        return "depth is not rescaled for the camera: these weights record no training camera"
    return (f"depth assumes the training camera's field of view (focal length {training.focal_px:.1f} px at "
            f"{training.width_px} px wide, scaled to the frame's width); give the camera's focal length for metric depth")


def depth_focal_status(source: str, training: TrainingCamera | None) -> str:
    """/diagnostics' and the log's words for where depth's focal length comes from."""
    if source == "camera":
        return "camera_info (depth scaled by the camera's focal length)"
    return assumption_note(training)


@dataclass(frozen=True)
class CameraFocal:
    """A camera's focal length in pixels, from --focal (frames as they are: width_px None) or a
    calibration file (at its image_width: frames of another width are the calibrated frames resized)."""

    focal_px: float
    width_px: int | None = None
    source: str = ""

    def for_width(self, width: int) -> float:
        return self.focal_px if self.width_px is None else self.focal_px * width / self.width_px
