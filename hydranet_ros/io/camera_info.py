"""sensor_msgs/CameraInfo for images the node publishes at a resolution other than the camera's.

depth_image_proc and image_geometry project a depth or label image into 3D with the CameraInfo
that has the same header, so its K and P must describe the published image, not the camera's.
Duck-typed like ros_image: reads the ROS 2 field names (k, p, d, r, height, width,
distortion_model, binning_x, binning_y, roi) from any object, such as a calibration file read by
read_camera_calibration (`hydranet infer --points --camera-info FILE`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hydranet_ros.errors import UsageError

__all__ = ["CameraInfoRejected", "camera_info_size", "camera_info_matches", "scale_camera_info", "frame_focal_px", "pinhole",
           "CameraCalibration", "read_camera_calibration"]


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


def _checked_k(info: Any) -> np.ndarray:
    """K of a CameraInfo whose size, intrinsics, ROI and binning describe an image; else
    CameraInfoRejected (one check for publishing a scaled CameraInfo and for the depth's focal
    length: a binning of 1000 on a 640x480 sensor once gave 0.5 px and near-zero depth)."""
    if int(info.width) <= 0 or int(info.height) <= 0:
        raise CameraInfoRejected("zero_size", f"CameraInfo is for a {info.width}x{info.height} image")
    k = _matrix(info, "k", 9)
    if k[0] <= 0 or k[4] <= 0:
        # An all-zero K is how drivers say "not calibrated"; nothing can be projected with it.
        raise CameraInfoRejected("bad_intrinsics", f"CameraInfo has focal lengths fx={k[0]}, fy={k[4]}")
    x_offset, y_offset, roi_width, roi_height = _roi(info)
    if roi_width <= 0 or roi_height <= 0 or x_offset + roi_width > int(info.width) or y_offset + roi_height > int(info.height):
        raise CameraInfoRejected("bad_roi", f"CameraInfo ROI {roi_width}x{roi_height}+{x_offset}+{y_offset} "
                                 f"does not fit a {info.width}x{info.height} sensor")
    source_width, source_height = camera_info_size(info)
    if source_width == 0 or source_height == 0:
        binning_x, binning_y = _binning(info)
        raise CameraInfoRejected("zero_size", f"binning {binning_x}x{binning_y} leaves no pixels of the ROI")
    return k


def camera_info_size(info: Any) -> tuple[int, int]:
    """(width, height) of the images this CameraInfo describes, after its ROI and binning."""
    binning_x, binning_y = _binning(info)
    _, _, width, height = _roi(info)
    return width // binning_x, height // binning_y


def camera_info_matches(info: Any, width: int, height: int) -> bool:
    """Whether ``info`` describes a width x height image (a mismatch is worth a warning)."""
    return camera_info_size(info) == (int(width), int(height))


def pinhole(k: Any, p: Any) -> tuple[float, float, float, float] | None:
    """(fx, fy, cx, cy) as image_geometry and depth_image_proc read a CameraInfo: P's left 3x3,
    the camera of the rectified image (what the node, its point cloud and depth's focal length
    assume they are given), when P is filled in (fx, fy > 0); else K's, where a driver leaves P
    empty; None when neither has a focal length. P's Tx, Ty (a stereo pair's second camera) are
    left out, as depth_image_proc does."""
    if p is not None:
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        if p.size == 12 and p[0] > 0 and p[5] > 0:
            return float(p[0]), float(p[5]), float(p[2]), float(p[6])
    k = np.asarray(k, dtype=np.float64).reshape(-1)
    if k.size == 9 and k[0] > 0 and k[4] > 0:
        return float(k[0]), float(k[4]), float(k[2]), float(k[5])
    return None


def frame_focal_px(info: Any, width: int, height: int) -> float | None:
    """The camera's focal length (sqrt(fx * fy)) in pixels of a width x height frame it sent, for
    metric depth (runtime/focal.py); None when ``info`` is missing, uncalibrated or malformed.

    fx, fy are P's (K's where P is empty): the focal length the point cloud projects with, so that
    depth and the cloud agree (for a rectified image P is its camera; K is the raw lens's). They
    are in full-sensor pixels; the frame is the ROI binned (and, if its size still differs, the
    camera's image resized by a driver or a republisher: the focal length scales with the width).
    """
    if info is None:
        return None
    try:
        k = _checked_k(info)  # what publishing refuses gives no focal length either
        binning_x, binning_y = _binning(info)
        source_width, source_height = camera_info_size(info)
    except (CameraInfoRejected, AttributeError, TypeError, ValueError):
        return None
    try:
        p = _matrix(info, "p", 12)
    except (CameraInfoRejected, AttributeError):
        p = None  # empty, malformed or absent: K's focal length, as pinhole() reads it
    fx, fy, _, _ = pinhole(k, p)
    fx, fy = fx / binning_x, fy / binning_y
    if source_width > 0 and source_height > 0 and (source_width, source_height) != (int(width), int(height)):
        fx, fy = fx * width / source_width, fy * height / source_height
    with np.errstate(over="ignore", under="ignore"):  # such a K is refused just below, not warned about
        focal = float(np.sqrt(fx * fy))
    return focal if 0.0 < focal < math.inf else None  # K of 1e-200 or 1e200 passes the checks above


def scale_camera_info(info: Any, width: int, height: int) -> dict[str, Any]:
    """CameraInfo fields (all but header) for the camera's image resized to width x height.

    Use as ``CameraInfo(header=image_header, roi=RegionOfInterest(**f.pop('roi')), **f)``.
    k, r, p, d are float64 numpy arrays (rclpy's sequence field ``d`` wants a list or
    array.array; the ROS node converts). Raises CameraInfoRejected for an uncalibrated or
    malformed CameraInfo and for an empty target size.
    """
    if int(width) <= 0 or int(height) <= 0:
        raise CameraInfoRejected("bad_target_size", f"cannot scale a CameraInfo to {width}x{height}")
    k = _checked_k(info)
    p = _matrix(info, "p", 12)
    r = _matrix(info, "r", 9)
    d = _matrix(info, "d", None)
    x_offset, y_offset, _, _ = _roi(info)
    binning_x, binning_y = _binning(info)
    source_width, source_height = camera_info_size(info)
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


@dataclass(frozen=True)
class CameraCalibration:
    """A camera calibration file, with the field names of sensor_msgs/CameraInfo, so that
    scale_camera_info and everything else that reads a CameraInfo reads it too."""

    width: int
    height: int
    k: tuple[float, ...]
    d: tuple[float, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]
    distortion_model: str = ""
    camera_name: str = ""
    binning_x: int = 0
    binning_y: int = 0
    roi: None = None  # a calibration file describes the whole image


def _yaml_matrix(document: dict, key: str, rows: int | None, cols: int | None, *, required: bool) -> list[float] | None:
    """The ``data`` of a {rows, cols, data} entry, checked; None when absent and not required."""
    entry = document.get(key)
    if entry is None:
        if required:
            raise ValueError(f"no {key}")
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("data"), list):
        raise ValueError(f"{key} must be a mapping with rows, cols and data")
    data = entry["data"]
    if rows is not None and (entry.get("rows") != rows or entry.get("cols") != cols or len(data) != rows * cols):
        raise ValueError(f"{key} must be {rows}x{cols} (rows: {rows}, cols: {cols}, {rows * cols} values), "
                         f"got rows {entry.get('rows')}, cols {entry.get('cols')}, {len(data)} values")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in data):
        raise ValueError(f"{key}.data holds values that are not finite numbers")
    return [float(v) for v in data]


def read_camera_calibration(path: str | Path) -> CameraCalibration:
    """A ROS camera calibration YAML, as camera_calibration (and camera_info_manager) write it:
    image_width, image_height, camera_name, camera_matrix, distortion_model,
    distortion_coefficients, rectification_matrix, projection_matrix. K and the size are needed;
    without the others: no distortion, R = identity, P = [K | 0]. UsageError names the file and
    what is wrong."""
    import yaml

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the camera calibration ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a camera calibration YAML ({str(exc).splitlines()[0]})") from None
    try:
        if not isinstance(document, dict):
            raise ValueError("expected a mapping with image_width, image_height and camera_matrix")
        width, height = document.get("image_width"), document.get("image_height")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            raise ValueError(f"image_width and image_height must be positive integers, got {width!r} and {height!r}")
        k = _yaml_matrix(document, "camera_matrix", 3, 3, required=True)
        if not (k[0] > 0 and k[4] > 0):
            raise ValueError(f"camera_matrix has focal lengths fx={k[0]}, fy={k[4]} (not calibrated?)")
        d = _yaml_matrix(document, "distortion_coefficients", None, None, required=False) or []
        r = _yaml_matrix(document, "rectification_matrix", 3, 3, required=False) or [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
        p = _yaml_matrix(document, "projection_matrix", 3, 4, required=False)
        if p is None:
            p = [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0]
        model = document.get("distortion_model", "plumb_bob" if d else "")
        name = document.get("camera_name", "")
        if not isinstance(model, str) or not isinstance(name, str):
            raise ValueError("distortion_model and camera_name must be text")
    except ValueError as exc:
        raise UsageError(f"{path}: not a usable camera calibration: {exc}") from None
    return CameraCalibration(width=width, height=height, k=tuple(k), d=tuple(d), r=tuple(r), p=tuple(p),
                             distortion_model=model, camera_name=name)
