"""Output decisions of the perception node: what to compute, depth encodings, LabelInfo,
fused-message content, message byte buffers, diagnostics (no ROS needed)."""

from __future__ import annotations

import array
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hydranet_ros.presets import PRESETS
from hydranet_ros.outputs import diagnostics, params
from hydranet_ros.outputs import plan as outputs
from hydranet_ros.outputs.diagnostics import RejectionThrottle, diagnostics_report
from hydranet_ros.outputs.fields import (
    camera_info_for_ros,
    depth_image,
    label_info_content,
    label_info_due,
    overlay_base,
    stage_timings,
    to_msg_bytes,
)
from hydranet_ros.outputs.plan import OUTPUTS, plan_frame
from hydranet_ros.runtime.frame_worker import LatencyStats, WorkerStats

ALL_ON = {name[len("publish_"):]: True for name in params.SPECS if name.startswith("publish_")}
EVERYONE = {name: 1 for name in OUTPUTS}


# -- which outputs ------------------------------------------------------------------------------


def test_topics_are_relative_and_match_the_issue():
    topics = {spec.topic for spec in OUTPUTS.values()}
    assert {"semantic/labels", "semantic/color", "semantic/overlay", "depth/image", "depth/camera_info",
            "semantic/camera_info"} <= topics
    assert all(not topic.startswith("/") for topic in topics)
    assert outputs.LABEL_INFO_TOPIC == "semantic/label_info"
    # every switch an output names is a parameter
    assert all(f"publish_{spec.switch}" in params.SPECS for spec in OUTPUTS.values())


def test_nobody_subscribed_means_no_inference():
    plan = plan_frame(ALL_ON, {}, have_camera_info=True)
    assert not plan.publishes and not plan.run_inference and plan.outputs == frozenset()


def test_everything_when_everyone_listens():
    plan = plan_frame(ALL_ON, EVERYONE, have_camera_info=True)
    assert plan.outputs == frozenset(OUTPUTS)
    assert plan.labels_image and plan.depth_image and plan.color and plan.overlay and plan.camera_info


def test_switch_off_wins_over_subscribers():
    publish = {**ALL_ON, "overlay": False, "camera_info": False}
    plan = plan_frame(publish, EVERYONE, have_camera_info=True)
    assert "overlay" not in plan.outputs
    assert not plan.outputs & {"depth_camera_info", "semantic_camera_info"}


def test_only_depth_subscriber_computes_only_depth():
    plan = plan_frame(ALL_ON, {"depth": 2}, have_camera_info=True)
    assert plan.outputs == {"depth"}
    assert plan.depth_image and not plan.labels_image and not plan.color and not plan.overlay
    assert not plan.camera_info


def test_camera_info_outputs_need_a_camera_info():
    plan = plan_frame(ALL_ON, {"depth_camera_info": 1, "labels": 1}, have_camera_info=False)
    assert plan.outputs == {"labels"}


def test_fused_needs_labels_depth_and_camera_info():
    plan = plan_frame(ALL_ON, {"fused": 1}, have_camera_info=False)
    assert plan.outputs == {"fused"} and plan.labels_image and plan.depth_image and plan.camera_info
    assert not plan.color


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(ALL_ON)), st.booleans()),
       st.dictionaries(st.sampled_from(sorted(OUTPUTS)), st.integers(0, 3)), st.booleans())
def test_plan_property(publish, subscribers, have_info):
    plan = plan_frame(publish, subscribers, have_camera_info=have_info)
    for name in plan.outputs:
        assert publish.get(OUTPUTS[name].switch) and subscribers.get(name, 0) > 0
        if "camera_info" in name:
            assert have_info
    assert plan.publishes == bool(plan.outputs)
    assert plan.run_inference == bool(plan.outputs - {"depth_camera_info", "semantic_camera_info"})


# -- depth ----------------------------------------------------------------------------------


def test_depth_32fc1_keeps_metres_and_nan():
    depth = np.array([[1.5, np.nan], [80.0, 0.25]], dtype=np.float32)
    out = depth_image(depth, "32FC1")
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, depth)


def test_depth_16uc1_millimetres_zero_invalid_far_saturates():
    depth = np.array([[1.5, np.nan, np.inf, -np.inf], [0.0, -2.0, 65.535, 65.536], [0.0004, 0.0006, 1e9, 3.2]],
                     dtype=np.float32)
    out = depth_image(depth, "16UC1")
    assert out.dtype == np.uint16
    # valid far depth (and +Inf, "nothing within range") saturates at 65535, never becomes 0;
    # a positive depth under half a millimetre is 1, not "no estimate"
    expected = [[1500, 0, 65535, 0], [0, 0, 65535, 65535], [1, 1, 65535, 3200]]
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=8),
                  elements=st.floats(-1, 100, width=32) | st.just(float("nan"))))
