"""perception_node's own code against rclpy_standin, for what the launch tests cannot see.

The node's behaviour on the real middleware (outputs, headers, QoS, lifecycle, parameters,
rejections, sim time) is tested by the launch tests in test/ros/ (`colcon test`, bash
.ci/ros_tests). What remains here looks inside the process or at a ROS install without a
package: the camera input's queue depth, which network outputs run for the topics somebody
subscribes to, the node without vision_msgs, and rclpy's attribute names. test_faults.py and test_fuzz_messages.py use the
helpers below to put many fault cases through the node quickly. Real pipeline (random weights
saved as safetensors), real conversions, real frame worker; only rclpy and the message classes
are stand-ins.
"""

from __future__ import annotations

import array
import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rclpy_standin as ros
from hydranet_ros.model.checkpoints import save_safetensors
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset

FRAME_ID = "cam_optical"
WIDTH, HEIGHT = 96, 64


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    preset = get_preset("kitti")
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_safetensors(path, HydraNet(preset).state_dict(), preset)
    return str(path)


def load_node_module(monkeypatch, *, with_vision_msgs=True):
    for name, module in ros.modules(with_vision_msgs=with_vision_msgs).items():
        monkeypatch.setitem(sys.modules, name, module)
    if not with_vision_msgs:
        monkeypatch.setitem(sys.modules, "vision_msgs", None)  # import fails as if not installed
        monkeypatch.setitem(sys.modules, "vision_msgs.msg", None)
    monkeypatch.delitem(sys.modules, "hydranet_ros.ros.node", raising=False)
    module = importlib.import_module("hydranet_ros.ros.node")
    monkeypatch.delitem(sys.modules, "hydranet_ros.ros.node")  # the next test imports afresh
    return module


def make_node(monkeypatch, weights, *, with_vision_msgs=True, **overrides):
    module = load_node_module(monkeypatch, with_vision_msgs=with_vision_msgs)
    values = {"weights": weights, "device": "cpu", "input_width": 64, "input_height": 32,
              "output_size": "network", **overrides}
    node = module.PerceptionNode(parameter_overrides=[ros.Parameter(k, value=v) for k, v in values.items()])
    return module, node


def header(sec):
    return ros.Header(stamp=ros.Time(sec=sec, nanosec=42), frame_id=FRAME_ID)


def image_msg(sec, **overrides):
    rng = np.random.default_rng(sec)
    pixels = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    msg = ros.Image(header=header(sec), height=HEIGHT, width=WIDTH, encoding="bgr8", is_bigendian=0, step=WIDTH * 3)
    msg.data = array.array("B", pixels.tobytes())
    for name, value in overrides.items():
        setattr(msg, name, value)
    return msg


def publishers(node):
    return {p.topic: p for p in node.publishers}


def subscription(node, topic):
    return next(s for s in node.subscriptions if s.topic == topic)


def bring_up(module, node):
    state = ros.LifecycleState()
    assert node.on_configure(state) == ros.TransitionCallbackReturn.SUCCESS, node.logger.records
    assert node.on_activate(state) == ros.TransitionCallbackReturn.SUCCESS
    return state


def feed(node, msg):
    subscription(node, "image").callback(msg)
    assert node._worker.wait_idle(30)


def subscribe_all(node):
    for publisher in node.publishers:
        publisher.subscribers = 1


def test_camera_input_queue_is_one_frame_deep(monkeypatch, weights):
    """The ROS graph tells other nodes a subscription's reliability but not its history depth:
    the short queue (old frames dropped, never queued) is checked here."""
    module, node = make_node(monkeypatch, weights)
    bring_up(module, node)
    for topic in ("image", "camera_info"):
        qos = subscription(node, topic).qos.kwargs
        assert (qos["depth"], qos["reliability"].name) == (1, "BEST_EFFORT"), topic
    node.release()


def camera_info_msg(focal: float = 80.0):
    info = ros.CameraInfo(header=header(0), height=HEIGHT, width=WIDTH, distortion_model="plumb_bob")
    info.k = np.array([focal, 0.0, 47.5, 0.0, focal, 31.5, 0.0, 0.0, 1.0])
    info.p = np.array([focal, 0.0, 47.5, 0.0, 0.0, focal, 31.5, 0.0, 0.0, 0.0, 1.0, 0.0])
    info.r = np.eye(3).reshape(-1)
    info.d = array.array("d", [0.0] * 5)
    return info


