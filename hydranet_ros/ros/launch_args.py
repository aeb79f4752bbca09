"""What perception.launch.py does with its arguments, as plain functions (no ROS, no launch).

The launch file declares ``LAUNCH_ARGUMENTS``, then calls ``node_overrides`` and ``remappings``
with the argument strings; the tests here check the parsing that would otherwise only fail at
launch time on a robot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hydranet_ros.outputs import params

__all__ = [
    "LaunchArgument",
    "LAUNCH_ARGUMENTS",
    "parse_resolution",
    "parse_bool",
    "input_topics",
    "remappings",
    "node_overrides",
]


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str | None  # None: the launch file supplies it (the package's share directory)
    description: str
    choices: tuple[str, ...] | None = None


_FROM_CONFIG = "empty = as the config file says"

LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("camera", "camera", "Namespace of the camera driver; relative topic names below are inside it."),
    LaunchArgument("image_topic", "image_raw",
                   "Camera image topic, relative to the camera namespace or absolute (/...). With "
                   "compressed:=true the node reads <image_topic>/compressed."),
    LaunchArgument("camera_info_topic", "camera_info",
                   "CameraInfo topic, relative to the camera namespace or absolute."),
    LaunchArgument("compressed", "", "Read sensor_msgs/CompressedImage (JPEG/PNG) instead of raw images; "
                   f"{_FROM_CONFIG}.",
                   ("", "true", "false")),
    LaunchArgument("resolution", "",
                   "Network input: the camera frame is scaled to fit inside WIDTHxHEIGHT with its aspect ratio "
                   "kept (never stretched), then padded to multiples of 32; e.g. 640x480 runs a 1242x375 frame "
                   "at 640x193 (padded to 640x224). 0x0 = the size the weights were trained at, else the "
                   f"camera's own size; {_FROM_CONFIG}."),
    LaunchArgument("precision", "", f"Engine precision: fp32, fp16 or int8; {_FROM_CONFIG}.",
                   ("", *params.PRECISIONS)),
    LaunchArgument("backend", "", f"Inference engine: auto (the fastest installed), {', '.join(params.BACKENDS[1:])}; "
                   f"{_FROM_CONFIG}.",
                   ("", *params.BACKENDS)),
    LaunchArgument("device", "", f"auto, cuda or cpu; {_FROM_CONFIG}.", ("", *params.DEVICES)),
    LaunchArgument("weights", "",
                   f"Preset name (default, kitti, nyud, ...) or path to a weights file; {_FROM_CONFIG} "
                   "(the shipped configs use 'default')."),
    LaunchArgument("config", None,
                   "YAML parameter file for the node (default: config/hydranet.yaml of this package; "
                   "presets: jetson_orin_fp16.yaml, cpu_debug.yaml)."),
    LaunchArgument("use_sim_time", "false", "Use /clock (ros2 bag play --clock) as ROS time.", ("true", "false")),
    LaunchArgument("rviz", "false", "Also start rviz2 (installed separately) with the package's view of camera, "
                   "semantics and depth.",
                   ("true", "false")),
    LaunchArgument("namespace", "", "Namespace of the perception node and its output topics."),
    LaunchArgument("log_level", "info", "Log level of the perception node.",
                   ("debug", "info", "warn", "error", "fatal")),
    LaunchArgument("autostart", "true",
                   "Configure and activate the lifecycle node at launch; false leaves it unconfigured "
                   "for a lifecycle manager.", ("true", "false")),
)

_RESOLUTION = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_resolution(text: str) -> tuple[int, int] | None:
    """'640x480' -> (640, 480); '' -> None (keep the config's); '0x0' -> (0, 0) (the trained size,
    else the frame's: see params' input_width)."""
    if not text.strip():
        return None
    match = _RESOLUTION.match(text)
    if not match:
        raise ValueError(f"resolution must look like 640x480, got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    reasons = params.validate_all({"input_width": width, "input_height": height})
    if reasons:
        raise ValueError(f"resolution {text!r}: " + "; ".join(reasons.values()))
    return width, height


def parse_bool(text: str, *, name: str = "argument") -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, got {text!r}")


def _join(namespace: str, name: str) -> str:
    if name.startswith("/"):
        return name
    namespace = namespace.strip("/")
    return f"/{namespace}/{name}" if namespace else f"/{name}"


def input_topics(camera: str, image_topic: str, camera_info_topic: str) -> tuple[str, str]:
    """Absolute image and CameraInfo topics for a camera namespace and (relative) topic names."""
    for label, value in (("image_topic", image_topic), ("camera_info_topic", camera_info_topic)):
        if not value.strip("/ "):
            raise ValueError(f"{label} must not be empty")
    return _join(camera, image_topic.strip()), _join(camera, camera_info_topic.strip())


def remappings(camera: str, image_topic: str, camera_info_topic: str) -> list[tuple[str, str]]:
    """The node's input names mapped to the camera's topics (image transport's /compressed suffix)."""
    image, camera_info = input_topics(camera, image_topic, camera_info_topic)
    return [("image", image), ("image/compressed", f"{image}/compressed"), ("camera_info", camera_info)]


def node_overrides(
    *,
    resolution: str = "",
    precision: str = "",
    backend: str = "",
    device: str = "",
    weights: str = "",
    compressed: str = "",
    use_sim_time: str = "false",
) -> dict[str, Any]:
    """Parameter values the launch arguments set on top of the config file (later wins).

    Empty strings leave the config's value. Values are checked with the node's own rules so a
    typo fails at launch with the argument named, not later in configure.
    """
    overrides: dict[str, Any] = {"use_sim_time": parse_bool(use_sim_time, name="use_sim_time")}
    if compressed.strip():  # empty: the config file's value stands
        overrides["compressed"] = parse_bool(compressed, name="compressed")
    size = parse_resolution(resolution)
    if size is not None:
        overrides["input_width"], overrides["input_height"] = size
    for name, value in (("precision", precision), ("backend", backend), ("device", device), ("weights", weights)):
        value = value.strip()
        if not value:
            continue
        reason = params.validate(name, value)
        if reason:
            raise ValueError(f"launch argument {name}: {reason}")
        overrides[name] = value
    return overrides
