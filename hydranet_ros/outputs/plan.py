"""Which outputs a frame needs: the node's topic table and its frame plan, decided without ROS.

Both shells plan with these: the node (switched on AND someone subscribed) and the bag replay
(switched on; a recording listens to everything). Nothing that nobody wants is computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = ["OutputSpec", "OUTPUTS", "LABEL_INFO_TOPIC", "LABEL_INFO_MESSAGE", "CAMERA_INFO_OUTPUTS", "FramePlan", "plan_frame"]


@dataclass(frozen=True)
class OutputSpec:
    topic: str  # relative, so namespaces and remapping work
    switch: str  # the publish_<switch> parameter that turns it on
    message: str  # the interface type, as rosbag2 records it


# Per-frame outputs. Topic names are relative: the launch file's namespace places them.
OUTPUTS: dict[str, OutputSpec] = {
    "labels": OutputSpec("semantic/labels", "labels", "sensor_msgs/msg/Image"),
    "color": OutputSpec("semantic/color", "color", "sensor_msgs/msg/Image"),
    "overlay": OutputSpec("semantic/overlay", "overlay", "sensor_msgs/msg/Image"),
    "depth": OutputSpec("depth/image", "depth", "sensor_msgs/msg/Image"),
    "depth_camera_info": OutputSpec("depth/camera_info", "camera_info", "sensor_msgs/msg/CameraInfo"),
    "semantic_camera_info": OutputSpec("semantic/camera_info", "camera_info", "sensor_msgs/msg/CameraInfo"),
    "fused": OutputSpec("hydranet/result", "fused", "hydranet_ros/msg/HydraNetResult"),
}
# Latched, published when the frame id is first seen, not per frame.
LABEL_INFO_TOPIC = "semantic/label_info"
LABEL_INFO_MESSAGE = "vision_msgs/msg/LabelInfo"

CAMERA_INFO_OUTPUTS = ("depth_camera_info", "semantic_camera_info")


@dataclass(frozen=True)
class FramePlan:
    """The work one frame needs. ``outputs`` empty = nothing to do for this frame.

    ``label_info``: send LabelInfo with this frame too. It is latched, not per frame, and goes out
    whether or not anyone listens yet, so it does not make a frame worth processing on its own.
    """

    outputs: frozenset[str] = frozenset()
    label_info: bool = False

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


def plan_frame(publish: Mapping[str, bool], subscribers: Mapping[str, int], *, have_camera_info: bool,
               label_info_due: bool = False) -> FramePlan:
    """Which per-frame outputs to compute: switched on AND someone subscribed.

    ``publish`` maps switch names (labels, color, ..., camera_info, label_info, fused) to
    booleans; ``subscribers`` maps output names (keys of OUTPUTS) to subscription counts. CameraInfo
    outputs also need a CameraInfo from the camera. ``label_info_due``: LabelInfo has not been
    sent for this frame id yet (fields.label_info_due); it goes with the frame when switched on.
    """
    chosen = set()
    for name, spec in OUTPUTS.items():
        if not publish.get(spec.switch, False) or subscribers.get(name, 0) <= 0:
            continue
        if name in CAMERA_INFO_OUTPUTS and not have_camera_info:
            continue
        chosen.add(name)
    return FramePlan(frozenset(chosen), label_info=bool(label_info_due and publish.get("label_info", False)))