def test_depth_takes_the_focal_length_from_camera_info_and_says_once_when_it_assumes(monkeypatch, weights):
    """Without CameraInfo the training camera is assumed: one warning and a depth_focal value in
    /diagnostics; with it, depth is scaled by the camera's focal length over the assumed one (the
    same network output reads as that much farther). The published size follows the geometry:
    the 96x64 frame fitted inside 64x32 is 48x32 (network 64x32, padded)."""
    module, node = make_node(monkeypatch, weights)
    bring_up(module, node)
    subscribe_all(node)
    pubs = publishers(node)
    feed(node, image_msg(7))
    feed(node, image_msg(7))
    assumed = [r for r in node.logger.records if "depth:" in str(r) and "field of view" in str(r)]
    assert len(assumed) == 1, node.logger.records
    node._publish_diagnostics()
    values = dict((kv.key, kv.value) for kv in pubs["/diagnostics"].sent[-1].status[0].values)
    assert "field of view" in values["depth_focal"]
    first = pubs["depth/image"].sent[-1]
    assert (first.width, first.height) == (48, 32)
    depth_assumed = np.frombuffer(bytes(first.data), np.float32)

    subscription(node, "camera_info").callback(camera_info_msg(80.0))
    feed(node, image_msg(7))
    factor = 80.0 / node._pipeline.training_camera.focal_at_width(WIDTH)
    depth_camera = np.frombuffer(bytes(pubs["depth/image"].sent[-1].data), np.float32)
    np.testing.assert_allclose(depth_camera, depth_assumed * factor, rtol=1e-5)
    node._publish_diagnostics()
    values = dict((kv.key, kv.value) for kv in pubs["/diagnostics"].sent[-1].status[0].values)
    assert values["depth_focal"].startswith("camera_info")
    info = pubs["depth/camera_info"].sent[-1]
    assert (info.width, info.height) == (48, 32) and info.k[0] == pytest.approx(80.0 * 48 / WIDTH)
    node.release()


def record_outputs(node) -> list:
    """The outputs each later pipeline.process call of ``node`` is asked for, in call order."""
    calls = []
    original = node._pipeline.process
    node._pipeline.process = lambda frame, **kw: calls.append(kw["outputs"]) or original(frame, **kw)
    return calls


def test_only_subscribed_outputs_are_computed(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights)
    bring_up(module, node)
    pubs = publishers(node)
    calls = record_outputs(node)

    feed(node, image_msg(1))  # nobody listens: no conversion, no inference
    assert calls == [] and all(not p.sent for p in pubs.values())
    assert node._cameras[0].counters["frames_skipped_no_subscribers"] == 1

    pubs["depth/image"].subscribers = 1
    feed(node, image_msg(2))
    assert calls == [frozenset({"depth"})]
    assert len(pubs["depth/image"].sent) == 1 and not pubs["semantic/color"].sent and not pubs["semantic/labels"].sent
    node.release()


def test_without_vision_msgs_one_warning_and_no_label_info(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights, with_vision_msgs=False)
    state = bring_up(module, node)
    assert "semantic/label_info" not in publishers(node)
    node.on_deactivate(state)
    node.on_cleanup(state)
    bring_up(module, node)  # a second configure does not warn again
    warnings = [m for level, m in node.logger.records if "vision_msgs is not installed" in m]
    assert len(warnings) == 1
    subscribe_all(node)
    feed(node, image_msg(3))
    assert publishers(node)["semantic/labels"].sent
    node.release()


def test_the_cloud_runs_only_for_its_subscribers_and_needs_camera_info(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights)
    bring_up(module, node)
    pubs = publishers(node)
    calls = record_outputs(node)
    pubs["semantic/points"].subscribers = 1

    feed(node, image_msg(1))  # no CameraInfo yet: nothing to unproject with, nothing computed
    assert calls == [] and not pubs["semantic/points"].sent
    assert node._cameras[0].counters["points_skipped_no_camera_info"] == 1
    node.timers[-1].callback()
    report = pubs["/diagnostics"].sent[-1].status[0]
    assert report.level == ros.DiagnosticStatus.WARN
    assert "no point cloud" in report.message and "none has arrived on camera_info" in report.message
    node.timers[-1].callback()  # the next period without such frames says nothing more
    assert "no point cloud" not in pubs["/diagnostics"].sent[-1].status[0].message

    subscription(node, "camera_info").callback(camera_info_msg())
    feed(node, image_msg(2))
    assert calls == [frozenset({"labels", "depth", "confidence"})]
    [cloud] = pubs["semantic/points"].sent
    assert (cloud.header.stamp.sec, cloud.header.frame_id) == (2, FRAME_ID)
    assert cloud.point_step == 24 and cloud.height == 1 and len(cloud.data) == cloud.row_step > 0
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "confidence", "label"]
    assert not pubs["semantic/obstacles"].sent and not pubs["semantic/labels"].sent
    node.release()


