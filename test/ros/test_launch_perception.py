"""launch_testing: perception.launch.py as a user starts it, every output on the real middleware.

Launches the installed node (CPU, 320x96 network input, outputs at the network's size so that
CameraInfo must be scaled), acts as the camera driver with the KITTI sample frame, and checks:
- the launch file brings the lifecycle node to ACTIVE; the QoS it offers and asks for: camera
  input best effort (matches every driver), outputs reliable, LabelInfo transient local;
- every output carries the input header; CameraInfo with K and P scaled to the output size;
  the fused message; LabelInfo once per frame_id; /diagnostics on the wall clock;
- malformed images are rejected and counted by reason while the next good frame is processed;
- a CameraInfo that cannot be scaled is counted and not republished, the images still are;
- the node exits cleanly when the launch ends.
Sim time and replay: test_bag_replay.py. Run by `colcon test` (CMakeLists.txt) or
`launch_test test/ros/test_launch_perception.py` in a sourced workspace.
"""

import os
import sys
import unittest

import launch
import launch_testing.actions
import launch_testing.asserts
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import LabelInfo

from hydranet_ros.msg import HydraNetResult

sys.path.insert(0, os.path.dirname(__file__))  # launch_test loads this file by path, not as a package
import ros_probe  # noqa: E402
from ros_probe import LATCHED, NANOSEC, P_IN, Probe  # noqa: E402

CAMERA = "hydranet_test_cam"
FRAME_ID = "hydranet_test_optical_frame"
NODE = "/perception_node"
OUTPUT_TOPICS = {
    "labels": ("/semantic/labels", Image),
    "color": ("/semantic/color", Image),
    "overlay": ("/semantic/overlay", Image),
    "depth": ("/depth/image", Image),
    "depth_camera_info": ("/depth/camera_info", CameraInfo),
    "semantic_camera_info": ("/semantic/camera_info", CameraInfo),
    "fused": ("/hydranet/result", HydraNetResult),
}


@pytest.mark.launch_test
def generate_test_description():
    perception = ros_probe.perception_launch(
        camera=CAMERA, config=ros_probe.config_file("perception", output_size="network"),
        resolution="320x96", device="cpu", weights="default")
    return launch.LaunchDescription([perception, launch_testing.actions.ReadyToTest()])


