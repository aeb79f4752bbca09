"""Result -> message fields: the arrays and plain values every output message is made of.

ROS-free and in the Python types rclpy's generated setters take without a per-element check
(array.array for sequences, float64 numpy arrays for fixed arrays, Python ints); the bag replay
turns array.array into the numpy views rosbags serialises.
"""

from __future__ import annotations

import array
import math
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from hydranet_ros.io.media import depth_to_millimetres
from hydranet_ros.io.ros_image import image_fields
from hydranet_ros.outputs.choices import CONFIDENCE_ENCODINGS, UNKNOWN_LABEL
from hydranet_ros.runtime import result as result_stages

__all__ = [
    "UNKNOWN_LABEL",
    "CONFIDENCE_ENCODINGS",
    "depth_image",
    "confidence_image",
    "labels_with_unknown",
    "overlay_base",
    "to_msg_bytes",
    "message_fields",
    "camera_info_for_ros",
    "label_info_content",
    "label_info_due",
    "float32",
    "STAGES",
    "stage_timings",
]


# -- images ---------------------------------------------------------------------------------


def depth_image(depth_m: np.ndarray, encoding: str) -> np.ndarray:
    """The depth image array for ``encoding``.

    32FC1: float32 metres, NaN where there is no estimate (REP 118; +/-Inf kept as REP 117 says).
    16UC1: uint16 millimetres, rounded (REP 118), 0 where there is no estimate (NaN, -Inf, not
    positive); a valid depth beyond 65.535 m, and +Inf (REP 117: nothing within range), saturates
    at 65535, "this far or farther", instead of turning into "no estimate".
    """
    depth = np.asarray(depth_m)
    if depth.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {depth.shape}")
    if encoding == "32FC1":
        return np.ascontiguousarray(depth, dtype=np.float32)
    if encoding == "16UC1":
        return depth_to_millimetres(depth)
    raise ValueError(f"depth encoding must be 32FC1 or 16UC1, got {encoding!r}")


def confidence_image(confidence: np.ndarray, encoding: str) -> np.ndarray:
    """semantic/confidence: 32FC1 probability in [0, 1], or mono8 round(255 x probability)."""
    if confidence.ndim != 2:
        raise ValueError(f"confidence must be HxW, got shape {confidence.shape}")
    if encoding == "32FC1":
        return np.ascontiguousarray(confidence, dtype=np.float32)
    if encoding == "mono8":
        scaled = np.clip(confidence, 0.0, 1.0) * 255.0
        return np.rint(scaled, out=scaled).astype(np.uint8)
    raise ValueError(f"confidence encoding must be one of {', '.join(CONFIDENCE_ENCODINGS)}, got {encoding!r}")


def labels_with_unknown(labels: np.ndarray, confidence: np.ndarray | None, min_confidence: float) -> np.ndarray:
    """``labels`` with UNKNOWN_LABEL where confidence < min_confidence (a new array); ``labels``
    itself when min_confidence is 0 (nothing is below it)."""
    if min_confidence <= 0.0:
        return labels
    if confidence is None:
        raise ValueError("min_confidence > 0 needs the confidence (ask the pipeline for it)")
    return np.where(confidence < min_confidence, np.uint8(UNKNOWN_LABEL), labels)