def test_depth_16uc1_property(depth):
    out = depth_image(depth, "16UC1")
    valid = out > 0
    # Valid pixels are within half a millimetre (or saturated); only no-estimate pixels are 0.
    inside = valid & (out < 65535) & (depth >= 0.0005)
    error_m = np.abs(out[inside] / 1000.0 - depth[inside].astype(np.float64))
    assert np.all(error_m <= 0.0005 + 1e-5)
    assert np.array_equal(valid, depth > 0)


def test_depth_bad_input():
    with pytest.raises(ValueError, match="HxW"):
        depth_image(np.zeros((2, 2, 1), np.float32), "32FC1")
    with pytest.raises(ValueError, match="32FC1 or 16UC1"):
        depth_image(np.zeros((2, 2), np.float32), "8UC1")


# -- overlay base -----------------------------------------------------------------------------


def test_overlay_base_swaps_bgr_and_keeps_size():
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[..., 0] = 10  # blue in bgr
    frame[..., 2] = 200  # red in bgr
    rgb = overlay_base(frame, "bgr", (6, 4))
    assert rgb.shape == (4, 6, 3) and rgb.flags.c_contiguous
    assert (rgb[..., 0] == 200).all() and (rgb[..., 2] == 10).all()
    assert overlay_base(frame, "rgb", (6, 4)) is not None
    np.testing.assert_array_equal(overlay_base(frame, "rgb", (6, 4)), frame)


def test_overlay_base_resizes_to_output_size():
    frame = np.full((48, 64, 3), 77, np.uint8)
    small = overlay_base(frame, "rgb", (16, 12))
    assert small.shape == (12, 16, 3) and (small == 77).all()
    big = overlay_base(frame, "bgr", (128, 96))
    assert big.shape == (96, 128, 3) and (big == 77).all()


def test_overlay_base_bad_input():
    with pytest.raises(ValueError):
        overlay_base(np.zeros((4, 4), np.uint8), "rgb", (4, 4))
    with pytest.raises(ValueError):
        overlay_base(np.zeros((4, 4, 3), np.uint8), "yuv", (4, 4))


# -- message buffers -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.uint16])
def test_to_msg_bytes_is_exact_array_of_bytes(dtype):
    pixels = (np.arange(5 * 7 * 3) % 251).astype(dtype).reshape(5, 7, 3)
    data = to_msg_bytes(pixels)
    assert isinstance(data, array.array) and data.typecode == "B"
    assert data.tobytes() == pixels.tobytes()


def test_to_msg_bytes_handles_non_contiguous_views():
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)[:, ::2]
    assert to_msg_bytes(pixels).tobytes() == np.ascontiguousarray(pixels).tobytes()


def test_to_msg_bytes_is_fast_for_1080p():
    import time

    frame = np.zeros((1080, 1920, 3), np.uint8)
    started = time.perf_counter()
    for _ in range(5):
        to_msg_bytes(frame)
    per_call_ms = (time.perf_counter() - started) / 5 * 1000
    assert per_call_ms < 50, f"{per_call_ms:.1f} ms per 1080p frame: not a single memcpy"


def test_camera_info_for_ros_types():
    fields = {
        "height": np.int64(92), "width": np.uint32(306), "distortion_model": "plumb_bob",
        "d": np.array([0.1, -0.2, 0.0, 0.0, 0.01]), "k": np.arange(9.0), "r": np.eye(3), "p": np.arange(12.0),
        "binning_x": 0, "binning_y": 0,
        "roi": {"x_offset": np.int32(0), "y_offset": 0, "height": 0, "width": 0, "do_rectify": np.bool_(False)},
    }
    out = camera_info_for_ros(fields)
    assert type(out["height"]) is int and type(out["width"]) is int and out["width"] == 306
    for name, size in (("k", 9), ("r", 9), ("p", 12)):
        assert out[name].dtype == np.float64 and out[name].shape == (size,)
    assert isinstance(out["d"], array.array) and out["d"].typecode == "d" and list(out["d"])[:2] == [0.1, -0.2]
    assert type(out["roi"]["x_offset"]) is int and type(out["roi"]["do_rectify"]) is bool
    with pytest.raises(ValueError, match="CameraInfo.k"):
        camera_info_for_ros({**fields, "k": np.zeros(8)})


