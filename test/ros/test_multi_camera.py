"""launch_testing: ONE perception node for three cameras, started by multi_camera.launch.py.

`cameras:=3` (the preset rig front_left, front, front_right), each camera's driver at
/<camera>/image_raw and /<camera>/camera_info, frames of two sizes (so the network runs two
input sizes in one batch round). Checks:
- one node comes up ACTIVE and subscribes to each camera's topics, nothing else;
- each camera gets every output of the single-camera node under its own namespace
  (semantic/labels, color, overlay, confidence, depth/image, both CameraInfos, hydranet/result,
  LabelInfo, and the clouds semantic/points and semantic/obstacles from that camera's own
  CameraInfo), each message with that camera's own stamp and frame_id, never another camera's,
  images at the size the geometry gives that camera's frame;
- a camera that stops does not stop the others: two cameras keep getting outputs;
- /diagnostics has one status per camera (and the node's batching status), frames counted per camera;
- the node exits cleanly.
Run by `colcon test` (CMakeLists.txt) or `launch_test test/ros/test_multi_camera.py`.
"""

import os
import sys
import unittest

import launch
import launch_testing.actions
import launch_testing.asserts
import numpy as np
import pytest
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from vision_msgs.msg import LabelInfo

from hydranet_ros.msg import HydraNetResult

sys.path.insert(0, os.path.dirname(__file__))  # launch_test loads this file by path, not as a package
import ros_probe  # noqa: E402
from ros_probe import LATCHED, NANOSEC, Probe  # noqa: E402

NODE = "/perception_node"
CAMERAS = {
    # camera (the 3-camera rig of multi_camera.launch.py): its stamp seconds and frame_id
    "front_left": (10, "front_left_optical"),
    "front": (20, "front_optical"),
    "front_right": (30, "front_right_optical"),
}
OUTPUTS = {
    "labels": ("semantic/labels", Image), "color": ("semantic/color", Image), "overlay": ("semantic/overlay", Image),
    "depth": ("depth/image", Image), "depth_camera_info": ("depth/camera_info", CameraInfo),
    "semantic_camera_info": ("semantic/camera_info", CameraInfo), "fused": ("hydranet/result", HydraNetResult),
    "confidence": ("semantic/confidence", Image),
    "points": ("semantic/points", PointCloud2), "obstacles": ("semantic/obstacles", PointCloud2),
}
CLOUDS = ("points", "obstacles")


@pytest.mark.launch_test
def generate_test_description():
    source = PythonLaunchDescriptionSource(str(ros_probe.share() / "launch" / "multi_camera.launch.py"))
    config = ros_probe.config_file("multi_camera", base="multi_camera.yaml", output_size="network",
                                   diagnostics_period=0.5)
    multi = IncludeLaunchDescription(source, launch_arguments={
        "cameras": "3", "config": config, "resolution": "320x96", "device": "cpu", "weights": "default"}.items())
    return launch.LaunchDescription([multi, launch_testing.actions.ReadyToTest()])


