"""Depth + labels + CameraInfo -> labelled 3D points in the camera's optical frame, without ROS.

What semantic/points and semantic/obstacles (sensor_msgs/PointCloud2) and `hydranet infer
--points` (PLY) are made of. Vectorised numpy: one pass over the (strided) output grid.

Geometry: a pixel (u, v) of the published image with depth z (metres along the optical axis,
REP 118) is the point x = (u - cx) z / fx, y = (v - cy) z / fy, z (REP 103 optical frame: x
right, y down, z forward). fx, fy, cx, cy come from the CameraInfo published with the depth
image (io.camera_info.scale_camera_info for the output size), never recomputed here: P's left
3x3 as image_geometry and depth_image_proc read it (the rectified camera; P's Tx, Ty place a
stereo pair's second camera and are left out, as depth_image_proc does), or K where a driver
leaves P empty. Lens distortion is not removed: like depth_image_proc, this assumes a rectified
image (subscribe the node to image_rect for a camera with strong distortion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from hydranet_ros.io.camera_info import pinhole
from hydranet_ros.outputs.choices import CloudSettings
from hydranet_ros.outputs.fields import to_msg_bytes

__all__ = [
    "POINT_DTYPE", "POINT_STEP", "POINT_FIELDS", "FLOAT32", "UINT8", "Intrinsics", "label_mask",
    "packed_palette", "packed_rgb", "cloud_points", "settings_cloud", "point_cloud_fields",
]

# sensor_msgs/PointField datatypes used here.
UINT8, FLOAT32 = 2, 7
# One point: 24 bytes, every field aligned to its size; rgb is PCL's packed float (0x00RRGGBB in
# a float32's bytes), which rviz2's RGB8 colour transformer and pcl::fromROSMsg read.
POINT_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32), ("rgb", 12, FLOAT32),
    ("confidence", 16, FLOAT32), ("label", 20, UINT8),
)
POINT_STEP = 24
POINT_DTYPE = np.dtype({
    "names": [name for name, _, _ in POINT_FIELDS],
    "formats": ["<f4" if datatype == FLOAT32 else "u1" for _, _, datatype in POINT_FIELDS],
    "offsets": [offset for _, offset, _ in POINT_FIELDS],
    "itemsize": POINT_STEP,
})


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the published image, pixels."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_camera_info(cls, fields: Mapping[str, Any]) -> "Intrinsics":
        """From CameraInfo fields (scale_camera_info's, or a message's k and p): P's when P is
        filled in (fx, fy > 0), else K's."""
        values = pinhole(fields["k"], fields["p"])  # the rule depth's focal length follows too
        if values is None:
            raise ValueError(f"CameraInfo has no usable focal length (K = {np.asarray(fields['k']).reshape(-1).tolist()})")
        return cls(*values)


def label_mask(ids: frozenset[int]) -> np.ndarray:
    """A 256-entry bool table: True for the label ids kept."""
    mask = np.zeros(256, bool)
    mask[list(ids)] = True
    return mask