# -- LabelInfo and fused -------------------------------------------------------------------------


def test_label_info_content_for_kitti():
    content = label_info_content(PRESETS["kitti"].class_names)
    assert content["class_map"][0] == (0, "sky")
    assert [cid for cid, _ in content["class_map"]] == list(range(6))
    assert content["threshold"] == 0.0


def test_label_info_limits():
    with pytest.raises(ValueError):
        label_info_content(["a"], threshold=1.5)
    with pytest.raises(ValueError, match="uint16"):
        label_info_content(["x"] * 70000)


def test_label_info_due_on_first_frame_frame_change_and_threshold_change():
    assert label_info_due(None, "camera")
    assert not label_info_due(("camera", 0.0), "camera")
    assert label_info_due(("camera", 0.0), "camera_left")
    assert label_info_due(("camera", 0.0), "camera", 0.4)  # the threshold it announces changed
    assert not label_info_due(("camera", 0.4), "camera", 0.4)


def test_stage_timings_fill_missing_with_nan():
    fields = stage_timings({"preprocess": 1.0, "inference": 5.5, "total": 7.0})
    assert fields["preprocess_ms"] == 1.0 and fields["inference_ms"] == 5.5 and fields["total_ms"] == 7.0
    assert math.isnan(fields["postprocess_ms"])
    assert set(fields) == {"preprocess_ms", "inference_ms", "postprocess_ms", "total_ms"}


# -- diagnostics -----------------------------------------------------------------------------

INFO = {"backend": "torch", "precision": "fp32", "device": "cpu", "weights": "default"}


def stats(**kwargs) -> WorkerStats:
    return WorkerStats(**kwargs)


def values_of(report) -> dict[str, str]:
    return dict(report.values)


def test_diagnostics_ok_with_rates_and_engine_facts():
    before = stats(received=10, processed=8, dropped=2)
    now = stats(received=40, processed=28, dropped=12, latency=LatencyStats(count=5, mean_ms=20, p95_ms=30, max_ms=31))
    report = diagnostics_report(state="active", current=now, previous=before, period_s=2.0, info=INFO,
                                timings_ms={"inference": 12.5}, counters={"skipped_no_subscribers": 3})
    assert report.level == diagnostics.OK
    values = values_of(report)
    assert values["input_rate_hz"] == "15.00" and values["output_rate_hz"] == "10.00"
    assert values["frames_dropped"] == "12" and values["backend"] == "torch" and values["device"] == "cpu"
    assert "requested_backend" not in values  # only what the pipeline's info holds
    assert values["precision"] == "fp32" and values["latency_p95_ms"] == "30.00"
    assert values["inference_ms"] == "12.50" and values["skipped_no_subscribers"] == "3"
    assert "10.0 Hz out" in report.message and "10 dropped" in report.message
    chosen = {**INFO, "backend": "openvino", "precision": "int8", "requested_backend": "auto",
              "int8_gate": "labels equal to fp32 on 99.10 % of pixels"}
    values = values_of(diagnostics_report(state="active", current=now, previous=before, period_s=2.0, info=chosen))
    assert (values["backend"], values["requested_backend"]) == ("openvino", "auto")
    assert values["int8_gate"].startswith("labels equal to fp32")


def test_diagnostics_warns_on_rejections_with_reasons():
    before = stats(received=5, processed=5)
    now = stats(received=9, processed=6, rejected={"bad_step": 2, "unknown_encoding": 1})
    report = diagnostics_report(state="active", current=now, previous=before, period_s=1.0, info=INFO)
    assert report.level == diagnostics.WARN
    assert "bad_step x2" in report.message and "unknown_encoding x1" in report.message
    values = values_of(report)
    assert values["rejected.bad_step"] == "2" and values["frames_rejected"] == "3"


def test_diagnostics_old_rejections_do_not_warn_forever():
    before = stats(received=9, processed=6, rejected={"bad_step": 3})
    now = stats(received=19, processed=16, rejected={"bad_step": 3})
    report = diagnostics_report(state="active", current=now, previous=before, period_s=1.0, info=INFO)
    assert report.level == diagnostics.OK and values_of(report)["rejected.bad_step"] == "3"


def test_diagnostics_error_on_processing_errors():
    now = stats(received=3, processed=1, errors=2, last_error="RuntimeError: CUDA out of memory")
    report = diagnostics_report(state="active", current=now, previous=None, period_s=1.0, info=INFO)
    assert report.level == diagnostics.ERROR and "CUDA out of memory" in report.message


