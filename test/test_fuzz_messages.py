"""Adversarial camera messages through the node's own frame path: published or rejected by name.

Three layers:
- hypothesis over the plain path (hydranet_ros.runtime.intake and outputs.render, which perception_node calls), with a
  small real pipeline: every message ends published (with consistent fields) or as a counted
  rejection with a reason; well-formed frames are always published;
- hand-written cases for each fault the issue lists, with the reason each must get;
- a few hypothesis examples through PerceptionNode itself (rclpy stand-in), counting what its
  publishers sent against what its worker counted.
The long run is tools/fuzz_node.py (10,000 messages).
"""

from __future__ import annotations

import array
import math
import threading
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rclpy_standin as ros
from adversarial_messages import (
    Case, HypothesisDraw, NodePathRig, RngDraw, any_case, camera_info_case, compressed_case, header, image_case,
)
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset
from hydranet_ros.io.ros_image import message_to_frame
from hydranet_ros.runtime import intake
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from test_node_standin import make_node, publishers, subscribe_all, subscription, weights  # noqa: F401

FUZZ = settings(deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    torch.manual_seed(0)
    preset = get_preset("kitti")
    return Pipeline.from_model(HydraNet(preset).eval(), preset, PipelineConfig(input_size=(64, 48), device="cpu"))


@pytest.fixture(scope="module")
def rig(pipeline):
    rig = NodePathRig(pipeline)
    yield rig
    rig.close()


def assert_named_end(case: Case, outcome) -> None:
    assert outcome.label == "published" or outcome.label.startswith("rejected."), (
        f"{case.kind} {case.mutations}: {outcome.label} {outcome.detail}")
    if case.pristine:
        assert outcome.label == "published", f"a well-formed {case.kind} was refused: {outcome.detail}"


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_fuzzed_images_end_published_or_rejected_by_name(rig, data):
    case = image_case(HypothesisDraw(data))
    assert_named_end(case, rig.push(case))


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_fuzzed_compressed_images_end_published_or_rejected_by_name(rig, data):
    case = compressed_case(HypothesisDraw(data))
    assert_named_end(case, rig.push(case))


# -- each listed fault, by hand, with the reason it must get ----------------------------------------

W, H = 40, 30


def image(encoding="rgb8", *, width=W, height=H, bpp=3, step=None, data=None, is_bigendian=0):
    step = (width * bpp if isinstance(width, int) else W * bpp) if step is None else step
    if data is None:  # a full frame's bytes; for an absurd width or height, those of a W x H frame
        size = step * height if isinstance(width, int) and 0 < width <= W + 1 else W * bpp * H
        data = np.random.default_rng(size).integers(0, 255, size, dtype=np.uint8).tobytes()
    return SimpleNamespace(header=header(1), height=height, width=width, encoding=encoding,
                           is_bigendian=is_bigendian, step=step, data=array.array("B", data))


def jpeg(width=W, height=H) -> bytes:
    pixels = np.random.default_rng(3).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", pixels)[1].tobytes()


def png(width=W, height=H) -> bytes:
    pixels = np.random.default_rng(4).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".png", pixels)[1].tobytes()


def forged_png_chunk_length(kind: bytes, length: int) -> bytes:
    """A small valid PNG whose ``kind`` chunk's length field is then forged."""
    data = bytearray(cv2.imencode(".png", np.full((4, 4, 3), 90, np.uint8))[1].tobytes())
    position = data.index(kind) - 4
    data[position : position + 4] = length.to_bytes(4, "big")
    return bytes(data)


def compressed(data: bytes, fmt="jpeg"):
    return SimpleNamespace(header=header(2), format=fmt, data=array.array("B", data))


def float_image(encoding="32FC1"):
    values = np.linspace(0, 5, W * H, dtype=np.float32)
    values[::3], values[1::7], values[2::11] = np.nan, np.inf, -np.inf
    return image(encoding, bpp=4, data=values.tobytes())


