"""CameraInfo scaled to the published resolution: checked by projecting points, not by formula."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydranet_ros.io.camera_info import (
    CameraInfoRejected,
    camera_info_matches,
    camera_info_size,
    scale_camera_info,
)


@dataclass
class Roi:
    x_offset: int = 0
    y_offset: int = 0
    height: int = 0
    width: int = 0
    do_rectify: bool = False


@dataclass
class CameraInfo:
    width: int
    height: int
    k: Any
    p: Any
    d: Any = field(default_factory=lambda: [0.1, -0.05, 0.001, 0.002, 0.0])
    r: Any = field(default_factory=lambda: [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])
    distortion_model: str = "plumb_bob"
    binning_x: int = 0
    binning_y: int = 0
    roi: Roi = field(default_factory=Roi)


def make_info(width, height, fx, fy, cx, cy, tx=0.0, ty=0.0, **extra) -> CameraInfo:
    k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    p = [fx, 0.0, cx, tx, 0.0, fy, cy, ty, 0.0, 0.0, 1.0, 0.0]
    return CameraInfo(width, height, k, p, **extra)


def project(k, point):
    """Pixel coordinates of a camera-frame point through a 3x3 K (row-major list)."""
    u, v, w = np.asarray(k, float).reshape(3, 3) @ point
    return u / w, v / w


def resized_pixel(u, scale):
    """Where a resize by ``scale`` (pixel edges to edges, as cv2.resize does) puts pixel coordinate u."""
    return (u + 0.5) * scale - 0.5


sizes = st.integers(8, 4000)
focal = st.floats(50, 5000)
fraction = st.floats(0.05, 0.95)


@settings(max_examples=100, deadline=None)
@given(sizes, sizes, focal, focal, fraction, fraction, sizes, sizes,
       st.floats(-3, 3), st.floats(-3, 3), st.floats(1, 50))
def test_scaled_k_projects_points_where_the_resize_puts_them(width, height, fx, fy, fcx, fcy, out_w, out_h, x, y, z):
    info = make_info(width, height, fx, fy, fcx * width, fcy * height, tx=-fx * 0.12)
    scaled = scale_camera_info(info, out_w, out_h)
    point = np.array([x, y, z])
    u, v = project(info.k, point)
    u_out, v_out = project(scaled["k"], point)
    assert math.isclose(u_out, resized_pixel(u, out_w / width), rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(v_out, resized_pixel(v, out_h / height), rel_tol=1e-9, abs_tol=1e-6)
    p = scaled["p"].reshape(3, 4)
    np.testing.assert_allclose(p[:, :3], scaled["k"].reshape(3, 3), rtol=1e-12, atol=1e-9)
    # The stereo baseline (-Tx / fx) is a length in metres and must not change.
    assert math.isclose(-p[0, 3] / p[0, 0], 0.12, rel_tol=1e-9)
    assert (scaled["width"], scaled["height"]) == (out_w, out_h)
    as_message = SimpleNamespace(**{**scaled, "roi": Roi(**scaled["roi"])})
    assert camera_info_matches(as_message, out_w, out_h)


@settings(max_examples=60, deadline=None)
@given(sizes, sizes, focal, focal, fraction, fraction, sizes, sizes)
def test_scaling_there_and_back_gives_the_original(width, height, fx, fy, fcx, fcy, out_w, out_h):
    info = make_info(width, height, fx, fy, fcx * width, fcy * height, tx=-fx * 0.3, ty=2.0)
    there = scale_camera_info(info, out_w, out_h)
    back = scale_camera_info(CameraInfo(out_w, out_h, there["k"], there["p"]), width, height)
    np.testing.assert_allclose(back["k"], info.k, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(back["p"], info.p, rtol=1e-9, atol=1e-6)


def test_quarter_resolution_example_by_hand():
    info = make_info(1240, 376, 718.856, 718.856, 607.1928, 185.2157, tx=-386.1448)
    scaled = scale_camera_info(info, 310, 94)
    k = scaled["k"]
    assert k[0] == pytest.approx(179.714) and k[4] == pytest.approx(179.714)
    assert k[2] == pytest.approx((607.1928 + 0.5) / 4 - 0.5) and k[5] == pytest.approx((185.2157 + 0.5) / 4 - 0.5)
    assert scaled["p"][3] == pytest.approx(-96.5362)
    assert k[8] == 1.0 and scaled["p"][10] == 1.0


def test_distortion_rotation_and_model_are_copied_and_binning_roi_reset():
    info = make_info(640, 480, 500, 500, 320, 240, distortion_model="rational_polynomial",
                     d=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], r=[0.0, -1, 0, 1, 0, 0, 0, 0, 1])
    scaled = scale_camera_info(info, 320, 240)
    assert scaled["distortion_model"] == "rational_polynomial"
    np.testing.assert_array_equal(scaled["d"], info.d)
    np.testing.assert_array_equal(scaled["r"], info.r)
    assert scaled["binning_x"] == scaled["binning_y"] == 0
    assert scaled["roi"] == {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False}
    assert all(scaled[name].dtype == np.float64 for name in ("d", "k", "r", "p"))


def test_binning_and_roi_of_the_input_are_folded_into_k():
    # A 1280x960 sensor, ROI 800x600 at (200, 100), binned 2x2: the image is 400x300.
    info = make_info(1280, 960, 1000, 1000, 640, 480, binning_x=2, binning_y=2,
                     roi=Roi(x_offset=200, y_offset=100, width=800, height=600))
    assert camera_info_size(info) == (400, 300)
    assert camera_info_matches(info, 400, 300) and not camera_info_matches(info, 1280, 960)
    scaled = scale_camera_info(info, 100, 75)
    point = np.array([0.3, -0.2, 4.0])
    u_sensor, v_sensor = project(info.k, point)
    # The sensor pixel in the binned ROI image, then that image resized by 1/4.
    u_image = resized_pixel(u_sensor - 200, 1 / 2)
    v_image = resized_pixel(v_sensor - 100, 1 / 2)
    u_out, v_out = project(scaled["k"], point)
    assert u_out == pytest.approx(resized_pixel(u_image, 100 / 400))
    assert v_out == pytest.approx(resized_pixel(v_image, 75 / 300))


def test_rosbags_camera_info_serialises():
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types = store.types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam")
    info = make_info(640, 480, 500, 500, 320, 240)
    fields = scale_camera_info(info, 160, 120)
    roi = types["sensor_msgs/msg/RegionOfInterest"](**fields.pop("roi"))
    message = types["sensor_msgs/msg/CameraInfo"](header=header, roi=roi, **fields)
    back = store.deserialize_cdr(store.serialize_cdr(message, message.__msgtype__), message.__msgtype__)
    assert (back.width, back.height) == (160, 120)
    np.testing.assert_array_equal(back.k, message.k)
    np.testing.assert_array_equal(back.d, info.d)


def reason_for(info, width=320, height=240) -> str:
    with pytest.raises(CameraInfoRejected) as caught:
        scale_camera_info(info, width, height)
    assert str(caught.value)
    return caught.value.reason


def test_each_rejection_names_its_reason():
    assert reason_for(make_info(0, 480, 500, 500, 320, 240)) == "zero_size"
    assert reason_for(make_info(640, 0, 500, 500, 320, 240)) == "zero_size"
    assert reason_for(CameraInfo(640, 480, [0.0] * 9, [0.0] * 12)) == "bad_intrinsics"  # uncalibrated
    assert reason_for(make_info(640, 480, -500, 500, 320, 240)) == "bad_intrinsics"
    assert reason_for(make_info(640, 480, float("nan"), 500, 320, 240)) == "nonfinite"
    assert reason_for(make_info(640, 480, 500, 500, float("inf"), 240)) == "nonfinite"
    assert reason_for(make_info(640, 480, 500, 500, 320, 240, tx=float("nan"))) == "nonfinite"
    assert reason_for(make_info(640, 480, 500, 500, 320, 240, d=[0.1, float("inf")])) == "nonfinite"
    assert reason_for(CameraInfo(640, 480, [500.0] * 8, [0.0] * 12)) == "bad_matrix"
    assert reason_for(CameraInfo(640, 480, ["a"] * 9, [0.0] * 12)) == "bad_matrix"
    assert reason_for(make_info(640, 480, 500, 500, 320, 240), 0, 240) == "bad_target_size"
    assert reason_for(make_info(640, 480, 500, 500, 320, 240, roi=Roi(x_offset=600, width=100, height=100))) == "bad_roi"
