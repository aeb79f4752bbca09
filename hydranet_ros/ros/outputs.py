"""What the perception node publishes, decided without ROS.

The node asks these functions which outputs a frame needs (nobody subscribed = not computed),
turns network results into message-ready arrays (REP 118 depth, overlay base image), fills
LabelInfo and the fused message, and reports diagnostics. The node itself only copies the
returned plain values into message objects.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from hydranet_ros.io.media import depth_to_millimetres
from hydranet_ros.runtime import result as result_stages
from hydranet_ros.runtime.frame_worker import WorkerStats

__all__ = [
    "OutputSpec",
    "OUTPUTS",
    "LABEL_INFO_TOPIC",
    "FramePlan",
    "plan_frame",
    "depth_image",
    "overlay_base",
    "label_info_content",
    "label_info_due",
    "stage_timings",
    "to_msg_bytes",
    "camera_info_for_ros",
    "DiagnosticsReport",
    "diagnostics_report",
    "RejectionThrottle",
    "OK",
    "WARN",
    "ERROR",
]


@dataclass(frozen=True)
class OutputSpec:
    topic: str  # relative, so namespaces and remapping work
    switch: str  # the publish_<switch> parameter that turns it on
    message: str


# Per-frame outputs. Topic names are relative: the launch file's namespace places them.
OUTPUTS: dict[str, OutputSpec] = {
    "labels": OutputSpec("semantic/labels", "labels", "sensor_msgs/Image"),
    "color": OutputSpec("semantic/color", "color", "sensor_msgs/Image"),
    "overlay": OutputSpec("semantic/overlay", "overlay", "sensor_msgs/Image"),
    "depth": OutputSpec("depth/image", "depth", "sensor_msgs/Image"),
    "depth_camera_info": OutputSpec("depth/camera_info", "camera_info", "sensor_msgs/CameraInfo"),
    "semantic_camera_info": OutputSpec("semantic/camera_info", "camera_info", "sensor_msgs/CameraInfo"),
    "fused": OutputSpec("hydranet/result", "fused", "hydranet_ros/HydraNetResult"),
}
# Latched, published when the frame id is first seen, not per frame.
LABEL_INFO_TOPIC = "semantic/label_info"

CAMERA_INFO_OUTPUTS = ("depth_camera_info", "semantic_camera_info")


@dataclass(frozen=True)
class FramePlan:
    """The work one frame needs. ``outputs`` empty = nothing to do for this frame."""

    outputs: frozenset[str] = frozenset()

    @property
    def publishes(self) -> bool:
        return bool(self.outputs)

    @property
    def run_inference(self) -> bool:
        """False when only CameraInfo is wanted: its size is known without running the network."""
        return bool(self.network_outputs)

    @property
    def labels_image(self) -> bool:
        return bool(self.outputs & {"labels", "fused"})

    @property
    def depth_image(self) -> bool:
        return bool(self.outputs & {"depth", "fused"})

    @property
    def color(self) -> bool:
        return "color" in self.outputs

    @property
    def overlay(self) -> bool:
        return "overlay" in self.outputs

    @property
    def camera_info(self) -> bool:
        return bool(self.outputs & {*CAMERA_INFO_OUTPUTS, "fused"})

    @property
    def network_outputs(self) -> frozenset[str]:
        """What to ask Pipeline.process for: labels feed labels, colour, overlay and fused;
        depth feeds depth and fused. The other head's post-processing is skipped."""
        wanted = set()
        if self.labels_image or self.color or self.overlay:
            wanted.add("labels")
        if self.depth_image:
            wanted.add("depth")
        return frozenset(wanted)


def plan_frame(publish: Mapping[str, bool], subscribers: Mapping[str, int], *, have_camera_info: bool) -> FramePlan:
    """Which per-frame outputs to compute: switched on AND someone subscribed.

    ``publish`` maps switch names (labels, color, ..., camera_info, fused) to booleans;
    ``subscribers`` maps output names (keys of OUTPUTS) to subscription counts. CameraInfo
    outputs also need a CameraInfo from the camera.
    """
    chosen = set()
    for name, spec in OUTPUTS.items():
        if not publish.get(spec.switch, False) or subscribers.get(name, 0) <= 0:
            continue
        if name in CAMERA_INFO_OUTPUTS and not have_camera_info:
            continue
        chosen.add(name)
    return FramePlan(frozenset(chosen))


# -- images ---------------------------------------------------------------------------------



def depth_image(depth_m: np.ndarray, encoding: str) -> np.ndarray:
    """The depth image array for ``encoding``.

    32FC1: float32 metres, NaN where there is no estimate (REP 118; +/-Inf kept as REP 117 says).
    16UC1: uint16 millimetres, rounded; 0 where there is no valid estimate, including values
    that are not positive or do not fit 16 bits (> 65.535 m): saturating would report a false
    distance, 0 is the REP 118 "invalid".
    """
    depth = np.asarray(depth_m)
    if depth.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {depth.shape}")
    if encoding == "32FC1":
        return np.ascontiguousarray(depth, dtype=np.float32)
    if encoding == "16UC1":
        return depth_to_millimetres(depth)
    raise ValueError(f"depth encoding must be 32FC1 or 16UC1, got {encoding!r}")


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


# -- class metadata and the fused message -----------------------------------------------------


