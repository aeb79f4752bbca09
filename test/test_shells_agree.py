"""One place builds the output messages: for the same frame, CameraInfo and parameters, the bag
replay writes exactly what the node publishes (every field, every topic), because both copy
the messages hydranet_ros.outputs.render builds.

The node is its own code against rclpy_standin (test_node_standin.py); the replay is
`replay_bag` on a bag holding the same image and CameraInfo messages.
"""

from __future__ import annotations

import array
import dataclasses
import math

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

import rclpy_standin as ros
from hydranet_ros.outputs import params, plan
from hydranet_ros.replay.bag import replay_bag
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from test_bag import STORE, T
from test_node_standin import HEIGHT, WIDTH, bring_up, feed, header, image_msg, make_node, publishers, subscribe_all, subscription
from test_node_standin import weights  # noqa: F401 - the fixture

NODE_SETTINGS = {"device": "cpu", "input_width": 64, "input_height": 32, "output_size": "network"}


def camera_info_msg():
    info = ros.CameraInfo(header=header(0), height=HEIGHT, width=WIDTH, distortion_model="plumb_bob")
    info.k = np.array([80.0, 0.0, 47.5, 0.0, 80.0, 31.5, 0.0, 0.0, 1.0])
    info.p = np.array([80.0, 0.0, 47.5, 0.0, 0.0, 80.0, 31.5, 0.0, 0.0, 0.0, 1.0, 0.0])
    info.r = np.eye(3).reshape(-1)
    info.d = array.array("d", [0.01, -0.02, 0.0, 0.0, 0.0])
    return info


def plain(value):
    """A message of either shell as nested dicts of comparable values (bytes for arrays)."""
    if isinstance(value, ros.Message):
        return {name: plain(getattr(value, name)) for name in type(value)._fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # rosbags lists a message's constants (PointField.FLOAT32, ...) as fields; ROS names constants
        # in capitals and fields in lower case.
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name != "__msgtype__" and not f.name.isupper()}
    if isinstance(value, array.array):
        return ("array", np.frombuffer(value, dtype=value.typecode).tobytes())
    if isinstance(value, np.ndarray):
        return ("array", np.ascontiguousarray(value).tobytes())
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def without_timings(fields: dict) -> dict:
    """The fused message's *_ms fields time each process's own run: equal in kind, not in value."""
    for name in [n for n in fields if n.endswith("_ms")]:
        assert math.isfinite(fields.pop(name)), name
    return fields


def to_bag_message(msg):
    """The rclpy_standin message as the rosbags message with the same fields."""
    name = {"Image": "sensor_msgs/msg/Image", "CameraInfo": "sensor_msgs/msg/CameraInfo", "Header": "std_msgs/msg/Header",
            "Time": "builtin_interfaces/msg/Time", "RegionOfInterest": "sensor_msgs/msg/RegionOfInterest"}[type(msg).__name__]
    values = {}
    for field_name in type(msg)._fields:
        value = getattr(msg, field_name)
        if isinstance(value, ros.Message):
            value = to_bag_message(value)
        elif isinstance(value, array.array):
            value = np.frombuffer(value, dtype=value.typecode).copy()
        elif isinstance(value, np.ndarray):
            value = value.astype(np.float64)
        values[field_name] = value
    return T[name](**values)


@pytest.mark.parametrize("parameters", [
    {"depth_encoding": "16UC1", "overlay_alpha": 0.3},
    {"depth_encoding": "32FC1", "publish_overlay": False, "publish_camera_info": False},
    # The 3D and confidence outputs with every setting away from its default.
    {"min_confidence": 0.4, "confidence_encoding": "mono8", "points_organized": True, "points_color": "camera",
     "points_stride": 2, "points_max_range": 40.0, "points_exclude_classes": "", "obstacle_classes": "car,unknown"},
], ids=["16UC1", "some-outputs-off", "3d-settings"])
def test_bag_replay_writes_what_the_node_publishes(monkeypatch, weights, tmp_path, parameters):  # noqa: F811
    values = {"weights": weights, **NODE_SETTINGS, **parameters}
    # The node: its own code, one CameraInfo and one image, everyone subscribed.
    module, node = make_node(monkeypatch, weights, **{k: v for k, v in values.items() if k != "weights"})
    bring_up(module, node)
    subscribe_all(node)
    image, info = image_msg(7), camera_info_msg()
    subscription(node, "camera_info").callback(info)
    feed(node, image)
    published = {topic: pub.sent for topic, pub in publishers(node).items() if topic != "/diagnostics" and pub.sent}
    node.release()

    # The replay: the same two messages in a bag, the same parameters, a pipeline made the node's way.
    source = tmp_path / "drive"
    with Writer(source, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        for topic, msg in (("/cam/camera_info", info), ("/cam/image_raw", image)):
            bag_msg = to_bag_message(msg)
            connection = writer.add_connection(topic, bag_msg.__msgtype__, typestore=STORE)
            writer.write(connection, 1_000_000_000, STORE.serialize_cdr(bag_msg, bag_msg.__msgtype__))
    pipeline = Pipeline.create(PipelineConfig(**params.pipeline_kwargs({**params.defaults(), **values})))
    report = replay_bag(source, tmp_path / "replayed", pipeline, parameters=parameters, progress=False)
    assert report.processed == 1
    written = {}
    with Reader(tmp_path / "replayed") as reader:
        for connection, _, raw in reader.messages():
            if connection.topic.startswith("/cam/") and connection.topic not in ("/cam/camera_info", "/cam/image_raw"):
                written.setdefault(connection.topic[len("/cam/"):], []).append(STORE.deserialize_cdr(raw, connection.msgtype))

    assert set(written) == set(published), "the same topics"
    expected_topics = {spec.topic for key, spec in plan.OUTPUTS.items() if values.get(f"publish_{spec.switch}", True)}
    assert set(published) == expected_topics | {plan.LABEL_INFO_TOPIC}
    for topic, [node_msg] in published.items():
        [bag_msg] = written[topic]
        node_fields, bag_fields = plain(node_msg), plain(bag_msg)
        if topic == plan.OUTPUTS["fused"].topic:
            node_fields, bag_fields = without_timings(node_fields), without_timings(bag_fields)
        assert node_fields == bag_fields, topic
    depth = written[plan.OUTPUTS["depth"].topic][0]
    assert depth.encoding == parameters.get("depth_encoding", "32FC1")  # the node's depth encoding
    # The clouds are among what both wrote (with CameraInfo), and follow the parameters.
    points = written[plan.OUTPUTS["points"].topic][0]
    assert points.header.frame_id == image.header.frame_id and points.point_step == 24
    if parameters.get("points_organized"):  # one point per sampled pixel of the published images
        labels = written[plan.OUTPUTS["labels"].topic][0]
        stride = parameters["points_stride"]
        assert (points.width, points.height) == (-(-labels.width // stride), -(-labels.height // stride))
    if parameters.get("min_confidence"):
        [label_info] = written[plan.LABEL_INFO_TOPIC]
        assert label_info.threshold == pytest.approx(parameters["min_confidence"])