def test_class_lists_are_checked_against_the_weights(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights, obstacle_classes="car,truck")
    assert node.on_configure(ros.LifecycleState()) == ros.TransitionCallbackReturn.FAILURE
    [error] = [m for level, m in node.logger.records if level == "error"]
    assert "obstacle_classes: no class 'truck'" in error and node._pipeline is None
    [result] = node.set_parameters([ros.Parameter("obstacle_classes", value="car, building")])
    assert result.successful, result.reason
    bring_up(module, node)
    # While configured the weights' classes are known: a wrong name is refused at once.
    [result] = node.set_parameters([ros.Parameter("points_classes", value="road,sidewalks")])
    assert not result.successful and "no class 'sidewalks'" in result.reason
    [result] = node.set_parameters([ros.Parameter("points_classes", value="road,sidewalk,unknown")])
    assert result.successful and node._live.cloud.classes == "road,sidewalk,unknown"
    node.release()


def test_min_confidence_marks_uncertain_labels_255_and_label_info_says_so(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights)
    bring_up(module, node)
    subscribe_all(node)
    pubs = publishers(node)
    subscription(node, "camera_info").callback(camera_info_msg())
    feed(node, image_msg(1))
    [label_info] = pubs["semantic/label_info"].sent
    assert label_info.threshold == 0.0
    labels = np.frombuffer(pubs["semantic/labels"].sent[-1].data, np.uint8)
    assert labels.max() < 6  # no threshold: every pixel has its class
    confidence = np.frombuffer(pubs["semantic/confidence"].sent[-1].data, np.float32)
    assert 0 < confidence.min() and confidence.max() <= 1

    threshold = float(np.median(confidence))
    [result] = node.set_parameters([ros.Parameter("min_confidence", value=threshold)])
    assert result.successful
    feed(node, image_msg(1))  # the same frame again
    assert [m.threshold for m in pubs["semantic/label_info"].sent] == [0.0, threshold]  # re-latched
    labels = np.frombuffer(pubs["semantic/labels"].sent[-1].data, np.uint8)
    confidence = np.frombuffer(pubs["semantic/confidence"].sent[-1].data, np.float32)
    np.testing.assert_array_equal(labels == 255, confidence < threshold)
    assert 0 < (labels == 255).sum() < labels.size
    fused = pubs["hydranet/result"].sent[-1]
    assert fused.min_confidence == threshold and bytes(fused.labels.data) == labels.tobytes()
    published = pubs["semantic/labels"].sent[-1]
    assert fused.confidence.encoding == "32FC1"
    assert (fused.confidence.width, fused.confidence.height) == (published.width, published.height)
    points = pubs["semantic/points"].sent[-1]
    point_labels = np.frombuffer(points.data, np.uint8).reshape(-1, 24)[:, 20]
    assert 255 in point_labels  # uncertain points stay in semantic/points, labelled unknown...
    obstacle_labels = np.frombuffer(pubs["semantic/obstacles"].sent[-1].data, np.uint8).reshape(-1, 24)[:, 20]
    assert set(obstacle_labels) <= {1, 4, 5}  # ...but are not obstacles (obstacle_classes: default)
    node.release()


# Attributes rclpy's Node and LifecycleNode set on self (read from rclpy/node.py and
# rclpy/lifecycle/node.py, branches humble and jazzy). A subclass must not reuse them.
RCLPY_NODE_ATTRIBUTES = {
    "_allow_undeclared_parameters", "_clients", "_clock", "_context", "_default_callback_group", "_descriptors",
    "_guards", "_logger", "_logger_service", "_on_set_parameters_callbacks", "_parameter_event_publisher",
    "_parameter_overrides", "_parameter_service", "_parameters", "_parameters_callbacks",
    "_post_set_parameters_callbacks", "_pre_set_parameters_callbacks", "_publishers", "_rate_group", "_services",
    "_subscriptions", "_time_source", "_timers", "_type_description_service", "handle", "_callbacks",
    "_managed_entities", "_service_change_state", "_service_get_available_states",
    "_service_get_available_transitions", "_service_get_state", "_service_get_transition_graph", "_state_machine",
}


def assigned_attributes(source: str) -> set[str]:
    names = set(re.findall(r"self\.(\w+)\s*(?::[^=\n]+)?=(?!=)", source))
    names |= {name for group in re.findall(r"self\.(\w+)\s*,\s*self\.(\w+)\s*(?:,\s*self\.\w+\s*)*=", source)
              for name in group}
    return names


def test_node_does_not_overwrite_rclpy_internals():
    source = (Path(__file__).resolve().parents[1] / "hydranet_ros" / "ros" / "node.py").read_text()
    assigned = assigned_attributes(source)
    assert {"_cameras", "_input_subs", "_worker", "_live"} <= assigned  # the check sees assignments
    assert not assigned & RCLPY_NODE_ATTRIBUTES, assigned & RCLPY_NODE_ATTRIBUTES
    # and it would have caught the name clash it guards against
    assert assigned_attributes("self._publishers: dict = {}\nself._x, self._subscriptions = 1, 2") >= {
        "_publishers", "_subscriptions"}
