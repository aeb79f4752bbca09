"""The perception node's parameters: one table, one validator, no ROS.

The node declares every parameter from ``PARAMETERS`` (description, range, choices), refuses a
change with the reason ``validate``/``change_refusal`` give, and builds its pipeline from
``pipeline_kwargs``. Keeping the table here lets tests check every rule without rclpy.

Two kinds of parameter:
- live: read for every frame (what to publish, depth encoding, overlay opacity, input size
  limit); a change applies to the next frame.
- configure-time: the engine, the subscriptions and the QoS are built in on_configure, so
  these may only change while the node is unconfigured (``ros2 lifecycle set <node> cleanup``,
  set, then configure again). They are NOT declared read_only: read_only would forbid even that,
  and a lifecycle node exists precisely so that it can be reconfigured without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Mapping, Sequence

from hydranet_ros.errors import UsageError
from hydranet_ros.model.locate import PUBLISHED_SUFFIXES  # torch-free, like everything imported here
from hydranet_ros.outputs.cameras import MAX_CAMERAS, cameras_reason
from hydranet_ros.outputs.choices import CONFIDENCE_ENCODINGS, POINT_COLORS, CloudSettings, class_selection_problem
from hydranet_ros.presets import PRESETS
from hydranet_ros.runtime.choices import (  # torch-free: the launch process imports this module
    AUTO, BACKENDS, DEVICES, MAX_FRAME_PIXELS, MAX_INPUT_SIDE, MIN_INPUT_SIDE, OUTPUT_SIZES, PRECISIONS,
    options_of,
)

__all__ = [
    "ParamSpec",
    "PARAMETERS",
    "SPECS",
    "defaults",
    "validate",
    "validate_all",
    "change_refusal",
    "pipeline_kwargs",
    "LiveSettings",
    "CLASS_LIST_PARAMETERS",
    "class_refusal",
    "describe",
    "read_parameter_file",
    "markdown_table",
]

QOS_PROFILES = ("sensor_data", "reliable", "best_effort", "system_default")
DEPTH_ENCODINGS = ("32FC1", "16UC1")
WEIGHT_SUFFIXES = (".safetensors", *PUBLISHED_SUFFIXES)  # what checkpoints.load_weights reads
PRESET_NAMES = tuple(PRESETS)  # torch-free: hydranet_ros.presets is plain data
MAX_PIXELS_LIMIT = 1 << 28


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter. ``live`` parameters may change while the node is configured."""

    name: str
    type: type
    default: Any
    description: str
    choices: tuple[str, ...] | None = None
    range: tuple[float, float] | None = None
    live: bool = False


