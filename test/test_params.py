"""Parameter table and validation of the perception node (no ROS needed)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydranet_ros.outputs import params
from hydranet_ros.outputs.params import PARAMETERS, SPECS, LiveSettings, change_refusal, validate, validate_all


def test_every_default_is_valid():
    assert validate_all(params.defaults()) == {}
    for spec in PARAMETERS:
        assert validate(spec.name, spec.default) is None, spec.name


def test_table_is_complete_and_described():
    required = {
        "weights", "backend", "device", "precision", "input_width", "input_height", "output_size",
        "publish_labels", "publish_color", "publish_overlay", "publish_depth", "publish_camera_info",
        "publish_label_info", "publish_fused", "input_qos", "output_qos", "depth_encoding",
        "overlay_alpha", "max_input_pixels", "compressed", "use_camera_info", "strict",
    }
    assert required <= set(SPECS)
    assert len(SPECS) == len(PARAMETERS)  # no duplicate names
    for spec in PARAMETERS:
        assert len(spec.description) > 15, spec.name
        assert isinstance(spec.default, spec.type), spec.name


def test_choices_and_defaults_match_the_issue():
    assert SPECS["backend"].choices == ("auto", "torch", "cuda-graph", "tensorrt", "onnxruntime", "openvino")
    assert SPECS["backend"].default == "auto"  # the fastest installed engine for the device
    assert SPECS["device"].choices == ("auto", "cuda", "cpu")
    assert SPECS["precision"].choices == ("fp32", "fp16", "int8")
    assert SPECS["depth_encoding"].default == "32FC1"
    assert SPECS["input_qos"].default == "sensor_data"
    assert SPECS["output_qos"].default == "reliable"
    assert SPECS["weights"].default == "default"


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("backend", "onnx", "one of auto, torch, cuda-graph, tensorrt, onnxruntime, openvino"),
        ("device", "gpu", "one of auto, cuda, cpu"),
        ("precision", "bf16", "fp32, fp16, int8"),
        ("overlay_alpha", 1.5, "[0.0, 1.0]"),
        ("overlay_alpha", -0.1, "[0.0, 1.0]"),
        ("overlay_alpha", math.nan, "[0.0, 1.0]"),
        ("input_width", 16, "at least 32"),
        ("input_width", -1, "[0, 8192]"),
        ("input_height", 10000, "[0, 8192]"),
        ("max_input_pixels", -5, "max_input_pixels must be in"),
        ("depth_encoding", "16UC3", "32FC1, 16UC1"),
        ("output_size", "half", "network, input"),
        ("input_qos", "fast", "sensor_data"),
        ("input_depth", 0, "[1, 100]"),
        ("compressed", 1, "must be a bool"),
        ("input_width", True, "must be a int"),
        ("input_width", 640.0, "must be a int"),
        ("overlay_alpha", "0.5", "must be a float"),
        ("weights", "", "empty"),
        ("weights", "kiti", "neither a preset"),
        ("no_such_param", 1, "unknown parameter"),
    ],
)
def test_bad_values_are_refused_with_a_reason(name, value, fragment):
    reason = validate(name, value)
    assert reason is not None and fragment in reason, reason


@pytest.mark.parametrize("value", ["default", "kitti", "nyud", "nyud_kitti", "nyud_three",
                                   "/opt/models/hydra.safetensors", "model.ckpt", "weights/my_model", "a.PTH"])
def test_weights_accepts_presets_and_paths(value):
    assert validate("weights", value) is None


def test_float_parameter_accepts_integer_literal():
    assert validate("overlay_alpha", 1) is None


def test_width_and_height_go_together():
    assert validate_all({"input_width": 640, "input_height": 480}) == {}
    assert validate_all({"input_width": 0, "input_height": 0}) == {}
    reasons = validate_all({"input_width": 640})
    assert "input_height" in reasons and "set together" in reasons["input_height"]
    reasons = validate_all({"input_height": 480})
    assert "input_width" in reasons


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-10, max_value=10_000), st.integers(min_value=-10, max_value=10_000))
def test_input_size_rule_property(width, height):
    reasons = validate_all({"input_width": width, "input_height": height})
    ok_side = lambda v: v == 0 or 32 <= v <= 8192  # noqa: E731
    expected_ok = ok_side(width) and ok_side(height) and (width == 0) == (height == 0)
    assert (reasons == {}) == expected_ok


def test_live_and_configure_time_split():
    live = {spec.name for spec in PARAMETERS if spec.live}
    assert {"publish_labels", "publish_depth", "depth_encoding", "overlay_alpha", "max_input_pixels"} <= live
    for name in ("weights", "backend", "device", "precision", "input_width", "input_qos", "output_qos",
                 "compressed", "use_camera_info", "output_size"):
        assert name not in live, name


def test_change_refusal_when_configured():
    current = params.defaults()
    reason = change_refusal({"precision": "fp16"}, current, configured=True)
    assert reason and "cleanup" in reason and "precision" in reason
    assert change_refusal({"precision": "fp16"}, current, configured=False) is None
    # Setting a configure-time parameter to the value it already has is harmless.
    assert change_refusal({"precision": "fp32"}, current, configured=True) is None
    assert change_refusal({"overlay_alpha": 0.9, "publish_overlay": False}, current, configured=True) is None


def test_change_refusal_reports_invalid_value_and_cross_rule():
    current = params.defaults()
    assert "one of" in change_refusal({"device": "tpu"}, current, configured=False)
    assert "set together" in change_refusal({"input_width": 640}, current, configured=False)
    assert change_refusal({"input_width": 640, "input_height": 480}, current, configured=False) is None
    # A batch with one bad value is refused as a whole.
    assert change_refusal({"overlay_alpha": 0.3, "depth_encoding": "8UC1"}, current, configured=True)


def test_pipeline_kwargs():
    values = {**params.defaults(), "input_width": 640, "input_height": 480, "precision": "fp16", "strict": True}
    kwargs = params.pipeline_kwargs(values)
    assert kwargs == {"weights": "default", "backend": "auto", "device": "auto", "precision": "fp16",
                      "input_size": (640, 480), "output_size": "input", "strict": True, "classes": "all",
                      "engine_options": {}, "max_batch": 1}
    assert params.pipeline_kwargs(params.defaults())["input_size"] == "auto"  # training size, else frame size
    # Several cameras: one network pass takes all of them (what a TensorRT engine is built for).
    assert params.pipeline_kwargs({**values, "cameras": ["front", "left", "right"]})["max_batch"] == 3


@pytest.mark.parametrize("cameras, wrong", [
    ("front", "must be a list of strings"),
    (["front", 3], "must be a list of strings"),
    (["/front"], "relative to the node's namespace (write 'front')"),
    (["front", "front"], "distinct; repeated: front"),
    (["2nd_cam"], "is not a ROS name"),
    (["front//left"], "is not a ROS name"),
    (["a__b"], "is not a ROS name"),
    (["rear-left"], "is not a ROS name"),
    ([f"cam{i}" for i in range(17)], "at most 16"),
])
def test_bad_camera_lists_are_refused_with_the_reason(cameras, wrong):
    assert wrong in params.validate("cameras", cameras)


def test_camera_lists_that_are_fine():
    for cameras in ([], ["front"], ["front_left", "rig/rear", "Cam_2"], [f"cam{i}" for i in range(16)]):
        assert params.validate("cameras", cameras) is None, cameras
    assert params.validate("batch_timeout_ms", 0.0) is None
    assert "in [0.0, 1000.0]" in params.validate("batch_timeout_ms", 1500.0)


def test_changing_cameras_needs_a_new_configure():
    current = {**params.defaults(), "cameras": ["front", "left"]}
    assert change_refusal({"cameras": ["front", "left"]}, current, configured=True) is None  # list or tuple alike
    assert change_refusal({"cameras": ("front", "left")}, current, configured=True) is None
    assert "ros2 lifecycle set" in change_refusal({"cameras": ["front"]}, current, configured=True)


def test_calibration_reaches_only_int8_builds_that_calibrate():
    values = {**params.defaults(), "calibration": "/data/frames"}
    assert params.pipeline_kwargs(values)["engine_options"] == {}  # fp32: nothing to calibrate
    for backend in ("auto", "openvino", "onnxruntime", "tensorrt"):
        kwargs = params.pipeline_kwargs({**values, "precision": "int8", "backend": backend})
        assert kwargs["engine_options"] == {"calibration": "/data/frames"}
    # torch has no int8 and no such option: passing it would be refused, so it is left out.
    assert params.pipeline_kwargs({**values, "precision": "int8", "backend": "torch"})["engine_options"] == {}


def test_live_settings():
    values = {**params.defaults(), "publish_overlay": False, "max_input_pixels": 0, "overlay_alpha": 1}
    live = LiveSettings.from_values(values)
    assert live.publish["overlay"] is False and live.publish["labels"] is True
    assert set(live.publish) == {"labels", "color", "overlay", "depth", "camera_info", "label_info", "fused",
                                 "confidence", "points", "obstacles"}
    assert live.max_input_pixels is None  # 0 = no limit
    assert live.overlay_alpha == 1.0 and isinstance(live.overlay_alpha, float)
    assert LiveSettings.from_values(params.defaults()).max_input_pixels == 3840 * 2160
    cloud = LiveSettings.from_values({**params.defaults(), "points_stride": 4, "points_max_range": 50.0,
                                      "points_organized": True, "points_color": "camera",
                                      "obstacle_classes": "car, building", "min_confidence": 0.3}).cloud
    assert (cloud.stride, cloud.max_range_m, cloud.organized, cloud.color) == (4, 50.0, True, "camera")
    assert cloud.obstacle_classes == "car, building" and cloud.exclude_classes == "default"


@pytest.mark.parametrize("name, value, reason", [
    ("points_stride", 0, "points_stride must be in [1, 64]"),
    ("points_max_range", -1.0, "points_max_range must be in"),
    ("min_confidence", 1.5, "min_confidence must be in [0.0, 1.0]"),
    ("points_color", "rainbow", "points_color must be one of class, camera"),
    ("confidence_encoding", "16UC1", "confidence_encoding must be one of 32FC1, mono8"),
])
def test_3d_and_confidence_parameters_are_checked(name, value, reason):
    assert reason in validate(name, value)


def test_class_lists_are_checked_against_the_weights_classes():
    kitti = params.PRESETS["kitti"].class_names
    assert params.class_refusal(params.defaults(), kitti) is None
    assert params.class_refusal({"obstacle_classes": "car,building, unknown", "points_classes": ""}, kitti) is None
    reason = params.class_refusal({"obstacle_classes": "car,truck", "points_exclude_classes": "skye"}, kitti)
    assert "obstacle_classes: no class 'truck'" in reason and "points_exclude_classes: no class 'skye'" in reason
    assert "sky, building, road" in reason  # the classes there are
    # The class lists are live, so a wrong one is refused with its reason when set, not at the next frame.
    assert SPECS["obstacle_classes"].live


def test_describe_gives_descriptor_fields():
    alpha = params.describe(SPECS["overlay_alpha"])
    assert alpha["floating_point_range"] == (0.0, 1.0) and alpha["integer_range"] is None
    assert "next frame" in alpha["description"]
    width = params.describe(SPECS["input_width"])
    assert width["integer_range"] == (0, 8192) and "configure" in width["description"]
    backend = params.describe(SPECS["backend"])
    assert backend["additional_constraints"] == "one of: auto, torch, cuda-graph, tensorrt, onnxruntime, openvino"
    assert backend["integer_range"] is None and backend["floating_point_range"] is None
    assert all(params.describe(spec)["read_only"] is False for spec in PARAMETERS)


def test_weight_suffixes_match_what_the_loader_reads():
    from hydranet_ros.model import locate

    assert set(params.WEIGHT_SUFFIXES) == {".safetensors", *locate.PUBLISHED_SUFFIXES}


def test_preset_names_match_the_presets():
    from hydranet_ros.presets import PRESETS

    assert params.PRESET_NAMES == tuple(PRESETS)


def test_launch_side_modules_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from hydranet_ros.ros import launch_args; "
            "launch_args.node_overrides(weights='kitti', resolution='640x480'); "
            "print('torch' in sys.modules)")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"


def test_readme_parameter_table_matches_the_table_in_code():
    """README.md's table is generated from PARAMETERS; after changing a parameter run
    `python tools/update_readme_parameters.py`."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("update_readme_parameters", root / "tools" / "update_readme_parameters.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    readme = (root / "README.md").read_text()
    assert readme.count(tool.BEGIN) == 1 and readme.count(tool.END) == 1
    assert tool.with_table(readme) == readme, "run: python tools/update_readme_parameters.py"
    for spec_ in PARAMETERS:
        assert f"| `{spec_.name}` |" in readme