FAULTS = {
    "step shorter than a row": (image(step=W * 3 - 1), "rejected.bad_step"),
    "step longer, data not": (image(step=W * 3 + 4, data=bytes(W * 3 * H)), "rejected.size_mismatch"),
    "data shorter than declared": (image(data=bytes(W * 3 * H - 1)), "rejected.size_mismatch"),
    "data longer than declared": (image(data=bytes(W * 3 * H + 100)), "published"),
    "no data": (image(data=b""), "rejected.empty"),
    "zero width": (image(width=0), "rejected.empty"),
    "zero height": (image(height=0, data=bytes(10)), "rejected.empty"),
    "huge width and height": (image(width=2**32 - 1, height=2**32 - 1, step=3, data=bytes(3)), "rejected.too_large"),
    "huge height, pixels under limit": (image(width=1, height=2**20, step=3, data=bytes(30)), "rejected.size_mismatch"),
    "negative width": (image(width=-4), "rejected.bad_size"),
    "width infinity": (image(width=math.inf), "rejected.bad_size"),
    "width 3.5": (image(width=3.5), "rejected.bad_size"),
    "unknown encoding": (image("xyz123"), "rejected.unknown_encoding"),
    "misspelled encoding": (image("rgb 8"), "rejected.unknown_encoding"),
    "encoding upper case": (image("RGB8"), "published"),
    "encoding not a string": (image(None), "rejected.unknown_encoding"),
    "odd width in yuv422": (image("yuv422", width=W + 1, bpp=2), "rejected.odd_width"),
    "big-endian flag on rgb8": (image(is_bigendian=1), "published"),
    "big-endian flag 255 on mono8": (image("mono8", bpp=1, is_bigendian=255), "published"),
    "NaN/Inf float image": (float_image(), "rejected.unsupported_encoding"),
    "data is a str": (SimpleNamespace(**{**image().__dict__, "data": "abc"}), "rejected.bad_data"),
    "data list out of range": (SimpleNamespace(**{**image().__dict__, "data": [300] * (W * 3 * H)}), "rejected.bad_data"),
}
COMPRESSED_FAULTS = {
    "good jpeg": (compressed(jpeg()), "published"),
    "good png": (compressed(png(), "png"), "published"),
    "jpeg cut in half": (compressed(jpeg()[: len(jpeg()) // 2]), "rejected.bad_compressed"),
    "jpeg without end marker": (compressed(jpeg()[:-2]), "rejected.bad_compressed"),
    "png cut in half": (compressed(png()[: len(png()) // 2], "png"), "rejected.bad_compressed"),
    "garbage": (compressed(bytes(range(256)) * 4), "rejected.bad_compressed"),
    "png header claims 0 pixels": (compressed(png()[:16] + bytes(8) + png()[24:], "png"), "rejected.bad_compressed"),
    "png header claims 65535x65535": (compressed(png()[:16] + (65535).to_bytes(4, "big") * 2 + png()[24:], "png"),
                                      "rejected.too_large"),
    "compressedDepth": (compressed(png(), "16UC1; compressedDepth png"), "rejected.unsupported_format"),
    "empty": (compressed(b""), "rejected.empty"),
    # issue 12: OpenCV 5.0 spent 15 s and 4 GiB on this before refusing it
    "png IDAT length 0xFFFFFFFF": (compressed(forged_png_chunk_length(b"IDAT", 0xFFFFFFFF), "png"),
                                   "rejected.bad_compressed"),
    "jpeg cut short, end marker put back": (compressed(jpeg(320, 240)[:2000] + b"\xff\xd9"), "rejected.bad_compressed"),
    "jpeg with random bytes after its end": (compressed(jpeg() + bytes(range(1, 256)) * 20), "published"),
    "png with random bytes after its end": (compressed(png() + bytes(range(1, 256)), "png"), "published"),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_each_listed_image_fault_gets_its_reason(rig, name):
    msg, expected = FAULTS[name]
    outcome = rig.push(Case("image", msg, None, [name]))
    assert outcome.label == expected, outcome.detail


@pytest.mark.parametrize("name", sorted(COMPRESSED_FAULTS))
def test_each_listed_compressed_fault_gets_its_reason(rig, name):
    msg, expected = COMPRESSED_FAULTS[name]
    outcome = rig.push(Case("compressed", msg, None, [name]))
    assert outcome.label == expected, outcome.detail


def test_a_forged_png_chunk_length_never_reaches_the_decoder(rig, monkeypatch):
    """The refusal must come from the container check: OpenCV 5.0 allocates the claimed 4 GiB."""
    def reached(*_args, **_kwargs):
        raise AssertionError("cv2.imdecode was given a PNG whose chunk length runs past its bytes")

    monkeypatch.setattr(cv2, "imdecode", reached)
    for kind in (b"IHDR", b"IDAT", b"IEND"):
        outcome = rig.push(Case("compressed", compressed(forged_png_chunk_length(kind, 0xFFFFFFFF), "png"), None, ["forged"]))
        assert outcome.label == "rejected.bad_compressed", (kind, outcome.detail)


def test_big_endian_flag_on_8_bit_data_changes_nothing():
    plain, flagged = image(), image(is_bigendian=1)
    a, order_a = message_to_frame(plain, compressed=False)
    b, order_b = message_to_frame(flagged, compressed=False)
    assert order_a == order_b and np.array_equal(a, b)


@pytest.mark.parametrize("kind,reason", [
    ("zero_k", "bad_intrinsics"), ("nan_k", "nonfinite"), ("inf_p", "nonfinite"), ("zero_size", "zero_size"),
    ("negative_focal", "bad_intrinsics"), ("good", None),
])
def test_camera_info_faults_are_counted_and_the_images_still_published(rig, kind, reason):
    class Fixed:  # a Draw that picks the named kind and the first option everywhere else
        def integer(self, low, high):
            return low

        def choice(self, options):
            return kind if kind in options else options[0]

        def raw(self, size):
            return bytes(size)

    info = camera_info_case(Fixed(), W, H)
    outcome = rig.push(Case("image", image(), info, []))
    assert outcome.label == "published"
    assert outcome.camera_info == ("published" if reason is None else f"rejected.{reason}")


def test_offer_never_waits_for_a_busy_worker(pipeline):
    """While inference is stuck, messages keep being taken: one pending frame, the rest dropped or rejected."""
    release = threading.Event()

    class Stuck:
        preset = pipeline.preset

        def process(self, frame, **kwargs):
            release.wait(30)
            return pipeline.process(frame, **kwargs)

        def output_size_for(self, width, height):
            return pipeline.output_size_for(width, height)

    rig = NodePathRig(Stuck())
    try:
        draw = RngDraw(np.random.default_rng(11))
        cases = [any_case(draw, i) for i in range(150)]
        refused = 0
        for case in cases:
            refusal = intake.offer(rig.worker, case.msg, compressed=case.kind == "compressed",
                                   max_pixels=rig.max_pixels, camera_info=case.camera_info)
            refused += refusal is not None
        stats = rig.worker.stats()
        assert stats.received == 150 and stats.processed == 0
        assert stats.rejected_total == refused and 0 < refused < 150
        # One frame in the stuck worker, at most one pending: the rest were dropped, not queued.
        assert stats.dropped >= 150 - refused - 2
        release.set()
        assert rig.worker.wait_idle(60)
        stats = rig.worker.stats()
        assert stats.errors == 0
        assert stats.received == stats.processed + stats.dropped + stats.rejected_total
    finally:
        release.set()
        rig.close()


# -- through PerceptionNode itself (rclpy stand-in) ---------------------------------------------------

UINT32 = 2**32 - 1


def as_ros_message(case: Case):
    """The case as the stand-in message rclpy would deliver, or None when rclpy's types forbid it."""
    msg = case.msg
    try:
        payload = bytes(memoryview(msg.data).cast("B")) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes()
    except TypeError:
        return None
    stamp = ros.Header(stamp=ros.Time(sec=msg.header.stamp.sec, nanosec=0), frame_id="cam_optical")
    if case.kind == "compressed":
        return ros.CompressedImage(header=stamp, format=msg.format, data=array.array("B", payload))
    ints = (msg.height, msg.width, msg.step)
    if not all(type(v) is int and 0 <= v <= UINT32 for v in ints) or not isinstance(msg.encoding, str):
        return None
    if type(msg.is_bigendian) is not int or not 0 <= msg.is_bigendian <= 255:
        return None
    return ros.Image(header=stamp, height=msg.height, width=msg.width, encoding=msg.encoding,
                     is_bigendian=msg.is_bigendian, step=msg.step, data=array.array("B", payload))


@pytest.mark.parametrize("compressed", [False, True], ids=["image", "compressed"])
def test_node_publishes_or_counts_every_fuzzed_message(monkeypatch, weights, compressed):  # noqa: F811
    module, node = make_node(monkeypatch, weights, compressed=compressed, output_size="input")
    state = ros.LifecycleState()
    assert node.on_configure(state) == ros.TransitionCallbackReturn.SUCCESS
    assert node.on_activate(state) == ros.TransitionCallbackReturn.SUCCESS
    subscribe_all(node)
    pubs = publishers(node)
    topic = "image/compressed" if compressed else "image"
    fed = []

    @settings(FUZZ, max_examples=15)
    @given(data=st.data())
    def feed_one(data):
        draw = HypothesisDraw(data)
        case = (compressed_case if compressed else image_case)(draw, len(fed))
        msg = as_ros_message(case)
        if msg is None:
            return
        before = node._worker.stats()
        sent_before = len(pubs["semantic/labels"].sent)
        subscription(node, topic).callback(msg)  # the executor's call; must return, not raise
        assert node._worker.wait_idle(60)
        after = node._worker.stats()
        published = len(pubs["semantic/labels"].sent) - sent_before
        rejected = after.rejected_total - before.rejected_total
        assert after.errors == before.errors, after.last_error
        assert (published, rejected) in ((1, 0), (0, 1)), (case.mutations, published, rejected)
        if case.pristine:
            assert published == 1, case.mutations
        fed.append(published)

    try:
        feed_one()
        stats = node._worker.stats()
        assert stats.received == stats.processed + stats.rejected_total + stats.dropped
        assert stats.processed == len(pubs["semantic/labels"].sent) == len(pubs["depth/image"].sent)
        node.timers[-1].callback()  # diagnostics name every rejection reason
        values = {kv.key: kv.value for kv in pubs["/diagnostics"].sent[-1].status[0].values}
        assert sum(int(v) for k, v in values.items() if k.startswith("rejected.")) == stats.rejected_total
    finally:
        node.release()
