"""One frame's output messages, built in one place for both shells.

frame + Result + CameraInfo -> a ``Message`` (ROS type name and fields) for every output the
frame plan asks for. The node (hydranet_ros/ros/node.py) turns each into an rclpy message and
publishes it; the bag replay (hydranet_ros/replay/bag.py) turns each into a rosbags message and
writes it. Both do so with one generic function that copies fields, so what a subscriber
receives live and what the replayed bag holds come from this code alone.

Field values are in the Python types rclpy's generated setters store without a per-element
check: array.array('B') for uint8[] (see fields.to_msg_bytes), array.array('d') for float64[],
float64 numpy arrays for fixed arrays, Python int/float/str/bool. ``header`` is the input
message's own header object, passed through untouched, so every output carries its stamp and
frame_id.
"""

from __future__ import annotations

import array
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from hydranet_ros.io.camera_info import CameraInfoRejected, frame_focal_px, scale_camera_info
from hydranet_ros.io.visuals import blend, colorize_labels
from hydranet_ros.outputs import cloud as clouds, fields as output_fields
from hydranet_ros.outputs.choices import CloudSettings, obstacle_classes, point_classes
from hydranet_ros.outputs.plan import CAMERA_INFO_OUTPUTS, FramePlan
from hydranet_ros.runtime.intake import Frame
from hydranet_ros.runtime.result import FrameRequest

__all__ = [
    "Message", "Rendered", "render", "render_batch", "frame_messages", "IMAGE", "CAMERA_INFO", "REGION_OF_INTEREST",
    "HEADER", "TIME", "RESULT", "LABEL_INFO", "VISION_CLASS", "POINT_CLOUD2", "POINT_FIELD", "MESSAGE_TYPES",
]

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
REGION_OF_INTEREST = "sensor_msgs/msg/RegionOfInterest"
HEADER = "std_msgs/msg/Header"
TIME = "builtin_interfaces/msg/Time"
RESULT = "hydranet_ros/msg/HydraNetResult"
LABEL_INFO = "vision_msgs/msg/LabelInfo"
VISION_CLASS = "vision_msgs/msg/VisionClass"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
POINT_FIELD = "sensor_msgs/msg/PointField"
# Every type a Message may name: a shell maps each to its own class.
MESSAGE_TYPES = (IMAGE, CAMERA_INFO, REGION_OF_INTEREST, HEADER, TIME, RESULT, LABEL_INFO, VISION_CLASS,
                 POINT_CLOUD2, POINT_FIELD)


@dataclass(frozen=True, eq=False)
class Message:
    """One message as plain data: its ROS type and its fields. A field's value may be a Message
    or a list of them (nested messages); any other value is copied as it is. One Message may sit
    in two places (the labels image is published and nested in the fused message): a shell that
    builds it once per frame publishes the same object twice, as the node always has."""

    type: str
    fields: Mapping[str, Any]


