"""Which outputs a frame needs: the node's topic table and its frame plan, decided without ROS.

Both shells plan with these: the node (switched on AND someone subscribed) and the bag replay
(switched on; a recording listens to everything). Nothing that nobody wants is computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = ["OutputSpec", "OUTPUTS", "LABEL_INFO_TOPIC", "LABEL_INFO_MESSAGE", "CAMERA_INFO_OUTPUTS", "CLOUD_OUTPUTS",
           "NEED_CAMERA_INFO", "FramePlan", "plan_frame"]


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
    "confidence": OutputSpec("semantic/confidence", "confidence", "sensor_msgs/msg/Image"),
    "points": OutputSpec("semantic/points", "points", "sensor_msgs/msg/PointCloud2"),
    "obstacles": OutputSpec("semantic/obstacles", "obstacles", "sensor_msgs/msg/PointCloud2"),
    "fused": OutputSpec("hydranet/result", "fused", "hydranet_ros/msg/HydraNetResult"),
}
# Latched, published when the frame id is first seen, not per frame.
LABEL_INFO_TOPIC = "semantic/label_info"
LABEL_INFO_MESSAGE = "vision_msgs/msg/LabelInfo"

CAMERA_INFO_OUTPUTS = ("depth_camera_info", "semantic_camera_info")
CLOUD_OUTPUTS = ("points", "obstacles")  # 3D: depth and labels unprojected with the CameraInfo
NEED_CAMERA_INFO = CAMERA_INFO_OUTPUTS + CLOUD_OUTPUTS


@dataclass(frozen=True)
class FramePlan:
    """The work one frame needs. ``outputs`` empty = nothing to do for this frame.

    ``label_info``: send LabelInfo with this frame too. It is latched, not per frame, and goes out
    whether or not anyone listens yet, so it does not make a frame worth processing on its own.
    ``min_confidence``: labels below it become 255 (so the confidence is needed with the labels).
    ``fused_confidence``: the fused message carries the confidence image (publish_confidence on).
    ``without_camera_info``: outputs wanted (switched on, subscribed) but left out because the
    frame came without a CameraInfo; the node says so in /diagnostics.
    """

    outputs: frozenset[str] = frozenset()
    label_info: bool = False
    min_confidence: float = 0.0
    fused_confidence: bool = False
    without_camera_info: frozenset[str] = frozenset()

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
    def cloud(self) -> bool:
        return bool(self.outputs & set(CLOUD_OUTPUTS))

    @property
    def confidence_image(self) -> bool:
        """semantic/confidence, or the fused message's copy of it."""
        return "confidence" in self.outputs or ("fused" in self.outputs and self.fused_confidence)

    @property
    def camera_info(self) -> bool:
        return bool(self.outputs & {*NEED_CAMERA_INFO, "fused"})

    @property
    def network_outputs(self) -> frozenset[str]:
        """What to ask Pipeline.process for: labels feed labels, colour, overlay, fused and the
        clouds; depth feeds depth, fused and the clouds; confidence feeds its image, the clouds'
        confidence field and, with min_confidence > 0, every labelled output. The rest of the
        post-processing is skipped: with nobody asking and min_confidence 0, no softmax runs."""
        wanted = set()
        labels = self.labels_image or self.color or self.overlay or self.cloud
        if labels:
            wanted.add("labels")
        if self.depth_image or self.cloud:
            wanted.add("depth")
        if self.confidence_image or self.cloud or (labels and self.min_confidence > 0):
            wanted.add("confidence")
        return frozenset(wanted)


def plan_frame(publish: Mapping[str, bool], subscribers: Mapping[str, int], *, have_camera_info: bool,
               label_info_due: bool = False, min_confidence: float = 0.0) -> FramePlan:
    """Which per-frame outputs to compute: switched on AND someone subscribed.

    ``publish`` maps switch names (labels, color, ..., camera_info, label_info, fused) to
    booleans; ``subscribers`` maps output names (keys of OUTPUTS) to subscription counts. CameraInfo
    outputs and the point clouds also need a CameraInfo from the camera. ``label_info_due``:
    LabelInfo has not been sent for this frame id and threshold yet (fields.label_info_due); it
    goes with the frame when switched on. ``min_confidence``: the node's parameter.
    """
    chosen, blocked = set(), set()
    for name, spec in OUTPUTS.items():
        if not publish.get(spec.switch, False) or subscribers.get(name, 0) <= 0:
            continue
        if name in NEED_CAMERA_INFO and not have_camera_info:
            blocked.add(name)
            continue
        chosen.add(name)
    return FramePlan(frozenset(chosen), label_info=bool(label_info_due and publish.get("label_info", False)),
                     min_confidence=float(min_confidence), fused_confidence=bool(publish.get("confidence", False)),
                     without_camera_info=frozenset(blocked))