def overlay_base(frame: np.ndarray, color_order: str, size: tuple[int, int]) -> np.ndarray:
    """The camera frame as RGB at ``size`` (width, height), the background of semantic/overlay."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be HxWx3 uint8, got {frame.shape} {frame.dtype}")
    if color_order not in ("rgb", "bgr"):
        raise ValueError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
    rgb = frame[..., ::-1] if color_order == "bgr" else frame
    width, height = size
    if (frame.shape[1], frame.shape[0]) != (width, height):
        shrinking = width * height < frame.shape[0] * frame.shape[1]
        rgb = cv2.resize(np.ascontiguousarray(rgb), (width, height),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(rgb)


def to_msg_bytes(pixels: np.ndarray) -> array.array:
    """An array.array('B') holding the bytes of ``pixels``, for a message's uint8[] field.

    rclpy's generated setter stores an array.array('B') as it is. On Humble any other value
    (bytes, list, ndarray) goes through a per-element Python range check (hundreds of ms for a
    1080p image); on Jazzy bytes would be fast too, but array.array is fast on both. One memcpy.
    """
    flat = np.ascontiguousarray(pixels).reshape(-1).view(np.uint8)
    out = array.array("B")
    out.frombytes(flat.data)
    return out


def camera_info_for_ros(fields: Mapping[str, Any]) -> dict[str, Any]:
    """CameraInfo fields (from scale_camera_info) in the Python types rclpy's setters accept.

    Fixed arrays k, r, p: float64 numpy arrays of size 9, 9, 12 (stored without a check);
    sequence d: array.array('d'); integers as Python int (numpy ints fail rclpy's isinstance).
    ``roi`` becomes a dict of plain values for RegionOfInterest(**roi).
    """
    out: dict[str, Any] = {}
    for name, size in (("k", 9), ("r", 9), ("p", 12)):
        values = np.ascontiguousarray(np.asarray(fields[name], dtype=np.float64).reshape(-1))
        if values.size != size:
            raise ValueError(f"CameraInfo.{name} needs {size} values, got {values.size}")
        out[name] = values
    out["d"] = array.array("d", (float(v) for v in np.asarray(fields["d"], dtype=np.float64).reshape(-1)))
    for name in ("height", "width", "binning_x", "binning_y"):
        out[name] = int(fields.get(name, 0))
    out["distortion_model"] = str(fields.get("distortion_model", ""))
    roi = dict(fields.get("roi") or {})
    out["roi"] = {
        "x_offset": int(roi.get("x_offset", 0)),
        "y_offset": int(roi.get("y_offset", 0)),
        "height": int(roi.get("height", 0)),
        "width": int(roi.get("width", 0)),
        "do_rectify": bool(roi.get("do_rectify", False)),
    }
    return out


def message_fields(pixels: np.ndarray, encoding: str) -> dict[str, Any]:
    """sensor_msgs/Image fields of ``pixels`` with ``data`` as rclpy's fast array.array('B')."""
    fields = image_fields(pixels, encoding)
    fields["data"] = to_msg_bytes(fields["data"])
    return fields


# -- class metadata and the fused message -----------------------------------------------------


def label_info_content(class_names: Sequence[str], threshold: float = 0.0) -> dict[str, Any]:
    """vision_msgs/LabelInfo content: class id -> name, and the confidence threshold.

    ``threshold`` is the node's min_confidence: pixels whose class probability is below it carry
    UNKNOWN_LABEL (255), which the class map does not name. 0.0: every pixel has its argmax class.
    """
    if len(class_names) > np.iinfo(np.uint16).max + 1:
        raise ValueError(f"LabelInfo class ids are uint16; {len(class_names)} classes do not fit")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return {
        "class_map": [(class_id, str(name)) for class_id, name in enumerate(class_names)],
        "threshold": float32(threshold),
    }


def float32(value: float) -> float:
    """``value`` as a float32 field carries it (0.4 -> 0.4000000059604645): what a subscriber
    receives, whichever shell sent it."""
    return float(np.float32(value))


def label_info_due(last_sent: tuple[str, float] | None, frame_id: str, threshold: float = 0.0) -> bool:
    """Publish LabelInfo again? On the first frame, and when the camera's frame id or the
    confidence threshold changes (``last_sent``: the (frame_id, threshold) it was last sent
    with), so the latched message carries the frame id and threshold the label images have."""
    return last_sent is None or last_sent != (frame_id, float(threshold))


STAGES = (*result_stages.STAGES, "total")  # the fused message's *_ms fields


def stage_timings(timings_ms: Mapping[str, float]) -> dict[str, float]:
    """The fused message's *_ms fields; NaN for a stage the pipeline did not report."""
    return {f"{stage}_ms": float(timings_ms.get(stage, math.nan)) for stage in STAGES}
