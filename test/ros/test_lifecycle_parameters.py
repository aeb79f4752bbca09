"""launch_testing: the node's life cycle and parameters driven as an operator drives them.

Launched with autostart:=false (left to a lifecycle manager), a config holding a typo (an int
for the float overlay_alpha) and weights:= naming a file that does not exist. The test then
goes through what `ros2 lifecycle set` and `ros2 param set` do (their services; the CLI itself
for one transition and two parameter changes):
- configure is refused while a parameter is refused, and again for the missing weights file;
  each time the node stays UNCONFIGURED and alive, with the reason on /diagnostics; after the
  fixes (set_parameters) configure succeeds;
- parameters while configured: a live one (depth_encoding) applies to the next frame; an
  out-of-range value, an unknown choice, a wrong type and an undeclared name are refused with
  their reason; a configure-time one (precision) is read-only until cleanup, and says so;
- activate -> raw frames without CameraInfo; deactivate -> the camera subscription goes;
  cleanup -> the publishers go; compressed:=true set while unconfigured, configure, activate
  -> PNG without and JPEG with CameraInfo; shutdown -> finalized; a clean exit.
"""

import os
import subprocess
import sys
import unittest

import launch
import launch_testing.actions
import launch_testing.asserts
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hydranet_ros.msg import HydraNetResult

sys.path.insert(0, os.path.dirname(__file__))  # launch_test loads this file by path, not as a package
import ros_probe  # noqa: E402
from ros_probe import Probe  # noqa: E402

CAMERA = "lifecycle_cam"
FRAME_ID = "lifecycle_cam_optical_frame"
NODE = "/perception_node"
MISSING_WEIGHTS = str(ros_probe.SCRATCH / "no_such_dir" / "missing_weights.safetensors")
OUTPUTS = {
    "labels": ("/semantic/labels", Image),
    "overlay": ("/semantic/overlay", Image),
    "color": ("/semantic/color", Image),
    "depth": ("/depth/image", Image),
    "depth_camera_info": ("/depth/camera_info", CameraInfo),
    "fused": ("/hydranet/result", HydraNetResult),
}


@pytest.mark.launch_test
def generate_test_description():
    config = ros_probe.config_file("lifecycle", output_size="network", overlay_alpha=1)  # 1, not 1.0: refused
    perception = ros_probe.perception_launch(
        camera=CAMERA, config=config, resolution="320x96", device="cpu", weights=MISSING_WEIGHTS, autostart="false")
    return launch.LaunchDescription([perception, launch_testing.actions.ReadyToTest()])


def ros2(*args):
    """A ros2 CLI verb as a user types it (no daemon: nothing is left running after the test)."""
    verb = list(args[:2]) + ["--no-daemon", "--spin-time", "3"] + list(args[2:])
    return subprocess.run(["ros2", *verb], capture_output=True, text=True, timeout=120)


