"""perception.launch.py's argument handling, as plain functions (no ROS, no launch)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydranet_ros.outputs import params
from hydranet_ros.ros.launch_args import (
    LAUNCH_ARGUMENTS,
    input_topics,
    node_overrides,
    parse_bool,
    parse_resolution,
    remappings,
)


def test_every_argument_the_issue_asks_for_is_declared_and_described():
    names = [a.name for a in LAUNCH_ARGUMENTS]
    assert len(names) == len(set(names))
    assert {"camera", "image_topic", "camera_info_topic", "compressed", "resolution", "precision", "backend",
            "device", "weights", "config", "use_sim_time", "rviz", "namespace", "log_level"} <= set(names)
    for argument in LAUNCH_ARGUMENTS:
        assert len(argument.description) > 20, argument.name
        if argument.choices is not None and argument.default is not None:
            assert argument.default in argument.choices, argument.name


def test_choices_follow_the_parameter_table():
    by_name = {a.name: a for a in LAUNCH_ARGUMENTS}
    for name in ("precision", "backend", "device"):
        assert set(by_name[name].choices) == {"", *params.SPECS[name].choices}


@pytest.mark.parametrize("text, expected", [
    ("640x480", (640, 480)), (" 1280 X 720 ", (1280, 720)), ("0x0", (0, 0)), ("", None), ("  ", None),
])
def test_parse_resolution(text, expected):
    assert parse_resolution(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("640", "look like 640x480"), ("640x", "look like"), ("-640x480", "look like"), ("640x480x3", "look like"),
    ("640*480", "look like"), ("640x0", "set together"), ("16x16", "at least 32"), ("9000x480", "[0, 8192]"),
])
def test_parse_resolution_refuses_with_reason(text, fragment):
    with pytest.raises(ValueError, match="resolution") as info:
        parse_resolution(text)
    assert fragment in str(info.value)


@settings(max_examples=60, deadline=None)
@given(st.integers(32, 8192), st.integers(32, 8192))
def test_parse_resolution_round_trip(width, height):
    assert parse_resolution(f"{width}x{height}") == (width, height)


def test_parse_bool():
    assert parse_bool("true") and parse_bool("True") and parse_bool("1") and parse_bool(" yes ")
    assert not parse_bool("false") and not parse_bool("0") and not parse_bool("Off")
    with pytest.raises(ValueError, match="rviz must be true or false"):
        parse_bool("maybe", name="rviz")


def test_input_topics_relative_to_camera_or_absolute():
    assert input_topics("camera", "image_raw", "camera_info") == ("/camera/image_raw", "/camera/camera_info")
    assert input_topics("/front/cam/", "image_rect", "info") == ("/front/cam/image_rect", "/front/cam/info")
    assert input_topics("", "image_raw", "camera_info") == ("/image_raw", "/camera_info")
    assert input_topics("camera", "/other/image", "/other/info") == ("/other/image", "/other/info")
    with pytest.raises(ValueError, match="image_topic"):
        input_topics("camera", "", "camera_info")


def test_remappings_cover_raw_compressed_and_camera_info():
    assert remappings("camera", "image_raw", "camera_info") == [
        ("image", "/camera/image_raw"),
        ("image/compressed", "/camera/image_raw/compressed"),
        ("camera_info", "/camera/camera_info"),
    ]


def test_overrides_only_what_was_given():
    assert node_overrides() == {"use_sim_time": False}  # compressed: the config file's value stands
    assert node_overrides(compressed="false")["compressed"] is False
    overrides = node_overrides(resolution="640x480", precision="fp16", backend="tensorrt", device="cuda",
                               weights="/models/hydra.safetensors", compressed="true", use_sim_time="true")
    assert overrides == {
        "compressed": True, "use_sim_time": True, "input_width": 640, "input_height": 480,
        "precision": "fp16", "backend": "tensorrt", "device": "cuda", "weights": "/models/hydra.safetensors",
    }
    # Every override is a value the node accepts.
    assert params.validate_all({k: v for k, v in overrides.items() if k in params.SPECS}) == {}


@pytest.mark.parametrize("kwargs, fragment", [
    ({"precision": "fp64"}, "launch argument precision"),
    ({"device": "gpu"}, "launch argument device"),
    ({"weights": "kiti"}, "launch argument weights"),
    ({"use_sim_time": "sometimes"}, "use_sim_time must be"),
    ({"resolution": "big"}, "resolution"),
])
def test_overrides_refuse_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        node_overrides(**kwargs)
    assert fragment in str(info.value)


# -- multi_camera.launch.py ---------------------------------------------------------------------------

from hydranet_ros.ros.launch_args import (  # noqa: E402
    CAMERA_RIGS, MULTI_CAMERA_ARGUMENTS, camera_remappings, multi_camera_overrides, parse_cameras,
)


def test_a_preset_rig_for_every_size_from_2_to_8():
    assert sorted(CAMERA_RIGS) == list(range(2, 9))
    for size, names in CAMERA_RIGS.items():
        assert len(names) == size and params.validate("cameras", list(names)) is None, size
        assert parse_cameras(str(size)) == list(names)


@pytest.mark.parametrize("text, names", [
    ("front,rear", ["front", "rear"]), (" front , left  right ", ["front", "left", "right"]),
    ("[front, rear]", ["front", "rear"]), ("rig/front_left", ["rig/front_left"]), ("front", ["front"]),
])
def test_parse_cameras_takes_names(text, names):
    assert parse_cameras(text) == names


@pytest.mark.parametrize("text, fragment", [
    ("1", "2 to 8"), ("9", "2 to 8"), ("", "at least one"), ("front,front", "distinct"), ("/front", "relative"),
    ("2cam", "not a ROS name"),
])
def test_parse_cameras_refuses_with_reason(text, fragment):
    with pytest.raises(ValueError, match="cameras") as info:
        parse_cameras(text)
    assert fragment in str(info.value)


def test_each_cameras_inputs_are_remapped_to_its_driver():
    remaps = dict(camera_remappings(["front", "rear"], "/sensors", "image_rect", "camera_info"))
    assert remaps == {
        "front/image": "/sensors/front/image_rect", "front/image/compressed": "/sensors/front/image_rect/compressed",
        "front/camera_info": "/sensors/front/camera_info",
        "rear/image": "/sensors/rear/image_rect", "rear/image/compressed": "/sensors/rear/image_rect/compressed",
        "rear/camera_info": "/sensors/rear/camera_info",
    }
    assert dict(camera_remappings(["front"], "/", "image_raw", "camera_info"))["front/image"] == "/front/image_raw"
    with pytest.raises(ValueError, match="absolute: every camera would read the same topic"):
        camera_remappings(["front", "rear"], "/", "image_raw", "/calibration")
    with pytest.raises(ValueError, match="camera_root must be absolute"):
        camera_remappings(["front"], "sensors", "image_raw", "camera_info")


def test_multi_camera_overrides():
    overrides = multi_camera_overrides(cameras="2", batch_timeout_ms="35", resolution="640x480", precision="fp16")
    assert overrides["cameras"] == ["front", "rear"] and overrides["batch_timeout_ms"] == 35.0
    assert (overrides["input_width"], overrides["input_height"], overrides["precision"]) == (640, 480, "fp16")
    assert "batch_timeout_ms" not in multi_camera_overrides(cameras="2")  # the config's
    with pytest.raises(ValueError, match="batch_timeout_ms must be in"):
        multi_camera_overrides(cameras="2", batch_timeout_ms="-1")


def test_multi_camera_arguments_are_described_and_single_camera_ones_left_out():
    names = [a.name for a in MULTI_CAMERA_ARGUMENTS]
    assert len(names) == len(set(names))
    assert {"cameras", "camera_root", "batch_timeout_ms", "image_topic", "resolution", "namespace", "config"} <= set(names)
    assert "camera" not in names and "rviz" not in names
    for argument in MULTI_CAMERA_ARGUMENTS:
        assert len(argument.description) > 20, argument.name
