"""launch_testing test: perception.launch.py end to end on a ROS 2 machine (Humble or Jazzy).

Starts the launch file (CPU, small network input), publishes the shared KITTI frame with a
CameraInfo, and checks that every output arrives with the input's header, that CameraInfo is
scaled to the output size, and that malformed images are rejected while the next good frame is
still processed. It runs twice: on the wall clock, and with use_sim_time:=true while the test
publishes /clock as `ros2 bag play --clock` does (diagnostics then carry the recorded time and
keep coming while the clock stands still, as when the bag is paused). Run by `colcon test` (add_launch_test in CMakeLists.txt) or
`launch_test test/test_launch_perception.py` after sourcing the install space.

Without ROS 2 (no rclpy / launch_testing) the module skips at import.
"""

import pytest

# Before any ROS import: skip, not fail, where ROS 2 is absent.
rclpy = pytest.importorskip("rclpy")
launch_testing = pytest.importorskip("launch_testing")
pytest.importorskip("launch_ros")

import array  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from lifecycle_msgs.msg import State  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from hydranet_ros.msg import HydraNetResult  # noqa: E402

try:
    from vision_msgs.msg import LabelInfo
except ImportError:  # the node skips LabelInfo then, with one warning
    LabelInfo = None

CAMERA = "hydranet_test_cam"
FRAME_ID = "hydranet_test_optical_frame"
NODE = "/perception_node"
CLOCK_SEC = 5000  # the recorded drive's time on /clock, far from the wall clock's ~1.7e9 s
KITTI_FRAME = Path("data") / "kitti" / "000099.png"
# KITTI-like intrinsics for the 1226x370 frame.
K_IN = [721.5, 0.0, 609.6, 0.0, 721.5, 172.9, 0.0, 0.0, 1.0]
P_IN = [721.5, 0.0, 609.6, 0.0, 0.0, 721.5, 172.9, 0.0, 0.0, 0.0, 1.0, 0.0]


def _shared_frame() -> Path | None:
    """$HYDRANET_SAMPLE_DATA (the data folder, as for `hydranet demo`), else ../shared/data
    looked for in every parent directory (a colcon build copies the test elsewhere)."""
    override = os.environ.get("HYDRANET_SAMPLE_DATA")
    candidates = [Path(override).parent / KITTI_FRAME] if override else []
    candidates += [parent / "shared" / KITTI_FRAME for parent in Path(__file__).resolve().parents]
    return next((path for path in candidates if path.is_file()), None)


def _test_config() -> str:
    """cpu_debug.yaml with outputs at the network's resolution, so CameraInfo scaling is exercised."""
    share = get_package_share_directory("hydranet_ros")
    with open(os.path.join(share, "config", "cpu_debug.yaml")) as stream:
        document = yaml.safe_load(stream)
    document["/**"]["ros__parameters"]["output_size"] = "network"
    handle, path = tempfile.mkstemp(prefix="hydranet_launch_test_", suffix=".yaml")
    with os.fdopen(handle, "w") as stream:
        yaml.safe_dump(document, stream)
    return path


@pytest.mark.launch_test
@launch_testing.parametrize("sim_time", [False, True])
def generate_test_description(sim_time):
    launch_file = os.path.join(get_package_share_directory("hydranet_ros"), "launch", "perception.launch.py")
    perception = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(launch_file),
        launch_arguments={
            "camera": CAMERA,
            "config": _test_config(),
            "resolution": "320x96",
            "device": "cpu",
            "weights": "default",
            "rviz": "false",
            "use_sim_time": "true" if sim_time else "false",
        }.items(),
    )
    return launch.LaunchDescription([perception, launch_testing.actions.ReadyToTest()]), {"sim_time": sim_time}


OUTPUT_TOPICS = {
    "labels": ("/semantic/labels", Image),
    "color": ("/semantic/color", Image),
    "overlay": ("/semantic/overlay", Image),
    "depth": ("/depth/image", Image),
    "depth_camera_info": ("/depth/camera_info", CameraInfo),
    "semantic_camera_info": ("/semantic/camera_info", CameraInfo),
    "fused": ("/hydranet/result", HydraNetResult),
}


