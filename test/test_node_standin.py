"""perception_node's own code driven against rclpy_standin (ROS 2 is not installable here).

Real pipeline (a random-weight HydraNet saved as safetensors), real conversions, real frame
worker; only rclpy and the message classes are stand-ins. On a ROS machine the launch_testing
test covers the same ground against the real middleware.
"""

from __future__ import annotations

import array
import importlib
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rclpy_standin as ros
from hydranet_ros.model.checkpoints import save_safetensors
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.presets import get_preset

FRAME_ID = "cam_optical"
WIDTH, HEIGHT = 96, 64
# input_width x input_height 64x32: the 96x64 frame is scaled to 48x32 (aspect kept), padded to
# 64x32 for the network; output_size network publishes the 48x32 scaled frame.
OUT_W, OUT_H = 48, 32
K_IN = [80.0, 0.0, 47.5, 0.0, 80.0, 31.5, 0.0, 0.0, 1.0]


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
    node = module.PerceptionNode(parameter_overrides=[ros.Parameter(k, v) for k, v in values.items()])
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


def camera_info_msg():
    info = ros.CameraInfo(header=header(0), height=HEIGHT, width=WIDTH, distortion_model="plumb_bob")
    info.k = np.array(K_IN)
    info.p = np.array([80.0, 0.0, 47.5, 0.0, 0.0, 80.0, 31.5, 0.0, 0.0, 0.0, 1.0, 0.0])
    info.r = np.eye(3).reshape(-1)
    info.d = array.array("d", [0.0] * 5)
    return info


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


def test_configure_activate_publish_every_output_with_input_header(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights)
    bring_up(module, node)
    pubs = publishers(node)
    assert {"semantic/labels", "semantic/color", "semantic/overlay", "depth/image", "depth/camera_info",
            "semantic/camera_info", "hydranet/result", "semantic/label_info", "/diagnostics"} == set(pubs)
    # QoS: outputs reliable, LabelInfo latched, camera input best effort with a short queue.
    assert pubs["depth/image"].qos.kwargs["reliability"].name == "RELIABLE"
    assert pubs["semantic/label_info"].qos.kwargs["durability"].name == "TRANSIENT_LOCAL"
    assert subscription(node, "image").qos.kwargs["reliability"].name == "BEST_EFFORT"
    assert subscription(node, "image").qos.kwargs["depth"] == 1

    subscribe_all(node)
    subscription(node, "camera_info").callback(camera_info_msg())
    feed(node, image_msg(7))

    for topic in ("semantic/labels", "semantic/color", "semantic/overlay", "depth/image", "depth/camera_info",
                  "semantic/camera_info", "hydranet/result", "semantic/label_info"):
        sent = pubs[topic].sent
        assert len(sent) == 1, topic
        assert (sent[0].header.stamp.sec, sent[0].header.stamp.nanosec, sent[0].header.frame_id) == (7, 42, FRAME_ID)

    labels = pubs["semantic/labels"].sent[0]
    assert (labels.encoding, labels.width, labels.height, labels.step) == ("mono8", OUT_W, OUT_H, OUT_W)
    assert max(labels.data) < 6
    depth = pubs["depth/image"].sent[0]
    assert depth.encoding == "32FC1" and len(depth.data) == OUT_W * OUT_H * 4
    assert pubs["semantic/color"].sent[0].encoding == "rgb8"
    info = pubs["depth/camera_info"].sent[0]
    assert (info.width, info.height) == (OUT_W, OUT_H)
    assert info.k[0] == pytest.approx(80.0 * OUT_W / WIDTH) and info.k[4] == pytest.approx(80.0 * OUT_H / HEIGHT)
    fused = pubs["hydranet/result"].sent[0]
    assert fused.has_camera_info and fused.camera_info.width == OUT_W
    assert fused.class_names == list(get_preset("kitti").class_names)
    assert fused.total_ms > 0 and fused.labels is labels
    label_info = pubs["semantic/label_info"].sent[0]
    assert [c.class_name for c in label_info.class_map] == list(get_preset("kitti").class_names)

    # LabelInfo is latched: not repeated for the same frame id.
    feed(node, image_msg(8))
    assert len(pubs["semantic/label_info"].sent) == 1 and len(pubs["semantic/labels"].sent) == 2
    node.release()


