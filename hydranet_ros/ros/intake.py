"""One camera message through perception_node's frame path, without ROS.

The node's callbacks call exactly these two functions, so a test or a fuzzer that drives them
drives the node's own code:

- ``offer`` (executor thread): message -> HxWx3 frame -> FrameWorker.submit, or a named, counted
  rejection. Never raises for a bad message and never waits for inference.
- ``render`` (worker thread): frame -> network -> every output the frame plan asks for, as
  ready-to-copy message fields (Image fields with ``data`` as array.array('B'), CameraInfo fields
  in rclpy's types). The node only puts a header on them and publishes.

Every message ends as one of: published (rendered), rejected under a reason, dropped by the
newest-frame-wins worker, or skipped because nobody subscribes; the worker's counters add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hydranet_ros.io.camera_info import CameraInfoRejected, frame_focal_px, scale_camera_info
from hydranet_ros.io.ros_image import ImageRejected, image_fields, message_to_frame
from hydranet_ros.io.visuals import blend, colorize_labels
from hydranet_ros.ros import outputs
from hydranet_ros.runtime.frame_worker import FrameWorker

__all__ = ["Frame", "Refusal", "Rendered", "offer", "render", "message_fields"]


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


@dataclass
class Rendered:
    """Everything one frame publishes, minus the header.

    ``images``: output name (labels, depth, color, overlay) -> Image fields; ``camera_info``:
    CameraInfo fields for the published size (``roi`` as a dict), or None with the reason in
    ``camera_info_problem`` when the camera's CameraInfo could not be scaled.
    """

    plan: outputs.FramePlan
    size: tuple[int, int]  # (width, height) of the published images
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    camera_info: dict[str, Any] | None = None
    camera_info_problem: CameraInfoRejected | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Where metric depth's focal length came from: 'camera' (CameraInfo's K), 'assumed' (the
    # training camera's field of view), 'none' (weights without a training camera); None
    # when the frame ran no network.
    depth_focal: str | None = None


def message_fields(pixels: np.ndarray, encoding: str) -> dict[str, Any]:
    """sensor_msgs/Image fields of ``pixels`` with ``data`` as rclpy's fast array.array('B')."""
    fields = image_fields(pixels, encoding)
    fields["data"] = outputs.to_msg_bytes(fields["data"])
    return fields


def render(pipeline: Any, frame: Frame, plan: outputs.FramePlan, *, depth_encoding: str,
           overlay_alpha: float) -> Rendered | None:
    """Run the network for ``frame`` as far as ``plan`` needs and build every planned output.

    None when the plan publishes nothing (the last subscriber left while the frame waited).
    """
    if not plan.publishes:
        return None
    result = None
    if plan.run_inference:  # CameraInfo only: the output size is known without the network
        # Metric depth for this camera: its focal length from CameraInfo, in the frame's pixels.
        focal = frame_focal_px(frame.camera_info, frame.pixels.shape[1], frame.pixels.shape[0])
        result = pipeline.process(frame.pixels, color_order=frame.color_order, outputs=plan.network_outputs,
                                  focal_px=focal)
    width, height = pipeline.output_size_for(frame.pixels.shape[1], frame.pixels.shape[0])
    scale = getattr(result, "depth_scale", None)
    rendered = Rendered(plan=plan, size=(width, height),
                        timings_ms=dict(result.timings_ms) if result is not None else {},
                        depth_focal=scale.source if scale is not None else None)
    preset = pipeline.preset
    if plan.labels_image:
        rendered.images["labels"] = message_fields(result.labels, "mono8")
    if plan.depth_image:
        rendered.images["depth"] = message_fields(outputs.depth_image(result.depth_m, depth_encoding), depth_encoding)
    colour = colorize_labels(result.labels, preset.palette) if plan.color or plan.overlay else None
    if plan.color:
        rendered.images["color"] = message_fields(colour, "rgb8")
    if plan.overlay:  # blended over the colour image drawn once for both outputs
        base = outputs.overlay_base(frame.pixels, frame.color_order, (width, height))
        rendered.images["overlay"] = message_fields(blend(base, colour, alpha=overlay_alpha), "rgb8")
    if plan.camera_info and frame.camera_info is not None:
        try:
            rendered.camera_info = outputs.camera_info_for_ros(scale_camera_info(frame.camera_info, width, height))
        except CameraInfoRejected as exc:
            rendered.camera_info_problem = exc
    return rendered
