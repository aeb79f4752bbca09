"""The launch tests' side of the wire: a plain rclpy node that plays camera driver and operator.

It reaches perception_node only through what a user has: topics, the lifecycle services (called
as `ros2 lifecycle set` calls them), the parameter services (as `ros2 param set`), /diagnostics
and the ROS graph. Nothing here imports the node's own modules, so a refactor of hydranet_ros/
cannot make these tests pass or fail by itself.

Every wait is for a condition with a generous deadline, never a fixed sleep: the 2-core CI
machine is shared with other jobs, and a configure that loads torch can take tens of seconds.
"""

from __future__ import annotations

import array
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import rclpy
import yaml
from ament_index_python.packages import get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

PACKAGE = "hydranet_ros"
NANOSEC = 123456789  # every test stamp's fraction: a node that re-stamps would lose it
# KITTI-like intrinsics, used for whatever frame the tests send.
K_IN = [721.5, 0.0, 609.6, 0.0, 721.5, 172.9, 0.0, 0.0, 1.0]
P_IN = [721.5, 0.0, 609.6, 0.0, 0.0, 721.5, 172.9, 0.0, 0.0, 0.0, 1.0, 0.0]
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
SENSOR = qos_profile_sensor_data

# Files the tests write (configs, bags) live here and go when the test process ends.
_SCRATCH = tempfile.TemporaryDirectory(prefix="hydranet_launch_test_")
SCRATCH = Path(_SCRATCH.name)


# -- input data ------------------------------------------------------------------------------------