def _switch(output: str, what: str) -> ParamSpec:
    return ParamSpec(f"publish_{output}", bool, True,
                     f"Publish {what}. Off, or on with no subscriber, it is not computed.", live=True)


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("weights", str, "default",
              "Network weights: a preset name (default, kitti, nyud, nyud_kitti, nyud_three) or a path "
              "to a .safetensors file or a published .ckpt/.pth/.pt/.tar checkpoint."),
    ParamSpec("backend", str, AUTO,
              "Inference engine; auto = the fastest installed for the device (CUDA: tensorrt, cuda-graph, torch; "
              "CPU: openvino, onnxruntime, torch).", choices=BACKENDS),
    ParamSpec("device", str, "auto", "Where inference runs; auto picks CUDA when available.", choices=DEVICES),
    ParamSpec("precision", str, "fp32", "Numeric precision of the engine.", choices=PRECISIONS),
    ParamSpec("calibration", str, "",
              "int8 only: frames to calibrate on (a folder of images, a video or a rosbag2 from this camera); "
              "empty = use the int8 model `hydranet build-engine --precision int8 --calibration ...` built ahead."),
    ParamSpec("input_width", int, 0,
              "Width of the box the frame is scaled into (aspect ratio kept, never stretched; then padded to "
              "multiples of 32); 0 (with input_height 0) = the size the weights were trained at, else the "
              f"frame's own size. Otherwise >= {MIN_INPUT_SIDE}; set together with input_height.",
              range=(0, MAX_INPUT_SIDE)),
    ParamSpec("input_height", int, 0,
              "Height of the box the frame is scaled into (see input_width); 0 (with input_width 0) = the size "
              f"the weights were trained at, else the frame's own size. Otherwise >= {MIN_INPUT_SIDE}; "
              "set together with input_width.", range=(0, MAX_INPUT_SIDE)),
    ParamSpec("output_size", str, "input",
              "Resolution of the published images: 'input' = the camera frame's, 'network' = the frame as "
              "scaled for the network (its aspect ratio, without padding), which saves upsampling to a large "
              "camera frame.",
              choices=OUTPUT_SIZES),
    ParamSpec("classes", str, "all",
              "Labels from one dataset's classes only, for weights trained on several: 'nyud' (ids 0-39) or "
              "'kitti' (ids 40-45) for nyud_kitti; 'all' takes every class."),
    _switch("labels", "semantic/labels (mono8 class ids)"),
    _switch("color", "semantic/color (rgb8 class colours)"),
    _switch("overlay", "semantic/overlay (rgb8 colours blended over the camera image)"),
    _switch("depth", "depth/image (metric depth)"),
    _switch("camera_info", "depth/camera_info and semantic/camera_info (scaled to the output size)"),
    _switch("label_info", "semantic/label_info (vision_msgs/LabelInfo, latched)"),
    _switch("confidence", "semantic/confidence (the labels' class probability)"),
    _switch("points", "semantic/points (sensor_msgs/PointCloud2: x, y, z, rgb, label, confidence in the camera's optical frame; needs CameraInfo)"),
    _switch("obstacles", "semantic/obstacles (PointCloud2 of the obstacle classes only, for a costmap; needs CameraInfo)"),
    _switch("fused", "the fused hydranet_ros/HydraNetResult message"),
    ParamSpec("input_qos", str, "sensor_data",
              "QoS profile of the image and camera_info subscriptions; sensor_data matches every camera driver.",
              choices=QOS_PROFILES),
    ParamSpec("input_depth", int, 1,
              "History depth of the input subscriptions; keep it short so old frames are dropped, not queued.",
              range=(1, 100)),
    ParamSpec("output_qos", str, "reliable",
              "QoS profile of the output topics; reliable lets rviz2, rosbag2 and depth_image_proc connect.",
              choices=QOS_PROFILES),
    ParamSpec("output_depth", int, 5, "History depth of the output publishers.", range=(1, 100)),
    ParamSpec("depth_encoding", str, "32FC1",
              "depth/image encoding: 32FC1 metres with NaN = invalid (REP 118), or 16UC1 millimetres with 0 = invalid.",
              choices=DEPTH_ENCODINGS, live=True),
    ParamSpec("overlay_alpha", float, 0.5, "Opacity of the class colours in semantic/overlay.",
              range=(0.0, 1.0), live=True),
    ParamSpec("confidence_encoding", str, "32FC1",
              "semantic/confidence encoding: 32FC1 probability 0..1, or mono8 0..255.",
              choices=CONFIDENCE_ENCODINGS, live=True),
    ParamSpec("min_confidence", float, 0.0,
              "Pixels whose class probability is below this get label 255 (unknown) in semantic/labels, the "
              "clouds and the fused message; semantic/label_info's threshold says so. 0 = every pixel keeps its class.",
              range=(0.0, 1.0), live=True),
    ParamSpec("points_stride", int, 1,
              "semantic/points and semantic/obstacles take every n-th pixel of every n-th row.", range=(1, 64), live=True),
    ParamSpec("points_max_range", float, 0.0,
              "Points farther than this from the camera (metres) are left out of both clouds; 0 = no limit.",
              range=(0.0, 10000.0), live=True),
    ParamSpec("points_organized", bool, False,
              "semantic/points as an organised cloud (one point per sampled pixel, NaN where there is no valid "
              "point) instead of a dense one (valid points only: invalid depth dropped).", live=True),
    ParamSpec("points_color", str, "class",
              "Colour (rgb field) of the cloud's points: the class colour or the camera's pixel.",
              choices=POINT_COLORS, live=True),
    ParamSpec("points_classes", str, "",
              "semantic/points keeps only these classes (comma-separated names, 'unknown' for label 255); "
              "empty = every class.", live=True),
    ParamSpec("points_exclude_classes", str, "default",
              "semantic/points leaves out these classes (comma-separated); 'default' = the classes without "
              "depth (sky), empty = none.", live=True),
    ParamSpec("obstacle_classes", str, "default",
              "Classes semantic/obstacles holds (comma-separated; 'unknown' adds label 255); 'default' = every "
              "class but free surfaces and sky (road, sidewalk, floor, floor mat, ceiling, sky).", live=True),
    ParamSpec("max_input_pixels", int, MAX_FRAME_PIXELS,
              "Frames with more pixels are rejected before decoding (guards memory); 0 = no limit.",
              range=(0, MAX_PIXELS_LIMIT), live=True),
    ParamSpec("compressed", bool, False,
              "Subscribe to image/compressed (sensor_msgs/CompressedImage, JPEG or PNG) instead of image."),
    ParamSpec("use_camera_info", bool, True,
              "Subscribe to camera_info and publish it scaled to the output size beside depth and labels."),
    ParamSpec("strict", bool, False,
              "Fail configure instead of falling back (for example to CPU or fp32) when the request cannot be met."),
    ParamSpec("diagnostics_period", float, 1.0, "Seconds between /diagnostics reports.", range=(0.1, 60.0)),
    ParamSpec("cameras", list, [],
              "Camera namespaces for one node serving several cameras with one network (relative to the node's "
              "namespace, e.g. [front, left, right]): camera C reads C/image (or C/image/compressed) and "
              "C/camera_info and publishes every output under C/. Their frames run through the network in "
              f"one batch. Empty: one camera, at image and camera_info. At most {MAX_CAMERAS}."),
    ParamSpec("batch_timeout_ms", float, 20.0,
              "With cameras: a batch runs when every camera has a new frame, or this long after the oldest "
              "waiting frame arrived (a camera that stops delays the others by this much at most, and not at "
              "all once silent for a second). 0 = run whatever waits at once.",
              range=(0.0, 1000.0)),
)

SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


def defaults() -> dict[str, Any]:
    return {spec.name: list(spec.default) if spec.type is list else spec.default for spec in PARAMETERS}


def _type_reason(spec: ParamSpec, value: Any) -> str | None:
    # bool is an int in Python, but a ROS parameter of type bool is never an integer.
    if spec.type is list:  # a ROS string array
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    elif spec.type is bool:
        ok = isinstance(value, bool)
    elif spec.type is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif spec.type is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if ok:
        return None
    kind = "list of strings" if spec.type is list else spec.type.__name__
    return f"{spec.name} must be a {kind}, got {type(value).__name__} {value!r}"


def _weights_reason(value: str) -> str | None:
    if not value.strip():
        return "weights must name a preset or a weights file, got an empty string"
    path = PurePath(value)
    if len(path.parts) > 1 or path.suffix.lower() in WEIGHT_SUFFIXES:
        return None  # a path: whether it exists and loads is checked at configure, with the file named
    names = ("default", *PRESET_NAMES)
    if value in names:
        return None
    return (f"weights {value!r} is neither a preset ({', '.join(names)}) nor a path to a "
            f"{'/'.join(WEIGHT_SUFFIXES)} file")


def validate(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name``, or None when it is."""
    spec = SPECS.get(name)
    if spec is None:
        return f"unknown parameter {name!r}"
    reason = _type_reason(spec, value)
    if reason:
        return reason
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}; got {value!r}"
    if spec.range is not None:
        low, high = spec.range
        if not low <= value <= high:  # also refuses NaN
            return f"{name} must be in [{low}, {high}]; got {value!r}"
    if name == "weights":
        return _weights_reason(value)
    if name == "cameras":
        return cameras_reason(value)
    if name in ("input_width", "input_height") and 0 < value < MIN_INPUT_SIDE:
        return f"{name} must be 0 (automatic size) or at least {MIN_INPUT_SIDE}; got {value}"
    return None


def validate_all(values: Mapping[str, Any]) -> dict[str, str]:
    """Reasons per parameter name for a whole set of values (missing names take defaults).

    Checks each value, then the rules that tie parameters together. Empty when all is well.
    """
    reasons = {name: reason for name, value in values.items() if (reason := validate(name, value))}
    merged = {**defaults(), **values}
    width, height = merged["input_width"], merged["input_height"]
    if "input_width" not in reasons and "input_height" not in reasons and (width == 0) != (height == 0):
        reasons["input_height" if width else "input_width"] = (
            f"input_width and input_height are 0 together (automatic size) or set together; got {width}x{height}"
        )
    return reasons


def change_refusal(changes: Mapping[str, Any], current: Mapping[str, Any], *, configured: bool) -> str | None:
    """Why a run-time parameter change must be refused, or None to accept it.

    ``current`` holds the node's present values, ``configured`` whether an engine is built
    (inactive or active). Configure-time parameters may change only while unconfigured.
    """
    reasons: list[str] = []
    for name, value in changes.items():
        reason = validate(name, value)
        if reason:
            reasons.append(reason)
        elif configured and not SPECS[name].live and _differs(value, current.get(name)):
            reasons.append(
                f"{name} is used when the node is configured; deactivate and clean up the node "
                "(ros2 lifecycle set <node> cleanup), set it, then configure again"
            )
    if not reasons:
        merged = {**current, **changes}
        reasons.extend(reason for name, reason in validate_all(merged).items())
    return "; ".join(reasons) if reasons else None


def _differs(value: Any, current: Any) -> bool:
    # A string array arrives as a list from one side and a tuple from another.
    if isinstance(value, (list, tuple)) and isinstance(current, (list, tuple)):
        return list(value) != list(current)
    return value != current


def pipeline_kwargs(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for PipelineConfig from validated parameter values."""
    width, height = int(values["input_width"]), int(values["input_height"])
    return {
        "weights": values["weights"],
        "backend": values["backend"],
        "device": values["device"],
        "precision": values["precision"],
        # 0 x 0: the size the weights were trained at if they record it, else the frame's own.
        "input_size": (width, height) if width and height else "auto",
        "output_size": values["output_size"],
        "strict": bool(values["strict"]),
        "classes": values["classes"],
        "engine_options": _engine_options(values),
        # One network pass takes every camera's frame (engines built for a batch range need it).
        "max_batch": max(1, len(values["cameras"])),
    }


# Parameters naming classes: their names are checked against the weights' classes once the
# weights are loaded (class_refusal), at configure and for a change while configured.
CLASS_LIST_PARAMETERS = ("points_classes", "points_exclude_classes", "obstacle_classes")


def class_refusal(values: Mapping[str, Any], class_names: Sequence[str]) -> str | None:
    """Why the class list parameters in ``values`` name classes the weights (``class_names``) do
    not have, or None."""
    return class_selection_problem({name: str(values[name]) for name in CLASS_LIST_PARAMETERS if name in values},
                                   class_names)


def _engine_options(values: Mapping[str, Any]) -> dict[str, Any]:
    # Calibration frames matter to int8 builds only, and only backends that calibrate take them.
    takes = values["backend"] in BACKENDS and "calibration" in options_of(values["backend"])
    if values.get("calibration") and values["precision"] == "int8" and takes:
        return {"calibration": values["calibration"]}
    return {}


@dataclass(frozen=True)
class LiveSettings:
    """What the frame path reads on every frame; replaced as a whole when a live parameter changes."""

    publish: dict[str, bool]
    depth_encoding: str
    overlay_alpha: float
    max_input_pixels: int | None
    confidence_encoding: str = "32FC1"
    min_confidence: float = 0.0
    cloud: CloudSettings = CloudSettings()

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "LiveSettings":
        publish = {name[len("publish_"):]: bool(values[name]) for name in SPECS if name.startswith("publish_")}
        limit = int(values["max_input_pixels"])
        return cls(
            publish=publish,
            depth_encoding=str(values["depth_encoding"]),
            overlay_alpha=float(values["overlay_alpha"]),
            max_input_pixels=limit if limit > 0 else None,
            confidence_encoding=str(values["confidence_encoding"]),
            min_confidence=float(values["min_confidence"]),
            cloud=CloudSettings(
                stride=int(values["points_stride"]), max_range_m=float(values["points_max_range"]),
                organized=bool(values["points_organized"]), color=str(values["points_color"]),
                classes=str(values["points_classes"]), exclude_classes=str(values["points_exclude_classes"]),
                obstacle_classes=str(values["obstacle_classes"])),
        )


def describe(spec: ParamSpec) -> dict[str, Any]:
    """The fields of a ROS ParameterDescriptor for ``spec`` (the node builds the message).

    ``integer_range`` / ``floating_point_range`` are (from, to) or None; step 0 (any value).
    """
    when = "Changes apply to the next frame." if spec.live else "Applies at configure (set it while unconfigured)."
    constraints = ""
    if spec.choices is not None:
        constraints = "one of: " + ", ".join(spec.choices)
    elif spec.range is not None:
        constraints = f"in [{spec.range[0]}, {spec.range[1]}]"
    return {
        "name": spec.name,
        "description": f"{spec.description} {when}",
        "additional_constraints": constraints,
        "read_only": False,
        "integer_range": (int(spec.range[0]), int(spec.range[1])) if spec.range and spec.type is int else None,
        "floating_point_range": (float(spec.range[0]), float(spec.range[1])) if spec.range and spec.type is float else None,
    }


def read_parameter_file(path: str | PurePath) -> dict[str, Any]:
    """The node's parameter values in a ROS 2 parameter file (config/*.yaml): every
    ``ros__parameters`` mapping in it, whatever node name or namespace (``/**``) it sits under,
    merged in file order. Unchecked: pass the result to ``validate_all``. Raises UsageError with
    a one-line reason for a file that is not such a parameter file (OSError when unreadable)."""
    import yaml

    with open(path, encoding="utf-8") as stream:
        try:
            document = yaml.safe_load(stream)
        except yaml.YAMLError as exc:
            raise UsageError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    found: dict[str, Any] = {}
    sections = 0

    def collect(node: Any) -> None:
        nonlocal sections
        if not isinstance(node, dict):
            return
        if isinstance(node.get("ros__parameters"), dict):
            sections += 1
            found.update(node["ros__parameters"])
        for key, child in node.items():
            if key != "ros__parameters":
                collect(child)

    collect(document)
    if not sections:
        raise UsageError(f"{path}: no ros__parameters section (a ROS 2 parameter file, like config/hydranet.yaml)")
    return found


def markdown_table() -> str:
    """The parameter table of the README, made from PARAMETERS (tools/update_readme_parameters.py
    writes it there; a test keeps the two equal)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| parameter | type | default | allowed | when | description |", "|---|---|---|---|---|---|"]
    for spec in PARAMETERS:
        if spec.type is list:
            default = "[" + ", ".join(spec.default) + "]"
        else:
            default = f'"{spec.default}"' if spec.type is str else str(spec.default).lower() if spec.type is bool else str(spec.default)
        if spec.choices is not None:
            allowed = ", ".join(f"`{c}`" for c in spec.choices)
        elif spec.range is not None:
            allowed = f"{spec.range[0]} .. {spec.range[1]}"
        else:
            allowed = ""
        when = "live" if spec.live else "configure"
        rows.append(f"| `{spec.name}` | {spec.type.__name__} | `{default}` | {cell(allowed)} | {when} | {cell(spec.description)} |")
    return "\n".join(rows) + "\n"
