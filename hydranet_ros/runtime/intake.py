"""A camera message into perception_node's frame worker, without ROS.

The node's image callback (executor thread) calls ``offer``: message -> HxWx3 frame ->
FrameWorker.submit, or a named, counted rejection. It never raises for a bad message and never
waits for inference. The worker thread then builds the outputs with
hydranet_ros.outputs.render.render, so a test or a fuzzer that drives these two drives the
node's own code.

Every message ends as one of: published (rendered), rejected under a reason, dropped by the
newest-frame-wins worker, or skipped because nobody subscribes; the worker's counters add up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hydranet_ros.io.ros_image import ImageRejected, message_to_frame
from hydranet_ros.runtime.frame_worker import FrameWorker

__all__ = ["Frame", "Refusal", "offer"]


@dataclass(frozen=True)
class Frame:
    """What the worker needs of one camera message."""

    pixels: np.ndarray
    color_order: str
    header: Any
    camera_info: Any | None


@dataclass(frozen=True)
class Refusal:
    """Why a message was not submitted: ``reason`` is the counted key, ``detail`` the log line."""

    reason: str
    detail: str


def offer(worker: FrameWorker, msg: Any, *, compressed: bool, max_pixels: int | None,
          camera_info: Any | None) -> Refusal | None:
    """Convert ``msg`` and submit it to ``worker``; None when submitted, else the counted refusal."""
    try:
        pixels, color_order = message_to_frame(msg, compressed=compressed, max_pixels=max_pixels)
    except ImageRejected as exc:
        worker.reject(exc.reason)
        return Refusal(exc.reason, str(exc))
    worker.submit(Frame(pixels, color_order, getattr(msg, "header", None), camera_info))
    return None