def test_depth_takes_the_focal_length_from_camera_info_and_says_once_when_it_assumes(monkeypatch, weights):
    """Without CameraInfo the training camera is assumed: one warning and a /diagnostics value;
    with it, depth is scaled by the camera's focal length (here twice the first camera's: the
    same network output reads as twice the distance)."""
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
    depth_assumed = np.frombuffer(bytes(pubs["depth/image"].sent[-1].data), np.float32)

    info = camera_info_msg()
    subscription(node, "camera_info").callback(info)
    feed(node, image_msg(7))
    training = node._pipeline.training_camera
    factor = 80.0 / training.focal_at_width(WIDTH)  # this camera's focal length over the assumed one
    depth_camera = np.frombuffer(bytes(pubs["depth/image"].sent[-1].data), np.float32)
    np.testing.assert_allclose(depth_camera, depth_assumed * factor, rtol=1e-5)
    node._publish_diagnostics()
    values = dict((kv.key, kv.value) for kv in pubs["/diagnostics"].sent[-1].status[0].values)
    assert values["depth_focal"].startswith("camera_info")
    node.release()


def test_diagnostics_run_on_steady_time_even_under_sim_time(monkeypatch, weights):
    """A timer on ROS time stops while a bag replayed with --clock is paused (and waits for its
    first /clock): diagnostics would go silent exactly when someone looks. Both the unconfigured
    node's timer and the one made at configure are on steady time."""
    module, node = make_node(monkeypatch, weights)
    steady = module.ClockType.STEADY_TIME
    assert [t.clock.clock_type for t in node.timers] == [steady]
    bring_up(module, node)
    assert [t.clock.clock_type for t in node.timers] == [steady]
    node.release()


def test_malformed_images_are_rejected_and_the_next_good_frame_is_processed(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights)
    bring_up(module, node)
    subscribe_all(node)
    pubs = publishers(node)
    bad = [
        image_msg(1, step=WIDTH * 3 - 3, data=array.array("B", bytes((WIDTH * 3 - 3) * HEIGHT))),
        image_msg(2, encoding="xyz123"),
        image_msg(3, data=array.array("B")),
    ]
    for msg in bad:
        feed(node, msg)
    assert pubs["semantic/labels"].sent == []
    stats = node._worker.stats()
    assert stats.rejected_total == 3 and stats.processed == 0
    warnings = [m for level, m in node.logger.records if level == "warning" and "dropped an input image" in m]
    assert len(warnings) == 3  # three different reasons: none hides another
    feed(node, image_msg(4))
    assert [m.header.stamp.sec for m in pubs["semantic/labels"].sent] == [4]

    # Diagnostics name the reasons and warn.
    node.timers[-1].callback()
    report = pubs["/diagnostics"].sent[-1].status[0]
    assert report.level == ros.DiagnosticStatus.WARN
    values = {kv.key: kv.value for kv in report.values}
    assert values["frames_rejected"] == "3" and values["device"] == "cpu"
    assert sum(int(v) for k, v in values.items() if k.startswith("rejected.")) == 3
    node.release()


def test_only_subscribed_outputs_are_computed(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights)
    bring_up(module, node)
    pubs = publishers(node)
    calls = []
    original = node._pipeline.process
    node._pipeline.process = lambda frame, **kw: calls.append(kw["outputs"]) or original(frame, **kw)

    feed(node, image_msg(1))  # nobody listens: no conversion, no inference
    assert calls == [] and all(not p.sent for p in pubs.values())
    assert node._counters["frames_skipped_no_subscribers"] == 1

    pubs["depth/image"].subscribers = 1
    feed(node, image_msg(2))
    assert calls == [frozenset({"depth"})]
    assert len(pubs["depth/image"].sent) == 1 and not pubs["semantic/color"].sent and not pubs["semantic/labels"].sent
    node.release()


def test_parameter_changes_live_and_refused(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights)
    bring_up(module, node)
    subscribe_all(node)
    pubs = publishers(node)

    [result] = node.set_parameters([ros.Parameter("precision", "fp16")])
    assert not result.successful and "cleanup" in result.reason
    [result] = node.set_parameters([ros.Parameter("overlay_alpha", 3.0)])
    assert not result.successful  # the descriptor's range refuses it before the callback
    [result] = node.set_parameters([ros.Parameter("backend", "onnx")])
    assert not result.successful and "one of" in result.reason
    [result] = node.set_parameters([ros.Parameter("depth_encoding", "16UC1")])
    assert result.successful
    [result] = node.set_parameters([ros.Parameter("publish_overlay", False)])
    assert result.successful

    feed(node, image_msg(5))
    assert pubs["depth/image"].sent[-1].encoding == "16UC1"
    assert len(pubs["depth/image"].sent[-1].data) == OUT_W * OUT_H * 2
    assert not pubs["semantic/overlay"].sent and pubs["semantic/color"].sent
    node.release()