def _sample_data() -> Path | None:
    """$HYDRANET_SAMPLE_DATA (as for `hydranet demo`), else the nearest shared/data above this file."""
    if explicit := os.environ.get("HYDRANET_SAMPLE_DATA"):
        return Path(explicit)
    return next((p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared" / "data").is_dir()),
                None)


def sample_frame() -> np.ndarray:
    """A real street frame as HxWx3 RGB: the KITTI sample (1226x370) beside the checkout, else a
    synthetic street at the same size, so that no test skips for want of data."""
    data = _sample_data()
    path = data / "kitti" / "000099.png" if data else None
    if path is not None and path.is_file():
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(bgr[..., ::-1])
    from hydranet_ros.train.synthetic import SyntheticStreets

    return np.ascontiguousarray(SyntheticStreets(size=(1226, 370), length=1, seed=99)[0]["image"])


def header(sec: int, frame_id: str) -> Header:
    msg = Header(frame_id=frame_id)
    msg.stamp.sec, msg.stamp.nanosec = sec, NANOSEC
    return msg


def image_msg(rgb: np.ndarray, sec: int, frame_id: str, **overrides: Any) -> Image:
    """An rgb8 Image; ``overrides`` replace fields (``data`` as bytes) to make a malformed one."""
    height, width = rgb.shape[:2]
    msg = Image(header=header(sec, frame_id), height=height, width=width, encoding="rgb8",
                is_bigendian=0, step=width * 3)
    msg.data = array.array("B", rgb.tobytes())  # array.array: rclpy stores it without a per-byte check
    for name, value in overrides.items():
        setattr(msg, name, array.array("B", value) if name == "data" else value)
    return msg


def compressed_msg(rgb: np.ndarray, sec: int, frame_id: str, kind: str) -> CompressedImage:
    """What compressed_image_transport publishes for an rgb8 camera: BGR bytes as PNG or JPEG."""
    ok, encoded = cv2.imencode(f".{'jpg' if kind == 'jpeg' else kind}", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok, kind
    msg = CompressedImage(header=header(sec, frame_id), format=f"rgb8; {kind} compressed bgr8")
    msg.data = array.array("B", encoded.tobytes())
    return msg


def camera_info_msg(width: int, height: int, sec: int, frame_id: str, k: list[float] | None = None) -> CameraInfo:
    info = CameraInfo(header=header(sec, frame_id), height=height, width=width, distortion_model="plumb_bob")
    info.k = [float(v) for v in (K_IN if k is None else k)]
    info.p = [float(v) for v in P_IN]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    return info


def scaled_k(width_in: int, height_in: int, width_out: int, height_out: int) -> dict[str, float]:
    """fx, fy, cx, cy expected at the output size: pixel centres map as c' = (c + 0.5) s - 0.5."""
    sx, sy = width_out / width_in, height_out / height_in
    return {"fx": K_IN[0] * sx, "fy": K_IN[4] * sy, "cx": (K_IN[2] + 0.5) * sx - 0.5, "cy": (K_IN[5] + 0.5) * sy - 0.5}


def labels_array(msg: Image) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width]


# -- launching ---------------------------------------------------------------------------------------

def share() -> Path:
    return Path(get_package_share_directory(PACKAGE))


def config_file(name: str, base: str = "cpu_debug.yaml", **values: Any) -> str:
    """A shipped config with ``values`` changed, written to a scratch file (YAML types kept:
    an int stays an int, as a user's typo would)."""
    document = yaml.safe_load((share() / "config" / base).read_text())
    document["/**"]["ros__parameters"].update(values)
    path = SCRATCH / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def perception_launch(**arguments: str) -> IncludeLaunchDescription:
    """perception.launch.py as a user starts it, with launch arguments (all strings)."""
    source = PythonLaunchDescriptionSource(str(share() / "launch" / "perception.launch.py"))
    return IncludeLaunchDescription(source, launch_arguments={"rviz": "false", **arguments}.items())


# -- the probe node ----------------------------------------------------------------------------------

class Probe:
    """One rclpy node in the test process: records topics, publishes input, calls services."""

    def __init__(self, name: str) -> None:
        rclpy.init()
        self.node = rclpy.create_node(name)
        self.received: dict[str, list] = defaultdict(list)
        self.diagnostics: list[DiagnosticArray] = []
        self._clients: dict[str, Any] = {}
        self.record_diagnostics()

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.shutdown()

    # waiting

    def spin_until(self, predicate: Callable[[], Any], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if predicate():
                return True
            if time.monotonic() > deadline:
                return False

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    # topics

    def record(self, key: str, topic: str, msg_type: type, qos: QoSProfile = RELIABLE) -> None:
        self.node.create_subscription(msg_type, topic, lambda msg: self.received[key].append(msg), qos)

    def record_diagnostics(self) -> None:
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 50)

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile = SENSOR) -> Any:
        return self.node.create_publisher(msg_type, topic, qos)

    def stamps(self, key: str) -> set[tuple[int, int]]:
        return {(m.header.stamp.sec, m.header.stamp.nanosec) for m in self.received[key]}

    def got(self, key: str, sec: int) -> list:
        return [m for m in self.received[key] if (m.header.stamp.sec, m.header.stamp.nanosec) == (sec, NANOSEC)]

    def publish_until(self, send: Callable[[], None], done: Callable[[], Any], timeout: float = 120.0,
                      every: float = 1.0) -> bool:
        """Call ``send`` every ``every`` seconds until ``done()``: camera input is best effort, and
        the node's subscription may still be matching when the first message goes out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            send()
            if self.spin_until(done, every):
                return True
        return False

    # diagnostics

    def statuses(self, node_fqn: str) -> list:
        """Every DiagnosticStatus received from ``node_fqn`` (e.g. '/left/perception_node'), in order."""
        prefix = f"{node_fqn}: "
        return [s for array_msg in self.diagnostics for s in array_msg.status if s.name.startswith(prefix)]

    def latest_values(self, node_fqn: str) -> dict[str, str]:
        statuses = self.statuses(node_fqn)
        return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}

    def wait_for_status(self, node_fqn: str, predicate: Callable[[Any], bool], timeout: float = 30.0) -> Any:
        """The first report from now on that satisfies ``predicate`` (older ones may be stale)."""
        seen = len(self.statuses(node_fqn))
        found: list = []

        def check() -> bool:
            found[:] = [s for s in self.statuses(node_fqn)[seen:] if predicate(s)]
            return bool(found)

        assert self.spin_until(check, timeout), f"no /diagnostics report from {node_fqn} as expected within {timeout} s"
        return found[0]

    # services

    def call(self, srv_type: type, service: str, request: Any, timeout: float = 120.0) -> Any:
        client = self._clients.get(service)
        if client is None:
            client = self._clients[service] = self.node.create_client(srv_type, service)
        assert client.wait_for_service(timeout_sec=60.0), f"service {service} never appeared"
        future = client.call_async(request)
        assert self.spin_until(future.done, timeout), f"{service} did not answer within {timeout} s"
        return future.result()

    def state(self, node_fqn: str) -> str:
        return self.call(GetState, f"{node_fqn}/get_state", GetState.Request()).current_state.label

    def wait_for_state(self, node_fqn: str, label: str, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state(node_fqn) == label:
                return
            self.spin_for(0.5)
        raise AssertionError(f"{node_fqn} did not reach {label} within {timeout} s (is {self.state(node_fqn)})")

    def transition(self, node_fqn: str, label: str, timeout: float = 240.0) -> bool:
        """What `ros2 lifecycle set NODE LABEL` does: find the transition by its label among the
        available ones, then request it by id. True when the node reports success."""
        available = self.call(GetAvailableTransitions, f"{node_fqn}/get_available_transitions",
                              GetAvailableTransitions.Request()).available_transitions
        matching = [t.transition for t in available if t.transition.label == label]
        assert matching, f"{label} is not available now; available: {[t.transition.label for t in available]}"
        request = ChangeState.Request()
        request.transition.id = matching[0].id
        return self.call(ChangeState, f"{node_fqn}/change_state", request, timeout).success

    def set_parameters(self, node_fqn: str, **values: Any) -> list:
        """One set_parameters request (each parameter judged on its own, as `ros2 param set` does)."""
        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg() for name, value in values.items()]
        return self.call(SetParameters, f"{node_fqn}/set_parameters", request).results

    def get_parameter(self, node_fqn: str, name: str) -> Any:
        request = GetParameters.Request(names=[name])
        [value] = self.call(GetParameters, f"{node_fqn}/get_parameters", request).values
        return parameter_value_to_python(value)

    # graph

    def endpoints(self, topic: str, *, publishers: bool) -> list:
        info = self.node.get_publishers_info_by_topic if publishers else self.node.get_subscriptions_info_by_topic
        return [e for e in info(topic) if e.node_name != self.node.get_name()]

    def wait_for_endpoints(self, topic: str, count: int, *, publishers: bool, timeout: float = 30.0) -> list:
        """The other nodes' endpoints on ``topic`` once there are exactly ``count`` of them."""
        assert self.spin_until(lambda: len(self.endpoints(topic, publishers=publishers)) == count, timeout), (
            f"{topic}: {len(self.endpoints(topic, publishers=publishers))} "
            f"{'publishers' if publishers else 'subscribers'}, expected {count}")
        return self.endpoints(topic, publishers=publishers)