class TestMultiCamera(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        kitti = ros_probe.sample_frame()  # 1226x370
        cls.frames = {
            "front_left": kitti,
            "front": np.ascontiguousarray(kitti[:, ::-1]),  # same size, another view
            "front_right": np.ascontiguousarray(kitti[:, 300:940]),  # 640x370: another aspect ratio
        }
        cls.probe = Probe("hydranet_multi_camera_test")
        for camera in CAMERAS:
            for key, (topic, msg_type) in OUTPUTS.items():
                cls.probe.record(f"{camera}/{key}", f"/{camera}/{topic}", msg_type)
            cls.probe.record(f"{camera}/label_info", f"/{camera}/semantic/label_info", LabelInfo, LATCHED)
        cls.probe.record("unnamespaced", "/semantic/labels", Image)
        cls.image_pubs = {camera: cls.probe.publisher(Image, f"/{camera}/image_raw") for camera in CAMERAS}
        cls.info_pubs = {camera: cls.probe.publisher(CameraInfo, f"/{camera}/camera_info") for camera in CAMERAS}

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def send(self, camera, sec):
        frame_id = CAMERAS[camera][1]
        rgb = self.frames[camera]
        height, width = rgb.shape[:2]
        self.info_pubs[camera].publish(ros_probe.camera_info_msg(width, height, sec, frame_id))
        self.image_pubs[camera].publish(ros_probe.image_msg(rgb, sec, frame_id))

    def test_1_one_node_subscribes_to_each_camera(self):
        self.probe.wait_for_state(NODE, "active")
        for camera in CAMERAS:
            for topic in (f"/{camera}/image_raw", f"/{camera}/camera_info"):
                [subscriber] = self.probe.wait_for_endpoints(topic, 1, publishers=False)
                self.assertEqual((subscriber.node_name, subscriber.node_namespace), ("perception_node", "/"))
                self.assertEqual(subscriber.qos_profile.reliability, ReliabilityPolicy.BEST_EFFORT)
            for key, (topic, _) in OUTPUTS.items():
                self.probe.wait_for_endpoints(f"/{camera}/{topic}", 1, publishers=True)
        self.assertEqual(self.probe.endpoints("/semantic/labels", publishers=True), [])
        self.assertEqual(self.probe.endpoints("/image", publishers=False), [])

    def test_2_each_camera_gets_its_own_outputs_with_its_own_header(self):
        def send_all():
            for camera, (sec, _) in CAMERAS.items():
                self.send(camera, sec)

        def all_done():
            return all(self.probe.got(f"{camera}/{key}", sec) for camera, (sec, _) in CAMERAS.items() for key in OUTPUTS)

        self.assertTrue(self.probe.publish_until(send_all, all_done),
                        {k: len(v) for k, v in self.probe.received.items()})
        self.probe.spin_for(1.0)
        for camera, (sec, frame_id) in CAMERAS.items():
            height, width = self.frames[camera].shape[:2]
            scale = min(320 / width, 96 / height)
            expected_size = (round(width * scale), round(height * scale))  # fitted inside 320x96, aspect kept
            for key in OUTPUTS:
                messages = self.probe.received[f"{camera}/{key}"]
                self.assertEqual({(m.header.frame_id, m.header.stamp.sec, m.header.stamp.nanosec) for m in messages},
                                 {(frame_id, sec, NANOSEC)}, f"/{camera}/{OUTPUTS[key][0]} carried another camera's header")
                for message in messages:
                    if key in CLOUDS:  # unorganised (the config's points_organized: false): one row of points
                        self.assertEqual(message.height, 1, (camera, key))
                        self.assertEqual([f.name for f in message.fields][-2:], ["confidence", "label"], (camera, key))
                        continue
                    self.assertEqual((message.width, message.height) if key != "fused"
                                     else (message.labels.width, message.labels.height), expected_size, (camera, key))
            self.assertGreater(self.probe.received[f"{camera}/points"][-1].width, 0, camera)  # road, cars... in view
            fused = self.probe.received[f"{camera}/fused"][-1]
            self.assertEqual((fused.labels.header.frame_id, fused.depth.header.frame_id,
                              fused.camera_info.header.frame_id), (frame_id,) * 3)
            self.assertTrue(fused.has_camera_info)
            self.assertTrue(self.probe.spin_until(lambda: self.probe.received[f"{camera}/label_info"], 10.0))
            self.assertEqual({m.header.frame_id for m in self.probe.received[f"{camera}/label_info"]}, {frame_id})
        self.assertEqual(self.probe.received["unnamespaced"], [])

    def test_3_a_camera_that_stops_does_not_stop_the_others(self):
        alive = ("front_left", "front")
        stopped_before = len(self.probe.received["front_right/labels"])

        def send_two():
            for camera in alive:
                self.send(camera, CAMERAS[camera][0] + 100)

        def both_done():
            return all(self.probe.got(f"{camera}/labels", CAMERAS[camera][0] + 100) for camera in alive)

        self.assertTrue(self.probe.publish_until(send_two, both_done, timeout=60.0))
        self.assertEqual(len(self.probe.received["front_right/labels"]), stopped_before)

    def test_4_diagnostics_report_each_camera(self):
        self.assertTrue(self.probe.spin_until(
            lambda: {s.name for s in self.probe.statuses(NODE)} >= self._status_names(), 30.0),
            {s.name for s in self.probe.statuses(NODE)})
        latest = {}
        for status in self.probe.statuses(NODE):
            latest[status.name] = {kv.key: kv.value for kv in status.values}
        node = latest[f"{NODE}: HydraNet perception"]
        self.assertEqual(node["cameras"], "3")
        self.assertGreaterEqual(int(node["batches"]), 1)
        for camera in CAMERAS:
            values = latest[f"{NODE}: HydraNet perception, camera {camera}"]
            self.assertEqual(values["camera"], camera)
            self.assertGreaterEqual(int(values["frames_processed"]), 1, camera)
            for key in ("input_rate_hz", "output_rate_hz", "frames_dropped", "latency_p95_ms"):
                self.assertIn(key, values)

    @staticmethod
    def _status_names():
        return {f"{NODE}: HydraNet perception"} | {f"{NODE}: HydraNet perception, camera {c}" for c in CAMERAS}


@launch_testing.post_shutdown_test()
class TestMultiCameraShutdown(unittest.TestCase):

    def test_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(
            proc_info, allowable_exit_codes=[launch_testing.asserts.EXIT_OK, launch_testing.asserts.EXIT_SIGINT])