def test_deactivate_and_cleanup_release_everything(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights)
    state = bring_up(module, node)
    worker = node._worker
    assert node.on_deactivate(state) == ros.TransitionCallbackReturn.SUCCESS
    assert node.subscriptions == []
    assert all(not p.enabled for p in node.publishers if p.lifecycle)
    assert node.on_cleanup(state) == ros.TransitionCallbackReturn.SUCCESS
    assert [p.topic for p in node.publishers] == ["/diagnostics"]
    assert node._pipeline is None and node._worker is None and not worker.stats().running
    # Configure-time parameters may change again, and configure works a second time.
    [result] = node.set_parameters([ros.Parameter("input_width", 0)])
    assert not result.successful and "set together" in result.reason  # height is still 32
    [result] = node.set_parameters([ros.Parameter("input_width", 128)])
    assert result.successful
    assert node.on_configure(state) == ros.TransitionCallbackReturn.SUCCESS
    node.release()


def test_missing_weights_fail_configure_and_node_stays_configurable(monkeypatch, weights, tmp_path):
    missing = str(tmp_path / "nowhere.safetensors")
    module, node = make_node(monkeypatch, missing)
    state = ros.LifecycleState()
    assert node.on_configure(state) == ros.TransitionCallbackReturn.FAILURE
    errors = [m for level, m in node.logger.records if level == "error"]
    assert any("nowhere.safetensors" in m for m in errors), errors
    node.timers[-1].callback()
    report = publishers(node)["/diagnostics"].sent[-1].status[0]
    assert report.level == ros.DiagnosticStatus.ERROR and "nowhere.safetensors" in report.message

    [result] = node.set_parameters([ros.Parameter("weights", weights)])
    assert result.successful  # allowed: the node is unconfigured
    assert node.on_configure(state) == ros.TransitionCallbackReturn.SUCCESS
    node.release()


def test_bad_override_keeps_node_alive_and_blocks_configure(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights, overlay_alpha=1)  # an int where a float is declared
    assert node.get_parameter("overlay_alpha").value == 0.5  # default kept
    assert node.on_configure(ros.LifecycleState()) == ros.TransitionCallbackReturn.FAILURE
    assert any("overlay_alpha" in m for level, m in node.logger.records if level == "error")
    [result] = node.set_parameters([ros.Parameter("overlay_alpha", 1.0)])
    assert result.successful
    assert node.on_configure(ros.LifecycleState()) == ros.TransitionCallbackReturn.SUCCESS
    node.release()


def test_without_vision_msgs_one_warning_and_no_label_info(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights, with_vision_msgs=False)
    state = bring_up(module, node)
    assert "semantic/label_info" not in publishers(node)
    node.on_deactivate(state)
    node.on_cleanup(state)
    bring_up(module, node)  # a second configure does not warn again
    warnings = [m for level, m in node.logger.records if "vision_msgs" in m]
    assert len(warnings) == 1
    subscribe_all(node)
    feed(node, image_msg(3))
    assert publishers(node)["semantic/labels"].sent
    node.release()


def test_camera_info_rejection_is_counted_and_outputs_continue(monkeypatch, weights):
    module, node = make_node(monkeypatch, weights)
    bring_up(module, node)
    subscribe_all(node)
    uncalibrated = camera_info_msg()
    uncalibrated.k = np.zeros(9)
    subscription(node, "camera_info").callback(uncalibrated)
    feed(node, image_msg(9))
    pubs = publishers(node)
    assert not pubs["depth/camera_info"].sent and pubs["depth/image"].sent
    assert pubs["hydranet/result"].sent[-1].has_camera_info is False
    assert node._counters["camera_info_rejected.bad_intrinsics"] == 1
    assert math.isfinite(pubs["hydranet/result"].sent[-1].inference_ms)
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
    assert {"_output_pubs", "_input_subs", "_worker", "_live"} <= assigned  # the check sees assignments
    assert not assigned & RCLPY_NODE_ATTRIBUTES, assigned & RCLPY_NODE_ATTRIBUTES
    # and it would have caught the name clash it guards against
    assert assigned_attributes("self._publishers: dict = {}\nself._x, self._subscriptions = 1, 2") >= {
        "_publishers", "_subscriptions"}
