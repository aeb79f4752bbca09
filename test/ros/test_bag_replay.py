"""launch_testing: a drive replayed with the real rosbag2, through `hydranet bag` and the node.

1. A camera bag (Image + CameraInfo, MCAP) is written with rosbag2_py, as `ros2 bag record`
   writes one; `hydranet bag` adds the node's outputs to a copy; `ros2 bag info` reads it,
   our own message type included.
2. `ros2 bag play --clock --start-paused` offers that bag to this test and to a perception
   node launched with use_sim_time:=true (namespace live, camera cam). While the bag is paused,
   /clock stands at the bag's start: /diagnostics keep coming, stamped with that time.
3. Resumed, every output `hydranet bag` wrote arrives with its input's stamp (LabelInfo on a
   transient-local topic), and the live node's outputs for the replayed frames carry the
   recorded stamps and agree with what `hydranet bag` computed for the same frames.
4. When the player has finished, /clock stands at the bag's end and /diagnostics still come.
"""

import os
import signal
import subprocess
import sys
import unittest

import launch
import launch_testing.actions
import launch_testing.asserts
import numpy as np
import pytest
import rosbag2_py
from rclpy.serialization import serialize_message
from rosbag2_interfaces.srv import Resume
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import LabelInfo

from hydranet_ros.msg import HydraNetResult

sys.path.insert(0, os.path.dirname(__file__))  # launch_test loads this file by path, not as a package
import ros_probe  # noqa: E402
from ros_probe import LATCHED, NANOSEC, SCRATCH, Probe  # noqa: E402

NODE = "/live/perception_node"
FRAME_ID = "cam_optical_frame"
FIRST_SEC, FRAMES = 5000, 3  # recorded at 1 Hz, far from the wall clock's ~1.7e9 s
STAMPS = {(FIRST_SEC + n, NANOSEC) for n in range(FRAMES)}
# Each CameraInfo is recorded this long before its image (same header stamp). The node pairs an
# image with the latest CameraInfo it holds; two topics recorded at one instant reach it in either
# order on a busy machine, and a first frame without CameraInfo gets the training camera's depth
# scale where `hydranet bag` (which pairs by stamp) used the camera's.
INFO_LEAD_NS = 100_000_000
BAG_START = (FIRST_SEC, NANOSEC - INFO_LEAD_NS)  # the first CameraInfo's recording time
CAMERA_BAG, OUTPUT_BAG = SCRATCH / "camera_bag", SCRATCH / "hydranet_bag"
RECORDED = {  # what `hydranet bag` adds under the camera's namespace
    "labels": ("/cam/semantic/labels", Image),
    "depth": ("/cam/depth/image", Image),
    "camera_info": ("/cam/depth/camera_info", CameraInfo),
    "fused": ("/cam/hydranet/result", HydraNetResult),
}


@pytest.mark.launch_test
def generate_test_description():
    perception = ros_probe.perception_launch(namespace="live", camera="cam", use_sim_time="true", device="cpu",
                                             weights="default")
    return launch.LaunchDescription([perception, launch_testing.actions.ReadyToTest()])


def write_camera_bag(rgb):
    """FRAMES frames (the sample shifted sideways, so each differs) with CameraInfo, 1 s apart,
    each CameraInfo recorded INFO_LEAD_NS before its image."""
    writer = rosbag2_py.SequentialWriter()
    writer.open(rosbag2_py.StorageOptions(uri=str(CAMERA_BAG), storage_id="mcap"),
                rosbag2_py.ConverterOptions("cdr", "cdr"))
    topics = [("/cam/image_raw", "sensor_msgs/msg/Image"), ("/cam/camera_info", "sensor_msgs/msg/CameraInfo")]
    for topic_id, (name, type_name) in enumerate(topics):
        try:  # Jazzy's TopicMetadata takes an id first; Humble's has none
            metadata = rosbag2_py.TopicMetadata(id=topic_id, name=name, type=type_name, serialization_format="cdr")
        except TypeError:
            metadata = rosbag2_py.TopicMetadata(name=name, type=type_name, serialization_format="cdr")
        writer.create_topic(metadata)
    height, width = rgb.shape[:2]
    for n in range(FRAMES):
        sec = FIRST_SEC + n
        bag_time = sec * 10**9 + NANOSEC
        writer.write("/cam/camera_info", serialize_message(ros_probe.camera_info_msg(width, height, sec, FRAME_ID)),
                     bag_time - INFO_LEAD_NS)
        writer.write("/cam/image_raw", serialize_message(ros_probe.image_msg(np.roll(rgb, 64 * n, axis=1), sec, FRAME_ID)),
                     bag_time)
    del writer  # closes the bag


