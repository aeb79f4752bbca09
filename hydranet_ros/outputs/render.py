"""One frame's outputs, built once for both shells: frame + Result + CameraInfo -> message fields.

``render`` runs the network as far as the frame plan needs and returns every planned output as
ready-to-copy message fields (Image fields with ``data`` as array.array('B'), CameraInfo fields
in rclpy's types). The node only puts a header on them and publishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydranet_ros.io.camera_info import CameraInfoRejected, scale_camera_info
from hydranet_ros.io.visuals import blend, colorize_labels
from hydranet_ros.outputs import fields as output_fields
from hydranet_ros.outputs.plan import FramePlan
from hydranet_ros.runtime.intake import Frame

__all__ = ["Rendered", "render"]


@dataclass
class Rendered:
    """Everything one frame publishes, minus the header.

    ``images``: output name (labels, depth, color, overlay) -> Image fields; ``camera_info``:
    CameraInfo fields for the published size (``roi`` as a dict), or None with the reason in
    ``camera_info_problem`` when the camera's CameraInfo could not be scaled.
    """

    plan: FramePlan
    size: tuple[int, int]  # (width, height) of the published images
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    camera_info: dict[str, Any] | None = None
    camera_info_problem: CameraInfoRejected | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def render(pipeline: Any, frame: Frame, plan: FramePlan, *, depth_encoding: str,
           overlay_alpha: float) -> Rendered | None:
    """Run the network for ``frame`` as far as ``plan`` needs and build every planned output.

    None when the plan publishes nothing (the last subscriber left while the frame waited).
    """
    if not plan.publishes:
        return None
    result = None
    if plan.run_inference:  # CameraInfo only: the output size is known without the network
        result = pipeline.process(frame.pixels, color_order=frame.color_order, outputs=plan.network_outputs)
    width, height = pipeline.output_size_for(frame.pixels.shape[1], frame.pixels.shape[0])
    rendered = Rendered(plan=plan, size=(width, height),
                        timings_ms=dict(result.timings_ms) if result is not None else {})
    preset = pipeline.preset
    if plan.labels_image:
        rendered.images["labels"] = output_fields.message_fields(result.labels, "mono8")
    if plan.depth_image:
        rendered.images["depth"] = output_fields.message_fields(output_fields.depth_image(result.depth_m, depth_encoding), depth_encoding)
    colour = colorize_labels(result.labels, preset.palette) if plan.color or plan.overlay else None
    if plan.color:
        rendered.images["color"] = output_fields.message_fields(colour, "rgb8")
    if plan.overlay:  # blended over the colour image drawn once for both outputs
        base = output_fields.overlay_base(frame.pixels, frame.color_order, (width, height))
        rendered.images["overlay"] = output_fields.message_fields(blend(base, colour, alpha=overlay_alpha), "rgb8")
    if plan.camera_info and frame.camera_info is not None:
        try:
            rendered.camera_info = output_fields.camera_info_for_ros(scale_camera_info(frame.camera_info, width, height))
        except CameraInfoRejected as exc:
            rendered.camera_info_problem = exc
    return rendered