class TestPerceptionLaunch(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rgb = ros_probe.sample_frame()
        cls.probe = Probe("hydranet_launch_test")
        for key, (topic, msg_type) in OUTPUT_TOPICS.items():
            cls.probe.record(key, topic, msg_type)
        cls.probe.record("label_info", "/semantic/label_info", LabelInfo, LATCHED)
        cls.image_pub = cls.probe.publisher(Image, f"/{CAMERA}/image_raw")
        cls.info_pub = cls.probe.publisher(CameraInfo, f"/{CAMERA}/camera_info")

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def send(self, sec, frame_id=FRAME_ID, k=None, **image_overrides):
        height, width = self.rgb.shape[:2]
        self.info_pub.publish(ros_probe.camera_info_msg(width, height, sec, frame_id, k))
        self.image_pub.publish(ros_probe.image_msg(self.rgb, sec, frame_id, **image_overrides))

    def send_until(self, sec, keys, frame_id=FRAME_ID):
        """Publish CameraInfo + frame ``sec`` every second until every output in ``keys`` has it."""
        return self.probe.publish_until(lambda: self.send(sec, frame_id),
                                        lambda: all(self.probe.got(k, sec) for k in keys))

    def counter(self, key):
        return int(self.probe.latest_values(NODE).get(key, "0"))

    def test_1_launch_ends_active_with_the_qos_users_connect_with(self):
        self.probe.wait_for_state(NODE, "active")
        [image_in] = self.probe.wait_for_endpoints(f"/{CAMERA}/image_raw", 1, publishers=False)
        [info_in] = self.probe.wait_for_endpoints(f"/{CAMERA}/camera_info", 1, publishers=False)
        self.assertEqual(image_in.node_name, "perception_node")
        # Best effort: a reliable subscription would not connect to a best-effort camera driver.
        self.assertEqual(image_in.qos_profile.reliability, ReliabilityPolicy.BEST_EFFORT)
        self.assertEqual(info_in.qos_profile.reliability, ReliabilityPolicy.BEST_EFFORT)
        for topic, _ in OUTPUT_TOPICS.values():
            [output] = self.probe.wait_for_endpoints(topic, 1, publishers=True)
            # Reliable, so that rviz2, rosbag2 record and depth_image_proc connect.
            self.assertEqual(output.qos_profile.reliability, ReliabilityPolicy.RELIABLE, topic)
        [label_info] = self.probe.wait_for_endpoints("/semantic/label_info", 1, publishers=True)
        self.assertEqual(label_info.qos_profile.durability, DurabilityPolicy.TRANSIENT_LOCAL)

    def test_2_every_output_carries_the_input_header(self):
        self.probe.wait_for_state(NODE, "active")
        keys = list(OUTPUT_TOPICS)
        self.assertTrue(self.send_until(100, keys), f"missing outputs: {[k for k in keys if not self.probe.got(k, 100)]}")
        for key in keys:
            for msg in self.probe.received[key]:
                self.assertEqual(msg.header.frame_id, FRAME_ID, key)
                self.assertEqual((msg.header.stamp.sec, msg.header.stamp.nanosec), (100, NANOSEC), key)

        labels, depth = self.probe.received["labels"][-1], self.probe.received["depth"][-1]
        self.assertEqual(labels.encoding, "mono8")
        self.assertEqual(depth.encoding, "32FC1")
        self.assertEqual(self.probe.received["color"][-1].encoding, "rgb8")
        self.assertEqual(self.probe.received["overlay"][-1].encoding, "rgb8")
        # output_size network, resolution:=320x96: the 1226x370 frame fitted inside, aspect kept
        self.assertEqual((labels.width, labels.height), (318, 96))
        self.assertEqual((depth.width, depth.height), (318, 96))
        self.assertEqual(len(labels.data), labels.step * labels.height)
        self.assertEqual(len(depth.data), depth.width * depth.height * 4)

        # CameraInfo at the published size, with K and P scaled from the camera's.
        height, width = self.rgb.shape[:2]
        expected = ros_probe.scaled_k(width, height, labels.width, labels.height)
        for key in ("depth_camera_info", "semantic_camera_info"):
            info = self.probe.received[key][-1]
            self.assertEqual((info.width, info.height), (labels.width, labels.height), key)
            self.assertAlmostEqual(info.k[0], expected["fx"], places=6)
            self.assertAlmostEqual(info.k[4], expected["fy"], places=6)
            self.assertAlmostEqual(info.k[2], expected["cx"], places=6)
            self.assertAlmostEqual(info.k[5], expected["cy"], places=6)
            self.assertAlmostEqual(info.p[0], P_IN[0] * labels.width / width, places=6)

        # The first frame may reach the node before its first CameraInfo (best effort, no sync):
        # that fused message rightly has none; the frame that produced the CameraInfo outputs
        # published one with it, which may still be on its way.
        self.assertTrue(self.probe.spin_until(lambda: any(m.has_camera_info for m in self.probe.received["fused"]), 10.0),
                        "no fused message with camera_info")
        fused = next(m for m in reversed(self.probe.received["fused"]) if m.has_camera_info)
        self.assertEqual(fused.labels.header.frame_id, FRAME_ID)
        self.assertEqual((fused.labels.width, fused.labels.height), (labels.width, labels.height))
        self.assertEqual(fused.camera_info.width, labels.width)
        self.assertGreater(len(fused.class_names), 0)
        self.assertLess(max(labels.data), len(fused.class_names))
        self.assertGreater(fused.total_ms, 0.0)

        self.assertTrue(self.probe.spin_until(lambda: self.probe.received["label_info"], 10.0), "no LabelInfo")
        label_info = self.probe.received["label_info"][-1]
        self.assertEqual(label_info.header.frame_id, FRAME_ID)
        self.assertEqual([c.class_name for c in label_info.class_map], list(fused.class_names))

        # A report sent before the worker counted the frame says frames_processed=0: wait for a later one.
        report = self.probe.wait_for_status(
            NODE, lambda s: int({kv.key: kv.value for kv in s.values}.get("frames_processed", "0")) >= 1)
        values = {kv.key: kv.value for kv in report.values}
        self.assertEqual(values["device"], "cpu")
        self.assertEqual(values["state"], "active")
        self.assertGreater(self.probe.diagnostics[-1].header.stamp.sec, 1_600_000_000,
                           "diagnostics are not stamped with the wall clock (use_sim_time is false)")

    def test_3_malformed_images_are_rejected_and_the_next_good_frame_is_processed(self, proc_output):
        self.probe.wait_for_state(NODE, "active")
        height, width = self.rgb.shape[:2]
        bad_frames = {
            500: {"step": width * 3 - 3, "data": self.rgb.tobytes()[: (width * 3 - 3) * height]},  # wrong step
            501: {"encoding": "xyz123"},  # unknown encoding
            502: {"data": b""},  # empty data
        }
        reports_before = len(self.probe.statuses(NODE))
        for sec, overrides in bad_frames.items():
            before = self.counter("frames_rejected")
            rejected = self.probe.publish_until(
                lambda: self.image_pub.publish(ros_probe.image_msg(self.rgb, sec, FRAME_ID, **overrides)),
                lambda: self.counter("frames_rejected") > before, timeout=30.0, every=2.0)
            self.assertTrue(rejected, f"malformed frame {sec} ({list(overrides)}) was not counted as rejected")

        proc_output.assertWaitFor("dropped an input image", timeout=10)
        self.assertTrue(self.send_until(503, ["labels", "depth", "fused"]),
                        "the good frame after the malformed ones produced no output")
        for key in OUTPUT_TOPICS:
            self.assertFalse(self.probe.stamps(key) & {(sec, NANOSEC) for sec in bad_frames}, key)
        values = self.probe.latest_values(NODE)
        self.assertGreaterEqual(int(values["frames_rejected"]), 3)
        reasons = {key for key in values if key.startswith("rejected.")}
        self.assertGreaterEqual(len(reasons), 3, values)  # three faults, three named reasons
        # A period with rejected input is reported as a warning.
        self.assertTrue(any(s.level == DiagnosticStatus.WARN for s in self.probe.statuses(NODE)[reports_before:]))

    def test_4_a_camera_info_that_cannot_be_scaled_is_counted_and_the_images_still_go_out(self):
        self.probe.wait_for_state(NODE, "active")
        zeros = [0.0] * 9  # an uncalibrated camera: no intrinsics to scale
        sent = []

        def send_next():
            sent.append(700 + len(sent))
            self.send(sent[-1], k=zeros)

        def fused_without_info():
            return [m for m in self.probe.received["fused"] if m.header.stamp.sec in sent and not m.has_camera_info]

        self.assertTrue(self.probe.publish_until(send_next, fused_without_info), "no frame processed with the bad CameraInfo")
        sec = fused_without_info()[0].header.stamp.sec
        # The node publishes a frame's images and CameraInfo before its fused message; on other
        # topics they may still be on their way.
        self.assertTrue(self.probe.spin_until(lambda: self.probe.got("labels", sec) and self.probe.got("depth", sec), 10.0))
        self.probe.spin_for(1.0)
        self.assertFalse(self.probe.got("depth_camera_info", sec) or self.probe.got("semantic_camera_info", sec))
        self.probe.wait_for_status(
            NODE, lambda s: any(kv.key == "camera_info_rejected.bad_intrinsics" and int(kv.value) >= 1 for kv in s.values))

    def test_5_label_info_is_sent_once_per_frame_id(self):
        self.probe.wait_for_state(NODE, "active")
        self.assertTrue(self.send_until(800, ["labels"]))
        self.probe.spin_for(1.0)
        self.assertEqual([m.header.frame_id for m in self.probe.received["label_info"]], [FRAME_ID])
        other = "hydranet_test_other_frame"
        self.assertTrue(self.send_until(801, ["labels"], frame_id=other))
        self.assertTrue(self.probe.spin_until(lambda: len(self.probe.received["label_info"]) == 2, 10.0))
        self.assertEqual(self.probe.received["label_info"][-1].header.frame_id, other)


@launch_testing.post_shutdown_test()
class TestPerceptionShutdown(unittest.TestCase):

    def test_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(
            proc_info, allowable_exit_codes=[launch_testing.asserts.EXIT_OK, launch_testing.asserts.EXIT_SIGINT])