def test_diagnostics_warns_when_nothing_gets_processed():
    now = stats(received=30, processed=0, dropped=29)
    report = diagnostics_report(state="active", current=now, previous=None, period_s=1.0, info=INFO)
    assert report.level == diagnostics.WARN and "none was processed" in report.message


def test_diagnostics_configure_failure_is_error_and_unconfigured_is_ok():
    report = diagnostics_report(state="unconfigured", current=None, previous=None, period_s=1.0, info={},
                                problem="weights file /x.safetensors not found")
    assert report.level == diagnostics.ERROR and "not found" in report.message
    idle = diagnostics_report(state="unconfigured", current=None, previous=None, period_s=1.0, info={})
    assert idle.level == diagnostics.OK and values_of(idle)["state"] == "unconfigured"


def test_rejection_throttle_per_reason():
    throttle = RejectionThrottle(interval_s=5.0)
    assert throttle.check("bad_step", 0.0) == (True, 0)
    assert throttle.check("bad_step", 1.0) == (False, 0)
    assert throttle.check("bad_step", 2.0) == (False, 0)
    # A different problem is not hidden by the first one.
    assert throttle.check("unknown_encoding", 2.5) == (True, 0)
    # After the interval the warning comes back with the number suppressed meanwhile.
    assert throttle.check("bad_step", 5.0) == (True, 2)
    assert throttle.check("bad_step", 6.0) == (False, 0)
    with pytest.raises(ValueError):
        RejectionThrottle(interval_s=-1)


@pytest.mark.parametrize("subscribed, expected", [
    ({"depth": 1}, {"depth"}),
    ({"labels": 1}, {"labels"}),
    ({"color": 1}, {"labels"}),
    ({"overlay": 1}, {"labels"}),
    ({"fused": 1}, {"labels", "depth", "confidence"}),  # it carries the confidence image (publish_confidence)
    ({"confidence": 1}, {"confidence"}),  # the softmax without the argmax's uint8 labels
    ({"points": 1}, {"labels", "depth", "confidence"}),
    ({"obstacles": 1}, {"labels", "depth", "confidence"}),
    ({"depth_camera_info": 1}, set()),  # CameraInfo alone needs no network output
    ({}, set()),
])
def test_network_outputs_skip_unwanted_heads(subscribed, expected):
    plan = plan_frame(ALL_ON, subscribed, have_camera_info=True)
    assert plan.network_outputs == expected
    assert plan.run_inference == bool(expected)


def test_depth_png_is_kitti_metres_x256_and_never_turns_far_depth_into_none():
    from hydranet_ros.io.media import depth_to_png

    depth = np.array([[1.0, 80.0, 255.99, 300.0, np.inf, np.nan, 0.0, -1.0]], np.float32)
    np.testing.assert_array_equal(depth_to_png(depth), [[256, 20480, 65533, 65535, 65535, 0, 0, 0]])


def test_confidence_costs_nothing_unless_asked_for_or_thresholded():
    labels_only = {"labels": 1, "color": 1, "overlay": 1, "depth": 1}
    assert "confidence" not in plan_frame(ALL_ON, labels_only, have_camera_info=True).network_outputs
    # A threshold needs the confidence wherever labels are made...
    plan = plan_frame(ALL_ON, labels_only, have_camera_info=True, min_confidence=0.5)
    assert "confidence" in plan.network_outputs and plan.min_confidence == 0.5
    # ...but not for depth alone.
    assert plan_frame(ALL_ON, {"depth": 1}, have_camera_info=True, min_confidence=0.5).network_outputs == {"depth"}
    # The fused message without publish_confidence carries no confidence, so needs none.
    assert "confidence" not in plan_frame({**ALL_ON, "confidence": False}, {"fused": 1},
                                          have_camera_info=True).network_outputs


def test_clouds_need_camera_info_and_the_plan_says_which_it_left_out():
    plan = plan_frame(ALL_ON, {"points": 1, "obstacles": 1, "labels": 1}, have_camera_info=False)
    assert plan.outputs == {"labels"} and plan.without_camera_info == {"points", "obstacles"}
    assert plan.network_outputs == {"labels"}
    plan = plan_frame(ALL_ON, {"points": 1}, have_camera_info=False)
    assert not plan.publishes and plan.without_camera_info == {"points"}
    plan = plan_frame(ALL_ON, {"points": 1}, have_camera_info=True)
    assert plan.outputs == {"points"} and plan.camera_info and plan.cloud and not plan.without_camera_info
