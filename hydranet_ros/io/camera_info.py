"""sensor_msgs/CameraInfo for images the node publishes at a resolution other than the camera's.

depth_image_proc and image_geometry project a depth or label image into 3D with the CameraInfo
that has the same header, so its K and P must describe the published image, not the camera's.
Duck-typed like ros_image: reads the ROS 2 field names (k, p, d, r, height, width,
distortion_model, binning_x, binning_y, roi) from any object.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["CameraInfoRejected", "camera_info_size", "camera_info_matches", "scale_camera_info", "frame_focal_px"]


class CameraInfoRejected(ValueError):
    """A CameraInfo that cannot be scaled; ``reason`` is a short key for diagnostics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _matrix(info: Any, name: str, size: int | None) -> np.ndarray:
    try:
        values = np.asarray(getattr(info, name), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise CameraInfoRejected("bad_matrix", f"CameraInfo.{name} is not a list of numbers: {exc}") from None
    if size is not None and values.size != size:
        raise CameraInfoRejected("bad_matrix", f"CameraInfo.{name} has {values.size} values, expected {size}")
    if not np.all(np.isfinite(values)):
        raise CameraInfoRejected("nonfinite", f"CameraInfo.{name} holds NaN or Inf: {values.tolist()}")
    return values


def _binning(info: Any) -> tuple[int, int]:
    # 0 and 1 both mean "not binned" in sensor_msgs/CameraInfo.
    return max(int(getattr(info, "binning_x", 0) or 0), 1), max(int(getattr(info, "binning_y", 0) or 0), 1)


def _roi(info: Any) -> tuple[int, int, int, int]:
    """(x_offset, y_offset, width, height) of the region of the sensor the image shows."""
    roi = getattr(info, "roi", None)
    width, height = int(info.width), int(info.height)
    if roi is None or (int(roi.width) == 0 and int(roi.height) == 0):
        return 0, 0, width, height  # an all-zero ROI means the full resolution
    return int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)


def camera_info_size(info: Any) -> tuple[int, int]:
    """(width, height) of the images this CameraInfo describes, after its ROI and binning."""
    binning_x, binning_y = _binning(info)
    _, _, width, height = _roi(info)
    return width // binning_x, height // binning_y


def camera_info_matches(info: Any, width: int, height: int) -> bool:
    """Whether ``info`` describes a width x height image (a mismatch is worth a warning)."""
    return camera_info_size(info) == (int(width), int(height))


def frame_focal_px(info: Any, width: int, height: int) -> float | None:
    """The camera's focal length (sqrt(fx * fy)) in pixels of a width x height frame it sent, for
    metric depth (runtime/focal.py); None when ``info`` is missing, uncalibrated or malformed.

    K is in full-sensor pixels; the frame is the ROI binned (and, if its size still differs, the
    camera's image resized by a driver or a republisher: the focal length scales with the width).
    """
    if info is None:
        return None
    try:
        k = _matrix(info, "k", 9)
        if k[0] <= 0 or k[4] <= 0:
            return None
        binning_x, binning_y = _binning(info)
        source_width, source_height = camera_info_size(info)
    except (CameraInfoRejected, AttributeError, TypeError, ValueError):
        return None
    fx, fy = k[0] / binning_x, k[4] / binning_y
    if source_width > 0 and source_height > 0 and (source_width, source_height) != (int(width), int(height)):
        fx, fy = fx * width / source_width, fy * height / source_height
    return float(np.sqrt(fx * fy))


def scale_camera_info(info: Any, width: int, height: int) -> dict[str, Any]:
    """CameraInfo fields (all but header) for the camera's image resized to width x height.

    Use as ``CameraInfo(header=image_header, roi=RegionOfInterest(**f.pop('roi')), **f)``.
    k, r, p, d are float64 numpy arrays (rclpy's sequence field ``d`` wants a list or
    array.array; the ROS node converts). Raises CameraInfoRejected for an uncalibrated or
    malformed CameraInfo and for an empty target size.
    """
    if int(width) <= 0 or int(height) <= 0:
        raise CameraInfoRejected("bad_target_size", f"cannot scale a CameraInfo to {width}x{height}")
    if int(info.width) <= 0 or int(info.height) <= 0:
        raise CameraInfoRejected("zero_size", f"CameraInfo is for a {info.width}x{info.height} image")
    k = _matrix(info, "k", 9)
    p = _matrix(info, "p", 12)
    r = _matrix(info, "r", 9)
    d = _matrix(info, "d", None)
    if k[0] <= 0 or k[4] <= 0:
        # An all-zero K is how drivers say "not calibrated"; nothing can be projected with it.
        raise CameraInfoRejected("bad_intrinsics", f"CameraInfo has focal lengths fx={k[0]}, fy={k[4]}")

    x_offset, y_offset, roi_width, roi_height = _roi(info)
    if roi_width <= 0 or roi_height <= 0 or x_offset + roi_width > int(info.width) or y_offset + roi_height > int(info.height):
        raise CameraInfoRejected("bad_roi", f"CameraInfo ROI {roi_width}x{roi_height}+{x_offset}+{y_offset} "
                                 f"does not fit a {info.width}x{info.height} sensor")
    binning_x, binning_y = _binning(info)
    source_width, source_height = camera_info_size(info)
    if source_width == 0 or source_height == 0:
        raise CameraInfoRejected("zero_size", f"binning {binning_x}x{binning_y} leaves no pixels of the ROI")
    # K and P describe full-resolution sensor pixels; the image the node received is the ROI,
    # binned. One scale from sensor pixels to output pixels covers binning and resize together.
    scale_x = width / source_width / binning_x
    scale_y = height / source_height / binning_y

    # Pixel centres sit at integer coordinates and a resize (cv2.resize, torch interpolate with
    # align_corners=False) maps edges to edges, so u_out + 0.5 = (u_in + 0.5) * scale. As an
    # affine map of sensor pixels it is applied to K and P by one product, which also scales
    # skew, P's Tx/Ty (-f * baseline, lengths in pixels) and keeps the homogeneous row. Plain
    # c * scale would put the principal point (scale - 1) / 2 px off, 0.375 px at quarter size.
    # (runtime/geometry.resize_affine is the same map; io stays below runtime, and
    # test_geometry checks that the two agree.)
    to_output = np.array([
        [scale_x, 0.0, (0.5 - x_offset) * scale_x - 0.5],
        [0.0, scale_y, (0.5 - y_offset) * scale_y - 0.5],
        [0.0, 0.0, 1.0],
    ])
    k_out = (to_output @ k.reshape(3, 3)).reshape(-1)
    p_out = (to_output @ p.reshape(3, 4)).reshape(-1)

    if not (np.all(np.isfinite(k_out)) and np.all(np.isfinite(p_out))):
        raise CameraInfoRejected("nonfinite", "scaled intrinsics overflowed")
    return {
        "height": int(height),
        "width": int(width),
        "distortion_model": str(getattr(info, "distortion_model", "") or ""),
        # Distortion coefficients act on normalised image coordinates (x/z, y/z), which a resize
        # does not change; R is the rectification rotation, also independent of pixel size.
        "d": d.copy(),
        "k": k_out,
        "r": r.copy(),
        "p": p_out,
        # The published image is a whole resized picture and K/P above already describe it, so
        # binning and ROI are reset: keeping the camera's would make image_geometry apply them twice.
        "binning_x": 0,
        "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
    }
