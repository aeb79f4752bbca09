"""/diagnostics content and the per-reason warning throttle, decided without ROS.

The node copies a DiagnosticsReport into a DiagnosticStatus; the bag replay writes none (it
describes a live process: rates, drops), but the report is a plain function a test can check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from hydranet_ros.runtime.batch_worker import BatchStats
from hydranet_ros.runtime.frame_worker import WorkerStats

__all__ = ["OK", "WARN", "ERROR", "DiagnosticsReport", "diagnostics_report", "batch_report", "RejectionThrottle",
           "POINTS_WITHOUT_CAMERA_INFO", "points_note"]

# Counter: frames whose point clouds were wanted (switched on, subscribed) but had no CameraInfo.
POINTS_WITHOUT_CAMERA_INFO = "points_skipped_no_camera_info"


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
    notes: tuple[str, ...] = (),
) -> DiagnosticsReport:
    """One DiagnosticStatus worth of facts for the period since ``previous``.

    ``state``: lifecycle state label; ``info``: the pipeline's info (backend, precision,
    device, weights); ``counters``: node-level counts (frames skipped for lack of subscribers,
    CameraInfo rejections); ``problem``: why configure failed, if it did.
    ``notes``: outputs that could not be made in the period and why (points_note), each a WARN.
    Level: ERROR for a failed configure or processing errors in the period; WARN for rejected
    input or notes in the period, or frames arriving but none processed; OK otherwise.
    """
    values: list[tuple[str, str]] = [("state", state)]
    # requested_backend: 'auto' when the node chose the engine itself; int8_gate: how close an
    # int8 model came to fp32 when it was built.
    for key in ("backend", "requested_backend", "precision", "device", "weights", "depth_focal", "int8_gate"):
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
    values += [(f"dropped.{reason}", str(count)) for reason, count in sorted(current.dropped_reasons.items())]
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
    summary += "".join(f"; {note}" for note in notes)
    if errors > 0:
        return DiagnosticsReport(ERROR, f"{summary}; {errors} processing errors ({current.last_error})", values)
    if rejected > 0:
        reasons = ", ".join(f"{reason} x{count - before.rejected.get(reason, 0)}"
                            for reason, count in sorted(current.rejected.items())
                            if count > before.rejected.get(reason, 0))
        return DiagnosticsReport(WARN, f"{summary}; rejected input: {reasons}", values)
    if received > 0 and processed == 0 and not current.busy:
        return DiagnosticsReport(WARN, f"{summary}; frames arrive but none was processed", values)
    return DiagnosticsReport(WARN if notes else OK, summary, values)


def points_note(skipped_now: int, skipped_before: int, *, use_camera_info: bool) -> str | None:
    """Why semantic/points and semantic/obstacles were not published in the period, or None.
    ``skipped_*``: the POINTS_WITHOUT_CAMERA_INFO counter now and at the last report."""
    if skipped_now <= skipped_before:
        return None
    if not use_camera_info:
        return ("no point cloud: semantic/points and semantic/obstacles need CameraInfo, and use_camera_info "
                "is false")
    return ("no point cloud: semantic/points and semantic/obstacles need CameraInfo, and none has arrived on "
            "camera_info")


def batch_report(*, state: str, current: BatchStats | None, previous: BatchStats | None, period_s: float,
                 info: Mapping[str, Any], batch_timeout_ms: float, problem: str = "") -> DiagnosticsReport:
    """The multi-camera node's own status beside its per-camera ones (``diagnostics_report`` for
    each camera): how the cameras' frames were batched in the period since ``previous``. Always
    OK unless configure failed: each camera's status carries its own trouble."""
    values: list[tuple[str, str]] = [("state", state)]
    for key in ("backend", "precision", "device", "weights", "engine_batch"):
        if key in info:
            values.append((key, str(info[key])))
    if problem:
        return DiagnosticsReport(ERROR, problem, values)
    if current is None:
        return DiagnosticsReport(OK, f"{state}: no engine configured", values)
    before = previous or BatchStats()
    period = max(period_s, 1e-9)
    batches, frames = current.batches - before.batches, current.frames - before.frames
    timed_out = current.timed_out - before.timed_out
    values += [
        ("cameras", str(current.cameras)),
        ("batch_timeout_ms", _fmt(batch_timeout_ms)),
        ("batch_rate_hz", _fmt(batches / period)),
        ("batch_mean_size", _fmt(frames / batches if batches else 0.0)),
        ("batches", str(current.batches)),
        ("batches_timed_out", str(current.timed_out)),
        ("batch_largest", str(current.largest)),
    ]
    summary = (f"{state}: {current.cameras} cameras, {batches / period:.1f} batches/s of "
               f"{frames / batches if batches else 0.0:.1f} frames, {timed_out} timed out")
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
