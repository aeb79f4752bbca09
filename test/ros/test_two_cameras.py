"""launch_testing: two perception nodes at once, one per camera, as on a robot with two cameras.

perception.launch.py included twice: namespace:=left on camera cam_left (raw images), and
namespace:=right on camera cam_right with image_topic:=image_rect and compressed:=true (JPEG).
Checks that both come up ACTIVE with distinct names, that each subscribes to its own camera
only and publishes under its own namespace only (nothing on the un-namespaced topics), that
each output carries its own camera's header, and that /diagnostics tells the two apart.
"""

import os
import sys
import unittest

import launch
import launch_testing.actions
import launch_testing.asserts
import pytest
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from vision_msgs.msg import LabelInfo

from hydranet_ros.msg import HydraNetResult

sys.path.insert(0, os.path.dirname(__file__))  # launch_test loads this file by path, not as a package
import ros_probe  # noqa: E402
from ros_probe import LATCHED, Probe  # noqa: E402

CAMERAS = {
    # namespace: launch arguments beyond the shared ones, the camera's input topic, its frame_id
    "left": ({"camera": "cam_left", "image_topic": "image_raw", "compressed": "false"},
             "/cam_left/image_raw", "left_optical_frame"),
    "right": ({"camera": "cam_right", "image_topic": "image_rect", "compressed": "true"},
              "/cam_right/image_rect/compressed", "right_optical_frame"),
}
OUTPUTS = {"labels": ("semantic/labels", Image), "depth": ("depth/image", Image),
           "camera_info": ("depth/camera_info", CameraInfo), "fused": ("hydranet/result", HydraNetResult)}


@pytest.mark.launch_test
def generate_test_description():
    config = ros_probe.config_file("two_cameras", output_size="network")
    includes = [
        ros_probe.perception_launch(namespace=namespace, config=config, resolution="320x96", device="cpu",
                                    weights="default", **arguments)
        for namespace, (arguments, _, _) in CAMERAS.items()
    ]
    return launch.LaunchDescription([*includes, launch_testing.actions.ReadyToTest()])


class TestTwoCameras(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rgb = ros_probe.sample_frame()
        cls.probe = Probe("hydranet_two_cameras_test")
        for namespace in CAMERAS:
            for key, (topic, msg_type) in OUTPUTS.items():
                cls.probe.record(f"{namespace}/{key}", f"/{namespace}/{topic}", msg_type)
            cls.probe.record(f"{namespace}/label_info", f"/{namespace}/semantic/label_info", LabelInfo, LATCHED)
        cls.left_pub = cls.probe.publisher(Image, CAMERAS["left"][1])
        cls.right_pub = cls.probe.publisher(CompressedImage, CAMERAS["right"][1])
        cls.info_pubs = {ns: cls.probe.publisher(CameraInfo, f"/{CAMERAS[ns][0]['camera']}/camera_info")
                         for ns in CAMERAS}

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def test_1_both_come_up_with_their_own_names_and_topics(self):
        for namespace in CAMERAS:
            self.probe.wait_for_state(f"/{namespace}/perception_node", "active")
        nodes = self.probe.node.get_node_names_and_namespaces()
        self.assertEqual(nodes.count(("perception_node", "/left")), 1, nodes)
        self.assertEqual(nodes.count(("perception_node", "/right")), 1, nodes)

        for namespace, (_, camera_topic, _) in CAMERAS.items():
            [subscriber] = self.probe.wait_for_endpoints(camera_topic, 1, publishers=False)
            self.assertEqual(subscriber.node_namespace, f"/{namespace}")
            self.assertEqual(subscriber.qos_profile.reliability, ReliabilityPolicy.BEST_EFFORT)
            [publisher] = self.probe.wait_for_endpoints(f"/{namespace}/semantic/labels", 1, publishers=True)
            self.assertEqual(publisher.node_namespace, f"/{namespace}")
        # Nothing un-namespaced, and the right camera's raw topic is not read (compressed:=true).
        self.assertEqual(self.probe.endpoints("/semantic/labels", publishers=True), [])
        self.assertEqual(self.probe.endpoints("/cam_right/image_rect", publishers=False), [])
        self.assertEqual(self.probe.endpoints("/cam_left/image_raw/compressed", publishers=False), [])

    def test_2_each_serves_its_own_camera(self):
        height, width = self.rgb.shape[:2]
        flipped = self.rgb[:, ::-1].copy()  # the right camera sees something else
        left_frame, right_frame = CAMERAS["left"][2], CAMERAS["right"][2]

        def send():
            self.info_pubs["left"].publish(ros_probe.camera_info_msg(width, height, 10, left_frame))
            self.left_pub.publish(ros_probe.image_msg(self.rgb, 10, left_frame))
            self.info_pubs["right"].publish(ros_probe.camera_info_msg(width, height, 20, right_frame))
            self.right_pub.publish(ros_probe.compressed_msg(flipped, 20, right_frame, "jpeg"))

        def both_done():
            return all(self.probe.got(f"{ns}/{key}", sec) for ns, sec in (("left", 10), ("right", 20))
                       for key in ("labels", "depth", "camera_info", "fused"))

        self.assertTrue(self.probe.publish_until(send, both_done), {k: len(v) for k, v in self.probe.received.items()})
        self.probe.spin_for(1.0)
        for namespace, (sec, frame_id) in {"left": (10, left_frame), "right": (20, right_frame)}.items():
            for key in OUTPUTS:
                messages = self.probe.received[f"{namespace}/{key}"]
                self.assertTrue(messages, f"{namespace}/{key}")
                self.assertEqual({(m.header.frame_id, m.header.stamp.sec) for m in messages}, {(frame_id, sec)},
                                 f"/{namespace} published another camera's frame on {key}")
            self.assertTrue(self.probe.spin_until(lambda: self.probe.received[f"{namespace}/label_info"], 10.0))
            self.assertEqual(self.probe.received[f"{namespace}/label_info"][-1].header.frame_id, frame_id)

        # /diagnostics is one topic for the whole robot: each node reports under its own name.
        for namespace in CAMERAS:
            node = f"/{namespace}/perception_node"
            self.probe.wait_for_status(
                node, lambda s: int({kv.key: kv.value for kv in s.values}.get("frames_processed", "0")) >= 1)


@launch_testing.post_shutdown_test()
class TestTwoCamerasShutdown(unittest.TestCase):

    def test_both_exit_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(
            proc_info, allowable_exit_codes=[launch_testing.asserts.EXIT_OK, launch_testing.asserts.EXIT_SIGINT])