class TestLifecycleAndParameters(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rgb = ros_probe.sample_frame()
        cls.probe = Probe("hydranet_lifecycle_test")
        for key, (topic, msg_type) in OUTPUTS.items():
            cls.probe.record(key, topic, msg_type)
        cls.image_pub = cls.probe.publisher(Image, f"/{CAMERA}/image_raw")
        cls.compressed_pub = cls.probe.publisher(CompressedImage, f"/{CAMERA}/image_raw/compressed")
        cls.info_pub = cls.probe.publisher(CameraInfo, f"/{CAMERA}/camera_info")
        cls.raw_labels = None

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def reason(self, result):
        self.assertFalse(result.successful, "the change was accepted")
        return result.reason

    def error_report(self, text):
        return self.probe.wait_for_status(NODE, lambda s: s.level == DiagnosticStatus.ERROR and text in s.message)

    def camera_info(self, sec):
        height, width = self.rgb.shape[:2]
        return ros_probe.camera_info_msg(width, height, sec, FRAME_ID)

    def test_1_a_refused_parameter_blocks_configure_and_says_why(self, proc_output):
        self.probe.wait_for_state(NODE, "unconfigured")
        proc_output.assertWaitFor("parameter overlay_alpha refused", timeout=30)
        self.assertFalse(self.probe.transition(NODE, "configure"))
        self.assertEqual(self.probe.state(NODE), "unconfigured")
        report = self.error_report("overlay_alpha")
        self.assertIn("parameters refused", report.message)

    def test_2_missing_weights_fail_configure_naming_the_file_and_configure_works_after(self, proc_output):
        [result] = self.probe.set_parameters(NODE, overlay_alpha=0.6)
        self.assertTrue(result.successful, result.reason)
        self.assertFalse(self.probe.transition(NODE, "configure"))
        self.assertEqual(self.probe.state(NODE), "unconfigured")
        self.error_report("missing_weights.safetensors")
        proc_output.assertWaitFor("missing_weights.safetensors", timeout=10)

        [result] = self.probe.set_parameters(NODE, weights="default")
        self.assertTrue(result.successful, result.reason)
        self.assertTrue(self.probe.transition(NODE, "configure"))
        self.assertEqual(self.probe.state(NODE), "inactive")
        report = self.probe.wait_for_status(NODE, lambda s: s.level == DiagnosticStatus.OK)
        self.assertEqual({kv.key: kv.value for kv in report.values}["state"], "inactive")

    def test_3_parameters_while_configured(self):
        self.assertEqual(self.probe.state(NODE), "inactive")
        # A live parameter, with the CLI: applies to the next frame (checked in test 4).
        cli = ros2("param", "set", NODE, "depth_encoding", "16UC1")
        self.assertEqual(cli.returncode, 0, cli.stdout + cli.stderr)
        self.assertIn("Set parameter successful", cli.stdout)
        self.assertEqual(self.probe.get_parameter(NODE, "depth_encoding"), "16UC1")

        [out_of_range] = self.probe.set_parameters(NODE, overlay_alpha=3.0)
        self.assertIn("overlay_alpha out of range", self.reason(out_of_range))
        [unknown_choice] = self.probe.set_parameters(NODE, backend="onnx")
        self.assertIn("backend must be one of", self.reason(unknown_choice))
        [wrong_type] = self.probe.set_parameters(NODE, overlay_alpha=1)  # `ros2 param set ... overlay_alpha 1`
        self.assertIn("Wrong parameter type", self.reason(wrong_type))
        [undeclared] = self.probe.set_parameters(NODE, no_such_parameter=True)
        self.assertIn("undeclared parameter", self.reason(undeclared))  # rclpy's reason omits the name
        self.assertEqual(self.probe.get_parameter(NODE, "overlay_alpha"), 0.6)
        self.assertEqual(self.probe.get_parameter(NODE, "backend"), "torch")

        # Configure-time parameters are read-only while an engine is built, with the way out named.
        cli = ros2("param", "set", NODE, "precision", "fp16")
        self.assertIn("Setting parameter failed", cli.stdout + cli.stderr)
        self.assertIn("ros2 lifecycle set <node> cleanup", cli.stdout + cli.stderr)
        self.assertEqual(self.probe.get_parameter(NODE, "precision"), "fp32")

    def test_4_activate_then_raw_frames_without_camera_info_and_live_changes(self):
        cli = ros2("lifecycle", "set", NODE, "activate")
        self.assertEqual(cli.returncode, 0, cli.stdout + cli.stderr)
        self.assertIn("Transitioning successful", cli.stdout)
        self.assertEqual(self.probe.state(NODE), "active")

        send = lambda: self.image_pub.publish(ros_probe.image_msg(self.rgb, 100, FRAME_ID))  # noqa: E731
        self.assertTrue(self.probe.publish_until(send, lambda: self.probe.got("fused", 100) and self.probe.got("depth", 100)
                                                 and self.probe.got("overlay", 100)))
        depth = self.probe.got("depth", 100)[0]
        self.assertEqual(depth.encoding, "16UC1")  # the live change of test 3
        self.assertEqual(len(depth.data), depth.width * depth.height * 2)
        self.assertFalse(self.probe.got("fused", 100)[0].has_camera_info)  # no CameraInfo was ever sent
        self.assertFalse(self.probe.got("depth_camera_info", 100))
        type(self).raw_labels = ros_probe.labels_array(self.probe.got("labels", 100)[0])

        [result] = self.probe.set_parameters(NODE, publish_overlay=False)
        self.assertTrue(result.successful, result.reason)
        send = lambda: self.image_pub.publish(ros_probe.image_msg(self.rgb, 101, FRAME_ID))  # noqa: E731
        self.assertTrue(self.probe.publish_until(send, lambda: self.probe.got("fused", 101) and self.probe.got("color", 101)))
        self.probe.spin_for(1.0)
        self.assertFalse(self.probe.got("overlay", 101), "publish_overlay:=false did not apply to the next frame")

    def test_5_deactivate_drops_the_camera_subscription(self):
        self.assertTrue(self.probe.transition(NODE, "deactivate"))
        self.assertEqual(self.probe.state(NODE), "inactive")
        self.probe.wait_for_endpoints(f"/{CAMERA}/image_raw", 0, publishers=False)
        self.probe.wait_for_endpoints("/semantic/labels", 1, publishers=True)  # still there, inactive
        for _ in range(3):
            self.image_pub.publish(ros_probe.image_msg(self.rgb, 200, FRAME_ID))
            self.probe.spin_for(1.0)
        self.assertFalse(self.probe.got("labels", 200), "an inactive node published")

    def test_6_cleanup_then_compressed_png_and_jpeg_with_and_without_camera_info(self):
        self.assertTrue(self.probe.transition(NODE, "cleanup"))
        self.assertEqual(self.probe.state(NODE), "unconfigured")
        self.probe.wait_for_endpoints("/semantic/labels", 0, publishers=True)  # the engine's publishers are gone
        [result] = self.probe.set_parameters(NODE, compressed=True)  # configure-time: allowed now
        self.assertTrue(result.successful, result.reason)
        self.assertTrue(self.probe.transition(NODE, "configure"))
        self.assertTrue(self.probe.transition(NODE, "activate"))
        self.probe.wait_for_endpoints(f"/{CAMERA}/image_raw/compressed", 1, publishers=False)
        self.assertEqual(self.probe.endpoints(f"/{CAMERA}/image_raw", publishers=False), [])

        # PNG, no CameraInfo since the new activation: lossless, so the labels are the raw frame's.
        send = lambda: self.compressed_pub.publish(ros_probe.compressed_msg(self.rgb, 300, FRAME_ID, "png"))  # noqa: E731
        self.assertTrue(self.probe.publish_until(send, lambda: self.probe.got("fused", 300) and self.probe.got("labels", 300)))
        self.assertFalse(self.probe.got("fused", 300)[0].has_camera_info)
        self.assertFalse(self.probe.got("depth_camera_info", 300))
        png_labels = ros_probe.labels_array(self.probe.got("labels", 300)[0])
        self.assertIsNotNone(self.raw_labels)
        self.assertGreater(np.mean(png_labels == self.raw_labels), 0.99, "PNG input gives other labels than raw rgb8")

        # JPEG with CameraInfo: CameraInfo scaled to the output size, with the frame's header.
        def send_jpeg():
            self.info_pub.publish(self.camera_info(301))
            self.compressed_pub.publish(ros_probe.compressed_msg(self.rgb, 301, FRAME_ID, "jpeg"))

        self.assertTrue(self.probe.publish_until(send_jpeg, lambda: self.probe.got("depth_camera_info", 301)))
        info = self.probe.got("depth_camera_info", 301)[0]
        height, width = self.rgb.shape[:2]
        expected = ros_probe.scaled_k(width, height, 318, 96)  # the frame fitted inside 320x96, aspect kept
        self.assertEqual((info.width, info.height, info.header.frame_id), (318, 96, FRAME_ID))
        self.assertAlmostEqual(info.k[0], expected["fx"], places=6)
        self.assertAlmostEqual(info.k[5], expected["cy"], places=6)
        self.assertTrue(self.probe.spin_until(lambda: self.probe.got("labels", 301), 10.0))
        jpeg_labels = ros_probe.labels_array(self.probe.got("labels", 301)[0])
        # JPEG at quality 95 agrees on 99 % of the labels here; red and blue swapped, on 90 %.
        self.assertGreater(np.mean(jpeg_labels == self.raw_labels), 0.97, "JPEG input gives other labels than raw rgb8")

    def test_7_shutdown_finalizes_and_releases(self):
        self.assertTrue(self.probe.transition(NODE, "shutdown"))
        self.assertEqual(self.probe.state(NODE), "finalized")
        self.probe.wait_for_endpoints("/semantic/labels", 0, publishers=True)
        self.probe.wait_for_endpoints(f"/{CAMERA}/image_raw/compressed", 0, publishers=False)
        self.probe.wait_for_status(NODE, lambda s: any(kv.key == "state" and kv.value == "finalized" for kv in s.values))


@launch_testing.post_shutdown_test()
class TestLifecycleShutdown(unittest.TestCase):

    def test_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(
            proc_info, allowable_exit_codes=[launch_testing.asserts.EXIT_OK, launch_testing.asserts.EXIT_SIGINT])