class TestPerceptionLaunch(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        frame_path = _shared_frame()
        if frame_path is None:
            raise unittest.SkipTest("shared/data/kitti/000099.png not found (set HYDRANET_SAMPLE_DATA to the data folder)")
        bgr = cv2.imread(str(frame_path), cv2.IMREAD_COLOR)
        cls.rgb = np.ascontiguousarray(bgr[..., ::-1])
        rclpy.init()
        cls.node = rclpy.create_node("hydranet_launch_test")
        cls.received = defaultdict(list)
        cls.diagnostics = []
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        cls.subscriptions = [
            cls.node.create_subscription(msg_type, topic, lambda msg, key=key: cls.received[key].append(msg), reliable)
            for key, (topic, msg_type) in OUTPUT_TOPICS.items()
        ]
        if LabelInfo is not None:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            cls.subscriptions.append(cls.node.create_subscription(
                LabelInfo, "/semantic/label_info", lambda msg: cls.received["label_info"].append(msg), latched))
        cls.subscriptions.append(cls.node.create_subscription(
            DiagnosticArray, "/diagnostics", cls.diagnostics.append, 10))
        cls.image_pub = cls.node.create_publisher(Image, f"/{CAMERA}/image_raw", qos_profile_sensor_data)
        cls.info_pub = cls.node.create_publisher(CameraInfo, f"/{CAMERA}/camera_info", qos_profile_sensor_data)
        # Published in both runs; the node only listens with use_sim_time.
        cls.clock_pub = cls.node.create_publisher(Clock, "/clock", 10)

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    # -- helpers ---------------------------------------------------------------------------

    def spin_until(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.1)
            if predicate():
                return True
        return False

    def header(self, sec):
        msg = Image().header
        msg.stamp.sec, msg.stamp.nanosec, msg.frame_id = sec, 123456789, FRAME_ID
        return msg

    def image(self, sec, **overrides):
        height, width = self.rgb.shape[:2]
        msg = Image(header=self.header(sec), height=height, width=width, encoding="rgb8",
                    is_bigendian=0, step=width * 3)
        msg.data = array.array("B", self.rgb.tobytes())  # array.array: rclpy's fast path on Humble too
        for name, value in overrides.items():
            setattr(msg, name, array.array("B", value) if name == "data" else value)
        return msg

    def camera_info(self, sec):
        height, width = self.rgb.shape[:2]
        info = CameraInfo(header=self.header(sec), height=height, width=width, distortion_model="plumb_bob")
        info.k, info.p = [float(v) for v in K_IN], [float(v) for v in P_IN]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.d = [0.0] * 5
        return info

    def wait_active(self):
        client = self.node.create_client(GetState, f"{NODE}/get_state")
        try:
            self.assertTrue(client.wait_for_service(timeout_sec=60.0), "lifecycle services never appeared")
            deadline = time.monotonic() + 240.0  # configure loads weights and builds the engine
            while time.monotonic() < deadline:
                future = client.call_async(GetState.Request())
                rclpy.spin_until_future_complete(self.node, future, timeout_sec=5.0)
                if future.done() and future.result().current_state.id == State.PRIMARY_STATE_ACTIVE:
                    return
                time.sleep(0.5)
            self.fail("perception_node did not reach ACTIVE")
        finally:
            self.node.destroy_client(client)

    def publish_clock(self):
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = CLOCK_SEC, 0
        self.clock_pub.publish(msg)

    def stamps(self, key):
        return {(m.header.stamp.sec, m.header.stamp.nanosec) for m in self.received[key]}

    def latest_diagnostic_values(self):
        for array_msg in reversed(self.diagnostics):
            for status in array_msg.status:
                if "perception_node" in status.name:
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def publish_until(self, sec, keys, timeout=120.0):
        """Publish CameraInfo + frame `sec` every second until every output in `keys` has it."""
        wanted = (sec, 123456789)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publish_clock()
            self.info_pub.publish(self.camera_info(sec))
            self.image_pub.publish(self.image(sec))
            if self.spin_until(lambda: all(wanted in self.stamps(k) for k in keys), 1.0):
                return True
        return False

    # -- tests -------------------------------------------------------------------------------

    def test_1_launch_ends_active(self):
        self.wait_active()

    def test_2_every_output_carries_the_input_header(self):
        self.wait_active()
        keys = list(OUTPUT_TOPICS)
        self.assertTrue(self.publish_until(100, keys), f"missing outputs: "
                        f"{[k for k in keys if (100, 123456789) not in self.stamps(k)]}")
        sent = {(100, 123456789)}
        for key in keys:
            for msg in self.received[key]:
                self.assertEqual(msg.header.frame_id, FRAME_ID, key)
                self.assertIn((msg.header.stamp.sec, msg.header.stamp.nanosec), sent, key)

        labels = self.received["labels"][-1]
        depth = self.received["depth"][-1]
        self.assertEqual(labels.encoding, "mono8")
        self.assertEqual(depth.encoding, "32FC1")
        self.assertEqual(self.received["color"][-1].encoding, "rgb8")
        self.assertEqual(self.received["overlay"][-1].encoding, "rgb8")
        self.assertEqual((labels.width, labels.height), (depth.width, depth.height))
        self.assertEqual(len(labels.data), labels.step * labels.height)
        self.assertEqual(len(depth.data), depth.width * depth.height * 4)

        # CameraInfo matches the published size, with K and P scaled from the camera's.
        source_w, source_h = self.rgb.shape[1], self.rgb.shape[0]
        for key in ("depth_camera_info", "semantic_camera_info"):
            info = self.received[key][-1]
            self.assertEqual((info.width, info.height), (labels.width, labels.height), key)
            scale_x, scale_y = labels.width / source_w, labels.height / source_h
            self.assertAlmostEqual(info.k[0], K_IN[0] * scale_x, places=6)
            self.assertAlmostEqual(info.k[4], K_IN[4] * scale_y, places=6)
            self.assertAlmostEqual(info.k[2], (K_IN[2] + 0.5) * scale_x - 0.5, places=6)
            self.assertAlmostEqual(info.p[0], P_IN[0] * scale_x, places=6)

        # The first frame may reach the node before its first CameraInfo (best effort, no sync):
        # that fused message rightly has no camera_info; the frame that produced the CameraInfo
        # outputs published one with it, which may still be on its way.
        self.assertTrue(self.spin_until(lambda: any(m.has_camera_info for m in self.received["fused"]), 10.0),
                        "no fused message with camera_info")
        fused = next(m for m in reversed(self.received["fused"]) if m.has_camera_info)
        self.assertEqual(fused.labels.header.frame_id, FRAME_ID)
        self.assertEqual((fused.labels.width, fused.labels.height), (labels.width, labels.height))
        self.assertTrue(fused.has_camera_info)
        self.assertEqual(fused.camera_info.width, labels.width)
        self.assertGreater(len(fused.class_names), 0)
        self.assertLess(max(labels.data), len(fused.class_names))
        self.assertGreater(fused.total_ms, 0.0)

        if LabelInfo is not None:
            self.assertTrue(self.spin_until(lambda: self.received["label_info"], 10.0), "no LabelInfo")
            label_info = self.received["label_info"][-1]
            self.assertEqual(label_info.header.frame_id, FRAME_ID)
            self.assertEqual([c.class_name for c in label_info.class_map], list(fused.class_names))

        # A report sent before the worker counted the frame says frames_processed=0: wait for a later one.
        self.assertTrue(self.spin_until(
            lambda: int(self.latest_diagnostic_values().get("frames_processed", "0")) >= 1, 10.0),
            "no /diagnostics from perception_node counting the processed frame")
        values = self.latest_diagnostic_values()
        self.assertEqual(values["device"], "cpu")
        self.assertGreaterEqual(int(values["frames_processed"]), 1)

    def test_3_malformed_images_are_rejected_and_next_good_frame_is_processed(self, proc_output):
        self.wait_active()
        height, width = self.rgb.shape[:2]
        bad_frames = {
            500: {"step": width * 3 - 3, "data": self.rgb.tobytes()[: (width * 3 - 3) * height]},  # wrong step
            501: {"encoding": "xyz123"},  # unknown encoding
            502: {"data": b""},  # empty data
        }
        for sec, overrides in bad_frames.items():
            before = int(self.latest_diagnostic_values().get("frames_rejected", "0"))
            rejected = False
            for _ in range(10):  # best-effort input: publish again until the node has counted it
                self.image_pub.publish(self.image(sec, **overrides))
                if self.spin_until(
                        lambda: int(self.latest_diagnostic_values().get("frames_rejected", "0")) > before, 2.0):
                    rejected = True
                    break
            self.assertTrue(rejected, f"malformed frame {sec} ({list(overrides)}) was not counted as rejected")

        proc_output.assertWaitFor("dropped an input image", timeout=10)
        self.assertTrue(self.publish_until(503, ["labels", "depth", "fused"]),
                        "the good frame after the malformed ones produced no output")
        for key in OUTPUT_TOPICS:
            self.assertFalse(self.stamps(key) & {(sec, 123456789) for sec in bad_frames}, key)
        values = self.latest_diagnostic_values()
        self.assertGreaterEqual(int(values["frames_rejected"]), 3)
        self.assertTrue(any(key.startswith("rejected.") for key in values), values)

    def test_4_diagnostics_follow_ros_time_and_keep_coming_while_the_clock_stands_still(self, sim_time):
        self.wait_active()
        self.assertTrue(self.publish_until(600, ["labels"]), "no output for frame 600")
        for _ in range(10):  # /clock is best effort for its subscriber: a few, like a playing bag
            self.publish_clock()
            self.spin_until(lambda: False, 0.1)
        # Now the clock stands still (a paused bag): reports must keep coming all the same.
        count = len(self.diagnostics)
        self.assertTrue(self.spin_until(lambda: len(self.diagnostics) >= count + 3, 15.0),
                        "/diagnostics stopped while /clock stood still")
        stamp = self.diagnostics[-1].header.stamp.sec
        if sim_time:
            self.assertEqual(stamp, CLOCK_SEC, "diagnostics are not stamped with the /clock time")
        else:
            self.assertGreater(stamp, 1_600_000_000, "diagnostics are not stamped with the wall clock")


@launch_testing.post_shutdown_test()
class TestPerceptionShutdown(unittest.TestCase):

    def test_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(
            proc_info, allowable_exit_codes=[launch_testing.asserts.EXIT_OK, launch_testing.asserts.EXIT_SIGINT])