def label_info_content(class_names: Sequence[str], threshold: float = 0.0) -> dict[str, Any]:
    """vision_msgs/LabelInfo content: class id -> name, and the confidence threshold.

    The labels are an argmax over all classes, so no confidence threshold was applied: 0.0.
    """
    if len(class_names) > np.iinfo(np.uint16).max + 1:
        raise ValueError(f"LabelInfo class ids are uint16; {len(class_names)} classes do not fit")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return {
        "class_map": [(class_id, str(name)) for class_id, name in enumerate(class_names)],
        "threshold": float(threshold),
    }


def label_info_due(last_frame_id: str | None, frame_id: str) -> bool:
    """Publish LabelInfo again? On the first frame, and when the camera's frame id changes,
    so the latched message carries the frame id the label images use."""
    return last_frame_id is None or last_frame_id != frame_id


STAGES = (*result_stages.STAGES, "total")  # the fused message's *_ms fields


def stage_timings(timings_ms: Mapping[str, float]) -> dict[str, float]:
    """The fused message's *_ms fields; NaN for a stage the pipeline did not report."""
    return {f"{stage}_ms": float(timings_ms.get(stage, math.nan)) for stage in STAGES}


# -- diagnostics -------------------------------------------------------------------------------

OK, WARN, ERROR = 0, 1, 2


@dataclass(frozen=True)
class DiagnosticsReport:
    level: int
    message: str
    values: list[tuple[str, str]] = field(default_factory=list)


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def diagnostics_report(
    *,
    state: str,
    current: WorkerStats | None,
    previous: WorkerStats | None,
    period_s: float,
    info: Mapping[str, Any],
    counters: Mapping[str, int] | None = None,
    timings_ms: Mapping[str, float] | None = None,
    problem: str = "",
) -> DiagnosticsReport:
    """One DiagnosticStatus worth of facts for the period since ``previous``.

    ``state``: lifecycle state label; ``info``: the pipeline's info (backend, precision,
    device, weights); ``counters``: node-level counts (frames skipped for lack of subscribers,
    CameraInfo rejections); ``problem``: why configure failed, if it did.
    Level: ERROR for a failed configure or processing errors in the period; WARN for rejected
    input in the period, or frames arriving but none processed; OK otherwise.
    """
    values: list[tuple[str, str]] = [("state", state)]
    # requested_backend: 'auto' when the node chose the engine itself; int8_gate: how close an
    # int8 model came to fp32 when it was built.
    for key in ("backend", "requested_backend", "precision", "device", "weights", "int8_gate"):
        if key in info:
            values.append((key, str(info[key])))
    if problem:
        return DiagnosticsReport(ERROR, problem, values)
    if current is None:
        return DiagnosticsReport(OK, f"{state}: no engine configured", values)

    before = previous or WorkerStats()
    period = max(period_s, 1e-9)
    received = current.received - before.received
    processed = current.processed - before.processed
    dropped = current.dropped - before.dropped
    rejected = current.rejected_total - before.rejected_total
    errors = current.errors - before.errors
    input_hz, output_hz = received / period, processed / period

    values += [
        ("input_rate_hz", _fmt(input_hz)),
        ("output_rate_hz", _fmt(output_hz)),
        ("frames_received", str(current.received)),
        ("frames_processed", str(current.processed)),
        ("frames_dropped", str(current.dropped)),
        ("frames_rejected", str(current.rejected_total)),
    ]
    values += [(f"rejected.{reason}", str(count)) for reason, count in sorted(current.rejected.items())]
    values += [("errors", str(current.errors))]
    if current.last_error:
        values.append(("last_error", current.last_error))
    latency = current.latency
    values += [
        ("latency_mean_ms", _fmt(latency.mean_ms)),
        ("latency_p95_ms", _fmt(latency.p95_ms)),
        ("latency_max_ms", _fmt(latency.max_ms)),
    ]
    for stage, ms in (timings_ms or {}).items():
        values.append((f"{stage}_ms", _fmt(ms)))
    for key, count in sorted((counters or {}).items()):
        values.append((key, str(count)))

    summary = f"{state}: {output_hz:.1f} Hz out of {input_hz:.1f} Hz in, {dropped} dropped"
    if errors > 0:
        return DiagnosticsReport(ERROR, f"{summary}; {errors} processing errors ({current.last_error})", values)
    if rejected > 0:
        reasons = ", ".join(f"{reason} x{count - before.rejected.get(reason, 0)}"
                            for reason, count in sorted(current.rejected.items())
                            if count > before.rejected.get(reason, 0))
        return DiagnosticsReport(WARN, f"{summary}; rejected input: {reasons}", values)
    if received > 0 and processed == 0 and not current.busy:
        return DiagnosticsReport(WARN, f"{summary}; frames arrive but none was processed", values)
    return DiagnosticsReport(OK, summary, values)


class RejectionThrottle:
    """Per-reason warning throttle: a flood of one bad message type logs once per interval,
    with the count of what was suppressed, and does not hide a different new problem.

    rclpy's own throttle keys on the calling line, so one warning call for all reasons would
    let the first reason silence every other one.
    """

    def __init__(self, *, interval_s: float = 5.0) -> None:
        if interval_s < 0:
            raise ValueError(f"interval_s must be >= 0, got {interval_s}")
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def check(self, reason: str, now: float) -> tuple[bool, int]:
        """(warn now?, how many warnings for this reason were suppressed since the last one)."""
        last = self._last.get(reason)
        if last is not None and now - last < self._interval:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return False, 0
        self._last[reason] = now
        return True, self._suppressed.pop(reason, 0)