@dataclass
class Rendered:
    """Everything one frame publishes.

    ``messages``: output name (keys of plan.OUTPUTS, plus 'label_info' when the plan asks for it)
    -> Message, in the order they are written. ``images``: the Image fields by output name
    (labels, depth, color, overlay, confidence), including the images the fused message nests
    when they are not published on their own. ``camera_info_problem``: why the camera's
    CameraInfo could not be scaled (then no CameraInfo output and no point cloud).
    """

    plan: FramePlan
    size: tuple[int, int]  # (width, height) of the published images
    messages: dict[str, Message] = field(default_factory=dict)
    images: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    camera_info_problem: CameraInfoRejected | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Where metric depth's focal length came from: 'camera' (CameraInfo's K), 'assumed' (the
    # training camera's field of view), 'none' (weights without a training camera); None
    # when the frame ran no network.
    depth_focal: str | None = None


def _image(header: Any, pixels: np.ndarray, encoding: str) -> Message:
    return Message(IMAGE, {"header": header, **output_fields.message_fields(pixels, encoding)})


def _camera_info(header: Any, fields: Mapping[str, Any]) -> Message:
    fields = dict(output_fields.camera_info_for_ros(fields))
    return Message(CAMERA_INFO, {"header": header, **fields, "roi": Message(REGION_OF_INTEREST, fields["roi"])})


def _empty_camera_info() -> Message:
    """What the fused message carries without a CameraInfo: all zeros, as a new rclpy message is."""
    zero_header = Message(HEADER, {"stamp": Message(TIME, {"sec": 0, "nanosec": 0}), "frame_id": ""})
    fields = output_fields.camera_info_for_ros({"k": np.zeros(9), "r": np.zeros(9), "p": np.zeros(12), "d": []})
    return Message(CAMERA_INFO, {"header": zero_header, **fields, "roi": Message(REGION_OF_INTEREST, fields["roi"])})


def _empty_image() -> Message:
    """What the fused message carries for an image it does not hold: all defaults (0x0, no
    encoding), as a new rclpy message is."""
    zero_header = Message(HEADER, {"stamp": Message(TIME, {"sec": 0, "nanosec": 0}), "frame_id": ""})
    return Message(IMAGE, {"header": zero_header, "height": 0, "width": 0, "encoding": "", "is_bigendian": 0,
                           "step": 0, "data": array.array("B")})


def _point_cloud(header: Any, points: np.ndarray) -> Message:
    fields = clouds.point_cloud_fields(points)
    point_fields = [Message(POINT_FIELD, {"name": name, "offset": offset, "datatype": datatype, "count": count})
                    for name, offset, datatype, count in fields.pop("fields")]
    return Message(POINT_CLOUD2, {"header": header, **fields, "fields": point_fields})


def _clouds(header: Any, result: Any, labels: np.ndarray, plan: FramePlan, camera_info: Mapping[str, Any], *,
            preset: Any, settings: CloudSettings, camera_rgb: np.ndarray | None) -> dict[str, Message]:
    """semantic/points and semantic/obstacles, unprojected with the CameraInfo published beside the
    depth image (``camera_info``: scale_camera_info's fields for the output size). ``labels``:
    the published labels (255 below min_confidence); ``camera_rgb``: the frame at the output size
    when the points take the camera's colours."""
    intrinsics = clouds.Intrinsics.from_camera_info(camera_info)
    out = {}
    for name, classes, organized in (("points", point_classes, None),
                                     ("obstacles", obstacle_classes, False)):  # costmaps want real points only
        if name in plan.outputs:
            points = clouds.settings_cloud(result.depth_m, labels, result.confidence, intrinsics, settings,
                                           classes=classes(settings, preset), palette=preset.palette,
                                           camera_rgb=camera_rgb, organized=organized)
            out[name] = _point_cloud(header, points)
    return out


def _label_info(header: Any, class_names: tuple[str, ...], threshold: float) -> Message:
    content = output_fields.label_info_content(class_names, threshold)
    return Message(LABEL_INFO, {
        "header": header,
        "class_map": [Message(VISION_CLASS, {"class_id": class_id, "class_name": name})
                      for class_id, name in content["class_map"]],
        "threshold": content["threshold"],
    })


def frame_messages(frame: Frame, result: Any | None, plan: FramePlan, *, size: tuple[int, int], preset: Any,
                   depth_encoding: str, overlay_alpha: float, confidence_encoding: str = "32FC1",
                   cloud: CloudSettings = CloudSettings()) -> Rendered:
    """Every message ``plan`` asks for, from the network's ``result`` for ``frame`` (None when the
    plan needs no inference: CameraInfo only). ``size`` is the published (width, height)."""
    width, height = size
    header = frame.header
    scale = getattr(result, "depth_scale", None)
    rendered = Rendered(plan=plan, size=size, timings_ms=dict(result.timings_ms) if result is not None else {},
                        depth_focal=scale.source if scale is not None else None)
    out: dict[str, Message] = {}
    if plan.label_info:
        out["label_info"] = _label_info(header, tuple(preset.class_names), plan.min_confidence)
    # Every labelled output shows the same labels: 255 where the class is below min_confidence.
    class_ids = None
    if result is not None and result.labels is not None:
        class_ids = output_fields.labels_with_unknown(result.labels, result.confidence, plan.min_confidence)
    labels = depth = confidence = None
    if plan.labels_image:
        labels = _image(header, class_ids, "mono8")
        rendered.images["labels"] = labels.fields
        if "labels" in plan.outputs:
            out["labels"] = labels
    camera_rgb = None
    if plan.overlay or (plan.cloud and cloud.color == "camera"):
        camera_rgb = output_fields.overlay_base(frame.pixels, frame.color_order, (width, height))
    if plan.color or plan.overlay:
        colour = colorize_labels(class_ids, preset.palette)  # drawn once for both outputs
        if plan.color:
            out["color"] = _image(header, colour, "rgb8")
        if plan.overlay:
            out["overlay"] = _image(header, blend(camera_rgb, colour, alpha=overlay_alpha), "rgb8")
        for name in ("color", "overlay"):
            if name in out:
                rendered.images[name] = out[name].fields
    if plan.confidence_image:
        confidence = _image(header, output_fields.confidence_image(result.confidence, confidence_encoding),
                            confidence_encoding)
        rendered.images["confidence"] = confidence.fields
        if "confidence" in plan.outputs:
            out["confidence"] = confidence
    if plan.depth_image:
        depth = _image(header, output_fields.depth_image(result.depth_m, depth_encoding), depth_encoding)
        rendered.images["depth"] = depth.fields
        if "depth" in plan.outputs:
            out["depth"] = depth
    camera_info = scaled = None
    if plan.camera_info and frame.camera_info is not None:
        try:
            # The one CameraInfo of the output size: published, nested in the fused message and
            # the camera model of the point clouds.
            scaled = scale_camera_info(frame.camera_info, width, height)
            camera_info = _camera_info(header, scaled)
        except CameraInfoRejected as exc:
            rendered.camera_info_problem = exc
    if camera_info is not None:
        out.update({name: camera_info for name in CAMERA_INFO_OUTPUTS if name in plan.outputs})
        if plan.cloud:
            out.update(_clouds(header, result, class_ids, plan, scaled, preset=preset, settings=cloud,
                               camera_rgb=camera_rgb))
    if "fused" in plan.outputs:
        out["fused"] = Message(RESULT, {
            "header": header, "labels": labels, "depth": depth,
            "confidence": confidence if confidence is not None else _empty_image(),
            "min_confidence": output_fields.float32(plan.min_confidence),
            "has_camera_info": camera_info is not None,
            "camera_info": camera_info if camera_info is not None else _empty_camera_info(),
            "class_names": [str(name) for name in preset.class_names],
            **output_fields.stage_timings(rendered.timings_ms),
        })
    rendered.messages = out
    return rendered


def frame_focal(frame: Frame) -> float | None:
    """The camera's focal length in the frame's pixels from the frame's CameraInfo (metric depth
    is scaled by it: runtime/focal.py), or None without a usable one."""
    return frame_focal_px(frame.camera_info, frame.pixels.shape[1], frame.pixels.shape[0])


def render(pipeline: Any, frame: Frame, plan: FramePlan, *, depth_encoding: str, overlay_alpha: float,
           confidence_encoding: str = "32FC1", cloud: CloudSettings = CloudSettings()) -> Rendered | None:
    """Run the network for ``frame`` as far as ``plan`` needs and build every planned output.

    None when the plan publishes nothing (the last subscriber left while the frame waited).
    """
    if not plan.publishes:
        return None
    result = None
    if plan.run_inference:  # CameraInfo only: the output size is known without the network
        result = pipeline.process(frame.pixels, color_order=frame.color_order, outputs=plan.network_outputs,
                                  focal_px=frame_focal(frame))
    size = pipeline.output_size_for(frame.pixels.shape[1], frame.pixels.shape[0])
    return frame_messages(frame, result, plan, size=size, preset=pipeline.preset, depth_encoding=depth_encoding,
                          overlay_alpha=overlay_alpha, confidence_encoding=confidence_encoding, cloud=cloud)


def render_batch(pipeline: Any, items: Sequence[tuple[Frame, FramePlan]], *, depth_encoding: str,
                 overlay_alpha: float, confidence_encoding: str = "32FC1",
                 cloud: CloudSettings = CloudSettings()) -> list[Rendered | None]:
    """``render`` for several cameras' frames (one each) with one network pass for all of them.

    Every frame whose plan needs the network goes into one ``pipeline.process_batch``, each with
    its own plan's outputs (confidence only where that camera's plan asks for it); each camera's
    messages (images, confidence, point clouds, fused result) are then built by ``frame_messages``
    from its own frame, plan and Result, exactly as ``render`` builds one camera's, so a camera of
    a multi-camera node publishes what the single-camera node would. One entry per item, None
    where the plan publishes nothing.
    """
    running = [index for index, (_, plan) in enumerate(items) if plan.publishes and plan.run_inference]
    results: dict[int, Any] = {}
    if running:
        requests = [FrameRequest(items[i][0].pixels, items[i][0].color_order, items[i][1].network_outputs,
                                 frame_focal(items[i][0])) for i in running]
        results = dict(zip(running, pipeline.process_batch(requests)))
    rendered: list[Rendered | None] = []
    for index, (frame, plan) in enumerate(items):
        if not plan.publishes:
            rendered.append(None)
            continue
        size = pipeline.output_size_for(frame.pixels.shape[1], frame.pixels.shape[0])
        rendered.append(frame_messages(frame, results.get(index), plan, size=size, preset=pipeline.preset,
                                       depth_encoding=depth_encoding, overlay_alpha=overlay_alpha,
                                       confidence_encoding=confidence_encoding, cloud=cloud))
    return rendered