class TestBagReplay(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.probe = Probe("hydranet_bag_replay_test")
        for key, (topic, msg_type) in RECORDED.items():
            cls.probe.record(key, topic, msg_type)
        cls.probe.record("label_info", "/cam/semantic/label_info", LabelInfo, LATCHED)
        cls.probe.record("live/labels", "/live/semantic/labels", Image)
        cls.probe.record("live/depth", "/live/depth/image", Image)
        cls.player = None

    @classmethod
    def tearDownClass(cls):
        if cls.player is not None and cls.player.poll() is None:
            cls.player.send_signal(signal.SIGINT)
            try:
                cls.player.wait(timeout=30)
            except subprocess.TimeoutExpired:
                cls.player.kill()
                cls.player.wait()
        cls.probe.close()

    def node_reports(self):
        """(stamp, values) of every /diagnostics array that holds the live node's status."""
        reports = []
        for array_msg in self.probe.diagnostics:
            for status in array_msg.status:
                if status.name.startswith(f"{NODE}: "):
                    stamp = (array_msg.header.stamp.sec, array_msg.header.stamp.nanosec)
                    reports.append((stamp, {kv.key: kv.value for kv in status.values}))
        return reports

    def wait_for_reports_at(self, stamp, count=3, timeout=30.0):
        """``count`` new reports all stamped ``stamp``: the clock stands still and reports keep coming."""
        seen = len(self.node_reports())
        self.assertTrue(self.probe.spin_until(lambda: [s for s, _ in self.node_reports()[seen:]].count(stamp) >= count,
                                              timeout),
                        f"no {count} reports stamped {stamp}; got {[s for s, _ in self.node_reports()[seen:]]}")

    def test_1_hydranet_bag_writes_a_bag_ros2_bag_reads(self):
        write_camera_bag(ros_probe.sample_frame())
        # The colcon install has no `hydranet` script (that is pip's entry point): run its module.
        tool = subprocess.run([sys.executable, "-m", "hydranet_ros.cli", "bag", str(CAMERA_BAG), str(OUTPUT_BAG),
                               "--device", "cpu"], capture_output=True, text=True, timeout=600)
        self.assertEqual(tool.returncode, 0, tool.stdout + tool.stderr)
        self.assertIn(f"{FRAMES}/{FRAMES} frame(s)", tool.stdout)
        info = subprocess.run(["ros2", "bag", "info", str(OUTPUT_BAG)], capture_output=True, text=True, timeout=120)
        self.assertEqual(info.returncode, 0, info.stdout + info.stderr)
        for topic, msg_type in RECORDED.values():
            type_name = f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"
            self.assertRegex(info.stdout, rf"Topic: {topic} \| Type: {type_name} \| Count: {FRAMES} ")
        self.assertRegex(info.stdout, r"Topic: /cam/semantic/label_info \| Type: vision_msgs/msg/LabelInfo \| Count: 1 ")

    def test_2_paused_bag_holds_the_clock_and_diagnostics_keep_coming(self):
        self.assertTrue(OUTPUT_BAG.is_dir(), "test 1 wrote no bag")
        self.probe.wait_for_state(NODE, "active")
        log = open(SCRATCH / "ros2_bag_play.log", "w")
        type(self).player = subprocess.Popen(
            ["ros2", "bag", "play", str(OUTPUT_BAG), "--clock", "20", "--start-paused", "--disable-keyboard-controls"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # Everyone matched before anything is played: reliable topics lose nothing after that.
        for topic, _ in [*RECORDED.values(), ("/cam/semantic/label_info", None), ("/clock", None)]:
            self.probe.wait_for_endpoints(topic, 1, publishers=True)
        self.probe.wait_for_endpoints("/cam/image_raw", 1, publishers=True)
        [camera_in] = self.probe.wait_for_endpoints("/cam/image_raw", 1, publishers=False)
        self.assertEqual((camera_in.node_name, camera_in.node_namespace), ("perception_node", "/live"))
        self.assertTrue(self.probe.spin_until(
            lambda: self.probe.node.count_subscribers("/cam/image_raw") == 1, 10.0))

        self.wait_for_reports_at(BAG_START)  # the bag's first recording time: its start
        self.assertFalse(self.probe.received["live/labels"], "the node published while the bag was paused")
        self.assertFalse(self.probe.received["labels"], "the player published while paused")

    def test_3_resumed_every_recorded_output_and_the_live_node_agree(self):
        self.assertIsNotNone(self.player, "test 2 started no player")
        self.probe.call(Resume, "/rosbag2_player/resume", Resume.Request())
        done = lambda: all(self.probe.stamps(key) == STAMPS for key in RECORDED)  # noqa: E731
        self.assertTrue(self.probe.spin_until(done, 120.0), {key: self.probe.stamps(key) for key in RECORDED})
        self.assertTrue(self.probe.spin_until(lambda: self.probe.received["label_info"], 10.0), "no LabelInfo from the bag")
        self.assertEqual(self.probe.received["label_info"][-1].header.frame_id, FRAME_ID)
        self.assertEqual(self.player.wait(timeout=120), 0, (SCRATCH / "ros2_bag_play.log").read_text())

        # The live node keeps up with 1 Hz here, but a busy machine may make it drop a frame.
        self.assertTrue(self.probe.spin_until(lambda: self.probe.received["live/labels"], 60.0),
                        "the node published nothing for the replayed frames")
        self.probe.spin_for(2.0)
        live = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in self.probe.received["live/labels"]}
        self.assertLessEqual(set(live), STAMPS, "the node stamped outputs with something else than the recorded stamps")
        self.assertTrue(all(m.header.frame_id == FRAME_ID for m in live.values()))
        print(f"live node published labels for {len(live)} of {FRAMES} replayed frames", file=sys.stderr)
        recorded = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in self.probe.received["labels"]}
        for stamp, message in live.items():
            agreement = np.mean(ros_probe.labels_array(message) == ros_probe.labels_array(recorded[stamp]))
            self.assertGreater(agreement, 0.99, f"frame {stamp}: node and `hydranet bag` disagree on labels")
        live_depth = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in self.probe.received["live/depth"]}
        recorded_depth = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in self.probe.received["depth"]}
        for stamp in set(live_depth) & set(recorded_depth):
            ours = np.frombuffer(bytes(live_depth[stamp].data), np.float32)
            theirs = np.frombuffer(bytes(recorded_depth[stamp].data), np.float32)
            np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3, equal_nan=True)

    def test_4_after_the_bag_the_clock_stands_at_its_end_and_diagnostics_keep_coming(self):
        reports = self.node_reports()
        self.assertTrue(reports)
        stamp = reports[-1][0]  # where the player's clock stopped
        # Near the last message: /clock ticks at 20 Hz, and may run on a little before the player exits.
        last = FIRST_SEC + FRAMES - 1 + NANOSEC * 1e-9
        self.assertLess(abs(stamp[0] + stamp[1] * 1e-9 - last), 0.5, stamp)
        print(f"/clock stopped at {stamp}", file=sys.stderr)
        self.wait_for_reports_at(stamp)
        values = self.node_reports()[-1][1]
        self.assertGreaterEqual(int(values["frames_processed"]), 1)


@launch_testing.post_shutdown_test()
class TestBagReplayShutdown(unittest.TestCase):

    def test_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(
            proc_info, allowable_exit_codes=[launch_testing.asserts.EXIT_OK, launch_testing.asserts.EXIT_SIGINT])