def packed_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 ...x3 RGB -> uint32 0x00RRGGBB (PCL's packed colour), same leading shape."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    return (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]


def packed_palette(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """256 packed colours by label id; ids without a colour (255 = unknown) are black."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    return packed_rgb(table)


def cloud_points(depth_m: np.ndarray, labels: np.ndarray, confidence: np.ndarray | None, intrinsics: Intrinsics, *,
                 keep: np.ndarray, stride: int = 1, max_range_m: float = 0.0, organized: bool = False,
                 palette_packed: np.ndarray | None = None, camera_rgb: np.ndarray | None = None) -> np.ndarray:
    """The points of every ``stride``-th pixel (rows and columns) as a POINT_DTYPE array.

    depth_m, labels, confidence (None: NaN) and camera_rgb are the published images (HxW, HxWx3);
    ``keep`` is label_mask's table. A point is valid where depth is finite and > 0, its label is
    kept and (max_range_m > 0) its distance from the camera is at most max_range_m. organized:
    (H/stride, W/stride) with NaN x, y, z for the others; else (N,) valid points only, row by row.
    Colour: ``palette_packed[label]`` (packed_palette) or the camera's pixel, exactly one given.
    """
    if (palette_packed is None) == (camera_rgb is None):
        raise ValueError("give exactly one of palette_packed and camera_rgb")
    if depth_m.shape != labels.shape or (confidence is not None and confidence.shape != labels.shape):
        raise ValueError(f"depth {depth_m.shape}, labels {labels.shape} and confidence must have one shape")
    height, width = labels.shape
    z = depth_m[::stride, ::stride]
    ids = labels[::stride, ::stride]
    # Per column and per row: the ray's x/z and y/z, so a point is three products.
    ray_x = ((np.arange(0, width, stride, dtype=np.float64) - intrinsics.cx) / intrinsics.fx).astype(np.float32)
    ray_y = ((np.arange(0, height, stride, dtype=np.float64) - intrinsics.cy) / intrinsics.fy).astype(np.float32)
    with np.errstate(invalid="ignore"):  # NaN depth compares False: invalid, as meant
        valid = (z > 0) & np.isfinite(z) & keep[ids]
        if max_range_m > 0:
            ray_length = np.sqrt(1.0 + ray_x[None, :] ** 2 + ray_y[:, None] ** 2)
            valid &= z * ray_length <= max_range_m
    if palette_packed is not None:
        colour = palette_packed[ids]
    else:
        if camera_rgb.shape[:2] != labels.shape:
            raise ValueError(f"camera image {camera_rgb.shape[:2]} is not the labels' size {labels.shape}")
        colour = packed_rgb(camera_rgb[::stride, ::stride])
    conf = confidence[::stride, ::stride] if confidence is not None else None

    # Products and copies go straight into the fields of one zeroed array (zeroed: the 3 padding
    # bytes of each point are defined too): no temporary per field, which at 640x480 is most of
    # the time a cloud takes.
    if organized:
        points = np.zeros(z.shape, POINT_DTYPE)
        depth = points["z"]
        np.copyto(depth, z, casting="same_kind")
        depth[~valid] = np.nan
        np.multiply(depth, ray_x[None, :], out=points["x"])
        np.multiply(depth, ray_y[:, None], out=points["y"])
        points["rgb"] = colour.view(np.float32)
        points["confidence"] = conf if conf is not None else np.nan
        points["label"] = ids
        return points

    # Dense: boolean selections (one pass each), not index arrays (a gather per field).
    points = np.zeros(int(np.count_nonzero(valid)), POINT_DTYPE)
    depth = points["z"]
    depth[...] = z[valid]
    np.multiply(depth, np.broadcast_to(ray_x[None, :], z.shape)[valid], out=points["x"])
    np.multiply(depth, np.broadcast_to(ray_y[:, None], z.shape)[valid], out=points["y"])
    points["rgb"] = colour[valid].view(np.float32)
    points["confidence"] = conf[valid] if conf is not None else np.nan
    points["label"] = ids[valid]
    return points


def settings_cloud(depth_m: np.ndarray, labels: np.ndarray, confidence: np.ndarray | None, intrinsics: Intrinsics,
                   settings: CloudSettings, *, classes: frozenset[int], palette: Sequence[Sequence[int]],
                   camera_rgb: np.ndarray | None = None, organized: bool | None = None) -> np.ndarray:
    """cloud_points as the node's points_* parameters and `hydranet infer --points` ask for it:
    the label ids ``classes``, coloured by class (``palette``) or with the camera's pixel
    (``camera_rgb``) as ``settings.color`` says, organised as the settings say unless
    ``organized`` is given (semantic/obstacles is always dense)."""
    colour = ({"camera_rgb": camera_rgb} if settings.color == "camera"
              else {"palette_packed": packed_palette(palette)})
    return cloud_points(depth_m, labels, confidence, intrinsics, keep=label_mask(classes), stride=settings.stride,
                        max_range_m=settings.max_range_m,
                        organized=settings.organized if organized is None else organized, **colour)


def point_cloud_fields(points: np.ndarray) -> dict[str, Any]:
    """sensor_msgs/PointCloud2 fields (all but header) of cloud_points' array: an organised cloud
    (2-D array) keeps its rows and is dense only without NaN; a 1-D array is one dense row.
    ``fields`` holds (name, offset, datatype, count) tuples; ``data`` is array.array('B')."""
    if points.dtype != POINT_DTYPE or points.ndim not in (1, 2):
        raise ValueError(f"expected a 1-D or 2-D array of POINT_DTYPE, got {points.ndim}-D {points.dtype}")
    height, width = (1, points.shape[0]) if points.ndim == 1 else points.shape
    dense = points.ndim == 1 or not bool(np.isnan(points["z"]).any())
    return {
        "height": int(height),
        "width": int(width),
        "fields": [(name, offset, datatype, 1) for name, offset, datatype in POINT_FIELDS],
        "is_bigendian": False,
        "point_step": POINT_STEP,
        "row_step": POINT_STEP * int(width),
        "data": to_msg_bytes(points),
        "is_dense": dense,
    }
