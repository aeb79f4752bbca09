"""What perception.launch.py and multi_camera.launch.py do with their arguments, as plain
functions (no ROS, no launch).

perception.launch.py declares ``LAUNCH_ARGUMENTS``, then calls ``node_overrides`` and
``remappings`` with the argument strings; multi_camera.launch.py declares
``MULTI_CAMERA_ARGUMENTS`` and adds ``parse_cameras`` (a camera list or a preset rig of 2 to 8)
and ``camera_remappings``. The tests check the parsing that would otherwise only fail at launch
time on a robot.
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
    "CAMERA_RIGS",
    "MULTI_CAMERA_ARGUMENTS",
    "parse_cameras",
    "camera_remappings",
    "multi_camera_overrides",
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


# -- several cameras, one node (multi_camera.launch.py) -----------------------------------------------

# The presets: cameras:=N names the cameras of a common rig (each a driver namespace /<name>).
CAMERA_RIGS: dict[int, tuple[str, ...]] = {
    2: ("front", "rear"),
    3: ("front_left", "front", "front_right"),
    4: ("front", "left", "right", "rear"),
    5: ("front", "front_left", "front_right", "rear_left", "rear_right"),
    6: ("front", "front_left", "front_right", "rear", "rear_left", "rear_right"),
    7: ("front", "front_wide", "front_left", "front_right", "rear", "rear_left", "rear_right"),
    8: ("front", "front_wide", "front_left", "front_right", "left", "right", "rear_left", "rear_right"),
}

_NOT_FOR_MULTI = {"camera", "rviz", "config"}  # one driver namespace; rviz's view shows one camera; another default
MULTI_CAMERA_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("cameras", "4",
                   "The cameras: a preset rig by its size, 2 to 8 ("
                   + "; ".join(f"{n}: {' '.join(names)}" for n, names in CAMERA_RIGS.items())
                   + "), or their names separated by commas (front,left,right). Camera C's driver publishes "
                   "<camera_root>/C/<image_topic> and .../<camera_info_topic>; its outputs go to <namespace>/C/..."),
    LaunchArgument("camera_root", "/", "Namespace that holds the camera drivers' namespaces (e.g. /sensors)."),
    LaunchArgument("batch_timeout_ms", "",
                   "A batch runs when every camera has a new frame or this many milliseconds after the oldest "
                   f"waiting one; {_FROM_CONFIG}."),
    LaunchArgument("config", None,
                   "YAML parameter file for the node (default: config/multi_camera.yaml of this package)."),
    *(argument for argument in LAUNCH_ARGUMENTS if argument.name not in _NOT_FOR_MULTI),
)

_SEPARATORS = re.compile(r"[\s,]+")


def parse_cameras(text: str) -> list[str]:
    """'4' -> the 4-camera rig; 'front, left,right' (or '[front, left]') -> those names, checked
    with the node's own rule (distinct relative ROS names, at most 16)."""
    stripped = text.strip().strip("[]").strip()
    if stripped.isdigit():
        count = int(stripped)
        if count not in CAMERA_RIGS:
            raise ValueError(f"cameras: a preset rig has {min(CAMERA_RIGS)} to {max(CAMERA_RIGS)} cameras, got {count}; "
                             "or name the cameras: cameras:=front,left,right")
        return list(CAMERA_RIGS[count])
    names = [name.strip("'\"") for name in _SEPARATORS.split(stripped) if name]
    if not names:
        raise ValueError("cameras must name at least one camera (or a rig size 2-8)")
    reason = params.validate("cameras", names)
    if reason:
        raise ValueError(reason if reason.startswith("cameras") else f"launch argument cameras: {reason}")
    return names


def camera_remappings(cameras: list[str], camera_root: str, image_topic: str,
                      camera_info_topic: str) -> list[tuple[str, str]]:
    """Each camera's node inputs (C/image, C/image/compressed, C/camera_info, relative to the
    node) mapped onto its driver's topics under ``camera_root``."""
    if not camera_root.startswith("/"):
        raise ValueError(f"camera_root must be absolute (start with /), got {camera_root!r}")
    for label, value in (("image_topic", image_topic), ("camera_info_topic", camera_info_topic)):
        if value.strip().startswith("/") and len(cameras) > 1:
            raise ValueError(f"{label} {value!r} is absolute: every camera would read the same topic; with several "
                             "cameras it is relative to each camera's namespace")
    found = []
    for camera in cameras:
        image, camera_info = input_topics(_join(camera_root, camera), image_topic, camera_info_topic)
        found += [(f"{camera}/image", image), (f"{camera}/image/compressed", f"{image}/compressed"),
                  (f"{camera}/camera_info", camera_info)]
    return found


def multi_camera_overrides(*, cameras: str, batch_timeout_ms: str = "", **single: str) -> dict[str, Any]:
    """``node_overrides`` plus the camera list and the batch timeout (empty: the config's)."""
    overrides = node_overrides(**single)
    overrides["cameras"] = parse_cameras(cameras)
    if batch_timeout_ms.strip():
        try:
            value = float(batch_timeout_ms)
        except ValueError:
            raise ValueError(f"batch_timeout_ms must be a number of milliseconds, got {batch_timeout_ms!r}") from None
        reason = params.validate("batch_timeout_ms", value)
        if reason:
            raise ValueError(f"launch argument {reason}")
        overrides["batch_timeout_ms"] = value
    return overrides
