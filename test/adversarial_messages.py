"""Adversarial camera messages, and a rig that pushes them through the node's own frame path.

Shared by test_fuzz_messages.py (hypothesis draws the choices, and shrinks a failure to its
smallest form) and tools/fuzz_node.py (a seeded numpy generator draws them, 10,000 at a time):
both describe messages through the same ``Draw`` interface, so the long run and the CI test
explore the same space.

Messages are plain objects with the ROS 2 field names, like the ones the conversions accept from
rclpy and rosbags; values go beyond what rclpy's typed setters would let through (negative sizes,
non-string encodings), because a bag or a buggy bridge can deliver anything.
"""

from __future__ import annotations

import array
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol, Sequence, TypeVar

import cv2
import numpy as np

from container_mutations import mutate_container
from hydranet_ros.outputs import plan as outputs, render as rendering
from hydranet_ros.runtime import intake
from hydranet_ros.runtime.frame_worker import FrameWorker

T = TypeVar("T")

MAX_SIDE = 96  # valid frames stay small: the fuzz is about messages, not about network speed
DEFAULT_MAX_PIXELS = 3840 * 2160  # the node's max_input_pixels default

# Bytes per pixel of the encodings a camera sends (sensor_msgs/image_encodings), written out here
# independently of the converter's own table so a mistake there shows up as a failure.
CAMERA_ENCODINGS = {
    "rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "rgb16": 6, "bgr16": 6,
    "rgba16": 8, "bgra16": 8, "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2, "bayer_rggb8": 1,
    "bayer_bggr8": 1, "bayer_gbrg8": 1, "bayer_grbg8": 1, "bayer_rggb16": 2, "bayer_grbg16": 2,
    "8UC1": 1, "8UC3": 3, "8UC4": 4, "16UC3": 6,
}
# Valid encodings that are not camera colour frames (depth, float, signed): rejected, never decoded.
OTHER_ENCODINGS = {"32FC1": 4, "32FC3": 12, "64FC1": 8, "16UC1": 2, "32SC1": 4, "8SC3": 3, "16SC1": 2}
MISSPELLED = ("RGB8", "rgb 8", "rgb8 ", " rgb8", "rgb-8", "rgb", "bgr", "rgb24", "yuv422_yuyv", "yuv420", "nv12",
              "bayer_rggb", "bayer_rggb12", "mono12", "jpeg", "", "rgb8\x00", "ｒｇｂ8", "8UC5", "32FC0", "8uc3x")
NOT_STRINGS = (None, 3, b"rgb8", 8.0, ["rgb8"])
FORMATS = ("jpeg", "png", "rgb8; jpeg compressed bgr8", "rgb8; jpeg compressed rgb8", "bgr8; png compressed bgr8",
           "16UC1; compressedDepth png", "", "bogus", "JPEG", "rgb8; compressed")
HUGE = (2**16, 46341, 2**31 - 1, 2**32 - 1, 10**9)


class Draw(Protocol):
    """Where the choices come from: hypothesis (shrinkable) or a seeded numpy generator."""

    def integer(self, low: int, high: int) -> int: ...  # inclusive bounds
    def choice(self, options: Sequence[T]) -> T: ...
    def raw(self, size: int) -> bytes: ...


class RngDraw:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high, endpoint=True))

    def choice(self, options: Sequence[T]) -> T:
        return options[int(self.rng.integers(0, len(options)))]

    def raw(self, size: int) -> bytes:
        return self.rng.bytes(size)


class HypothesisDraw:
    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self._data, self._st = data, st

    def integer(self, low: int, high: int) -> int:
        return self._data.draw(self._st.integers(low, high))

    def choice(self, options: Sequence[T]) -> T:
        return self._data.draw(self._st.sampled_from(list(options)))

    def raw(self, size: int) -> bytes:
        # Random pixel bytes: drawing them byte by byte would spend hypothesis' whole budget on
        # pixel values that do not matter; a drawn seed keeps the case reproducible and shrinkable.
        seed = self._data.draw(self._st.integers(0, 2**32 - 1))
        return np.random.default_rng(seed).bytes(size)


@dataclass
class Case:
    """One generated message and how it was made (for the report and for the properties)."""

    kind: str  # "image" or "compressed"
    msg: Any
    camera_info: Any | None
    mutations: list[str] = field(default_factory=list)
    still_valid: bool = False  # every mutation left a valid file (padding, an ancillary chunk, ...)

    @property
    def pristine(self) -> bool:
        """A well-formed camera frame that the node must publish."""
        return not self.mutations or self.still_valid


def header(index: int) -> SimpleNamespace:
    return SimpleNamespace(stamp=SimpleNamespace(sec=index, nanosec=0), frame_id="cam_optical")


def _container(draw: Draw, payload: bytes) -> Any:
    """The byte buffer as rclpy (array.array), rosbags (numpy) or a hand-made message holds it."""
    kind = draw.choice(("array", "array", "numpy", "bytes", "bytearray", "memoryview"))
    if kind == "array":
        return array.array("B", payload)
    if kind == "numpy":
        return np.frombuffer(payload, dtype=np.uint8)
    if kind == "bytes":
        return bytes(payload)
    if kind == "bytearray":
        return bytearray(payload)
    return memoryview(payload)


def _odd_container(draw: Draw, payload: bytes) -> tuple[Any, str]:
    kind = draw.choice(("list", "list_out_of_range", "str", "none", "uint16_array", "float_list", "int"))
    if kind == "list":
        return list(payload), kind
    if kind == "list_out_of_range":
        values = list(payload) or [0]
        values[draw.integer(0, len(values) - 1)] = draw.choice((256, -1, 10**12))
        return values, kind
    if kind == "str":
        return payload.decode("latin-1"), kind
    if kind == "none":
        return None, kind
    if kind == "uint16_array":
        usable = payload[: len(payload) // 2 * 2]
        return np.frombuffer(usable, dtype=np.uint16), kind
    if kind == "float_list":
        return [float(b) for b in payload[:64]], kind
    return 12345, kind


def image_case(draw: Draw, index: int = 0) -> Case:
    """A sensor_msgs/Image: a valid camera frame, then 0-3 mutations of its fields."""
    mutations: list[str] = []
    if draw.integer(0, 9) == 0:  # float/depth/signed data, NaN and Inf included
        encoding = draw.choice(sorted(OTHER_ENCODINGS))
        bpp = OTHER_ENCODINGS[encoding]
        mutations.append(f"not_a_camera_encoding:{encoding}")
    else:
        encoding = draw.choice(sorted(CAMERA_ENCODINGS))
        bpp = CAMERA_ENCODINGS[encoding]
    width, height = draw.integer(1, MAX_SIDE), draw.integer(1, MAX_SIDE * 3 // 4)
    if encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv") and width % 2:
        width += 1  # a valid packed 4:2:2 row holds pixel pairs; odd widths come as a mutation
    if encoding.startswith("bayer_"):
        width, height = max(width, 2), max(height, 2)
    pad = draw.choice((0, 0, 0, 1, 3, 8))
    step = width * bpp + pad
    payload = draw.raw(step * height)
    if encoding.startswith(("32F", "64F")):
        dtype = np.float32 if encoding.startswith("32F") else np.float64
        values = np.frombuffer(payload[: len(payload) // dtype().itemsize * dtype().itemsize], dtype=dtype).copy()
        specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e38], dtype=dtype)
        values[:: max(1, draw.integer(1, 7))] = specials[draw.integer(0, len(specials) - 1)]
        payload = values.tobytes() + payload[len(values.tobytes()):]
    msg = SimpleNamespace(header=header(index), height=height, width=width, encoding=encoding,
                          is_bigendian=0, step=step, data=_container(draw, payload))

    for _ in range(draw.choice((0, 0, 1, 1, 2, 3))):
        mutation = draw.choice(IMAGE_MUTATIONS)
        detail = mutation(draw, msg, bpp)
        mutations.append(mutation.__name__.lstrip("_") + (f":{detail}" if detail else ""))
    return Case("image", msg, camera_info_case(draw, width, height), mutations)


def _buffer_bytes(msg: Any) -> bytes:
    data = msg.data
    if isinstance(data, np.ndarray):
        return data.tobytes()
    try:
        return bytes(memoryview(data).cast("B"))
    except TypeError:
        return b""


def _as_int(value: Any) -> int:
    """A field's value as an int for the next mutation (an earlier one may have broken it)."""
    return value if isinstance(value, int) else 0


# Each mutation edits msg in place; a returned string adds detail to the case's description.
def _step_short(draw: Draw, msg: Any, bpp: int) -> str:
    msg.step = max(0, _as_int(msg.width) * bpp - draw.integer(1, bpp * 2))
    return ""


def _step_long(draw: Draw, msg: Any, bpp: int) -> str:
    msg.step = _as_int(msg.step) + draw.integer(1, 64)  # data not grown: shorter than step x height
    return ""


def _step_absurd(draw: Draw, msg: Any, bpp: int) -> str:
    msg.step = draw.choice((2**31 - 1, 2**32 - 1, 10**12, -4))
    return str(msg.step)


def _data_short(draw: Draw, msg: Any, bpp: int) -> str:
    payload = _buffer_bytes(msg)
    msg.data = array.array("B", payload[: draw.integer(0, max(0, len(payload) - 1))])
    return ""


def _data_long(draw: Draw, msg: Any, bpp: int) -> str:
    msg.data = array.array("B", _buffer_bytes(msg) + draw.raw(draw.integer(1, 4096)))
    return ""


def _data_empty(draw: Draw, msg: Any, bpp: int) -> str:
    msg.data = draw.choice((array.array("B"), b"", np.zeros(0, np.uint8)))
    return ""


def _data_odd_type(draw: Draw, msg: Any, bpp: int) -> str:
    msg.data, kind = _odd_container(draw, _buffer_bytes(msg))
    return kind


def _zero_size(draw: Draw, msg: Any, bpp: int) -> str:
    side = draw.choice(("width", "height", "both"))
    if side in ("width", "both"):
        msg.width = 0
    if side in ("height", "both"):
        msg.height = 0
    return side


def _huge_size(draw: Draw, msg: Any, bpp: int) -> str:
    side = draw.choice(("width", "height", "both"))
    value = draw.choice(HUGE)
    if side in ("width", "both"):
        msg.width = value
        if draw.integer(0, 1):
            msg.step = value * bpp  # a consistent step: only the data is missing
    if side in ("height", "both"):
        msg.height = value
    return f"{side}={value}"


def _negative_size(draw: Draw, msg: Any, bpp: int) -> str:
    setattr(msg, draw.choice(("width", "height")), -draw.integer(1, 2**31))
    return ""


def _size_not_int(draw: Draw, msg: Any, bpp: int) -> str:
    value = draw.choice(("64", 3.5, math.nan, math.inf, None, b"\x10"))
    setattr(msg, draw.choice(("width", "height", "step")), value)
    return repr(value)


def _encoding_unknown(draw: Draw, msg: Any, bpp: int) -> str:
    msg.encoding = draw.choice(MISSPELLED)
    return repr(msg.encoding)


def _encoding_random(draw: Draw, msg: Any, bpp: int) -> str:
    msg.encoding = draw.raw(draw.integer(1, 12)).decode("latin-1")
    return ""


def _encoding_not_str(draw: Draw, msg: Any, bpp: int) -> str:
    msg.encoding = draw.choice(NOT_STRINGS)
    return repr(msg.encoding)


def _encoding_swapped(draw: Draw, msg: Any, bpp: int) -> str:
    msg.encoding = draw.choice(sorted({**CAMERA_ENCODINGS, **OTHER_ENCODINGS}))  # bytes per pixel now wrong
    return msg.encoding


def _big_endian_flag(draw: Draw, msg: Any, bpp: int) -> str:
    msg.is_bigendian = draw.choice((1, 1, 255, 2, -1))  # on 8-bit data it must change nothing
    return str(msg.is_bigendian)


IMAGE_MUTATIONS = (
    _step_short, _step_long, _step_absurd, _data_short, _data_long, _data_empty, _data_odd_type, _zero_size,
    _huge_size, _negative_size, _size_not_int, _encoding_unknown, _encoding_random, _encoding_not_str,
    _encoding_swapped, _big_endian_flag,
)


# -- CompressedImage ----------------------------------------------------------------------------


def _encoded(draw: Draw, codec: str) -> bytes:
    width, height = draw.integer(1, MAX_SIDE), draw.integer(1, MAX_SIDE * 3 // 4)
    channels = draw.choice((1, 3, 3, 4) if codec == "png" else (1, 3, 3))  # JPEG holds no alpha
    pixels = np.frombuffer(draw.raw(width * height * channels), np.uint8).reshape(height, width, channels)
    if codec == "png" and draw.integer(0, 3) == 0:
        pixels = (pixels.astype(np.uint16) * 257)  # 16-bit PNG
    options: list[int] = []
    if codec == "jpg":  # baseline mostly; progressive and restart markers as some cameras send
        options = draw.choice(([], [], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]))
    ok, buffer = cv2.imencode("." + codec, pixels if channels != 1 else pixels[..., 0], options)
    assert ok
    return buffer.tobytes()


def _patch_png_size(draw: Draw, data: bytes) -> tuple[bytes, str]:
    width, height = draw.choice(((0, 10), (10, 0), (2**31 - 1, 1), (65535, 65535), (1, 2**31 - 1), (3000, 3000)))
    return data[:16] + width.to_bytes(4, "big") + height.to_bytes(4, "big") + data[24:], f"{width}x{height}"


def _patch_jpeg_size(draw: Draw, data: bytes) -> tuple[bytes, str]:
    position = data.find(b"\xff\xc0")
    if position < 0:
        return data, "no_sof"
    width, height = draw.choice(((0, 10), (10, 0), (65535, 65535), (4000, 4000), (1, 1)))
    patched = bytearray(data)
    patched[position + 5 : position + 7] = height.to_bytes(2, "big")
    patched[position + 7 : position + 9] = width.to_bytes(2, "big")
    return bytes(patched), f"{width}x{height}"


def compressed_case(draw: Draw, index: int = 0) -> Case:
    """A sensor_msgs/CompressedImage: a real JPEG or PNG, then 0-2 ways of breaking it."""
    codec = draw.choice(("jpeg", "png"))
    data = _encoded(draw, "jpg" if codec == "jpeg" else "png")
    fmt = codec
    mutations: list[str] = []
    harmless_edits: set[str] = set()  # container edits that leave a valid file
    for _ in range(draw.choice((0, 0, 1, 1, 2))):
        mutation = draw.choice(("truncate", "flip_bytes", "garbage", "garbage_prefix", "header_only", "patch_size",
                                "drop_end_marker", "zero_padding", "format", "empty", "odd_container",
                                "container", "container", "container", "container", "container"))
        detail = ""
        if mutation == "container":  # an edit aimed at the chunk/segment structure (container_mutations.py)
            data, mutation, valid = mutate_container(draw, data)
            if valid:
                harmless_edits.add(mutation)
        elif mutation == "truncate":
            data = data[: draw.integer(0, max(0, len(data) - 1))]
        elif mutation == "flip_bytes":
            patched = bytearray(data)
            for _ in range(draw.integer(1, 16)):
                if patched:
                    patched[draw.integer(0, len(patched) - 1)] = draw.integer(0, 255)
            data = bytes(patched)
        elif mutation == "garbage":
            data = draw.raw(draw.integer(1, 2048))
        elif mutation == "garbage_prefix":
            data = draw.raw(draw.integer(1, 16)) + data
        elif mutation == "header_only":
            data = data[: draw.integer(2, 40)]
        elif mutation == "patch_size":
            data, detail = (_patch_png_size if data[:4] == b"\x89PNG" else _patch_jpeg_size)(draw, data)
        elif mutation == "drop_end_marker":
            data = data[:-2] if data.endswith(b"\xff\xd9") else data
        elif mutation == "zero_padding":  # drivers that pad the buffer: harmless
            data = data + bytes(draw.integer(1, 512))
        elif mutation == "format":
            fmt = draw.choice(FORMATS)
            detail = repr(fmt)
        elif mutation == "empty":
            data = b""
        mutations.append(mutation + (f":{detail}" if detail else ""))
        if mutation == "odd_container":
            odd, kind = _odd_container(draw, data)
            mutations[-1] += f":{kind}"
            msg = SimpleNamespace(header=header(index), format=fmt, data=odd)
            return Case("compressed", msg, camera_info_case(draw, 64, 48), mutations)
    harmless = {"zero_padding"} | harmless_edits | {m for m in mutations
                                                    if m.startswith("format:") and "compressedDepth" not in m}
    msg = SimpleNamespace(header=header(index), format=fmt, data=_container(draw, data))
    case = Case("compressed", msg, camera_info_case(draw, 64, 48), mutations)
    case.still_valid = set(mutations) <= harmless  # still a well-formed picture: it must be published
    return case


# -- CameraInfo -----------------------------------------------------------------------------------


def camera_info_case(draw: Draw, width: int, height: int) -> Any | None:
    """None (no calibration yet), a good CameraInfo, or one with zero / NaN / Inf / odd values."""
    kind = draw.choice(("none", "good", "good", "zero_k", "nan_k", "inf_p", "nan_d", "zero_size", "short_k",
                        "huge_binning", "bad_roi", "negative_focal"))
    if kind == "none":
        return None
    fx = float(draw.integer(20, 800))
    info = SimpleNamespace(
        header=header(0), height=int(height), width=int(width), distortion_model="plumb_bob",
        d=[0.0] * 5, k=[fx, 0.0, width / 2, 0.0, fx, height / 2, 0.0, 0.0, 1.0], r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
        p=[fx, 0.0, width / 2, 0.0, 0.0, fx, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0], binning_x=0, binning_y=0,
        roi=SimpleNamespace(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )
    if kind == "zero_k":
        info.k = [0.0] * 9
    elif kind == "nan_k":
        info.k[draw.choice((0, 2, 4, 5))] = math.nan
    elif kind == "inf_p":
        info.p[draw.choice((0, 3, 5))] = draw.choice((math.inf, -math.inf))
    elif kind == "nan_d":
        info.d[0] = math.nan
    elif kind == "zero_size":
        info.width, info.height = draw.choice(((0, 0), (0, height), (width, 0)))
    elif kind == "short_k":
        info.k = info.k[:4]
    elif kind == "huge_binning":
        info.binning_x = draw.choice((2**31, 10**6))
    elif kind == "bad_roi":
        info.roi = SimpleNamespace(x_offset=width, y_offset=0, height=height, width=width, do_rectify=False)
    elif kind == "negative_focal":
        info.k[0] = -info.k[0]
    return info


def any_case(draw: Draw, index: int = 0) -> Case:
    return image_case(draw, index) if draw.integer(0, 2) else compressed_case(draw, index)


# -- the rig --------------------------------------------------------------------------------------

PUBLISH_ALL = {spec.switch: True for spec in outputs.OUTPUTS.values()}
SUBSCRIBED_ALL = {name: 1 for name in outputs.OUTPUTS}
ESCAPE = "ESCAPE"


def describe(case: Case) -> str:
    """'compressed png 5120 bytes [png_chunk_length:IDAT=0xffffffff]': enough to make the case again."""
    data = getattr(case.msg, "data", None)
    size = len(data) if hasattr(data, "__len__") else 0
    what = getattr(case.msg, "format", None) if case.kind == "compressed" else getattr(case.msg, "encoding", None)
    return f"{case.kind} {what!r} {size} bytes {case.mutations}"


@dataclass
class Outcome:
    label: str  # "published", "rejected.<reason>", or ESCAPE / BLOCKED / BAD_OUTPUT
    detail: str = ""
    offer_ms: float = 0.0
    camera_info: str = ""  # "published", "rejected.<reason>" or "" (none given)


class NodePathRig:
    """The node's frame path: intake.offer in the caller's thread, rendering.render in a FrameWorker.

    ``push`` waits for the worker after each message (a test of outcomes, not of throughput) and
    says how the message ended. Anything but a published result or a named rejection is a failure:
    ESCAPE (an exception left offer or the worker), BLOCKED (the worker did not finish within the
    timeout), BAD_OUTPUT (a published message whose fields do not describe its data).
    """

    def __init__(self, pipeline: Any, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, depth_encoding: str = "32FC1",
                 timeout_s: float = 60.0) -> None:
        self.pipeline, self.max_pixels, self.depth_encoding, self.timeout_s = pipeline, max_pixels, depth_encoding, timeout_s
        self._problems: list[str] = []
        self._last_rendered: rendering.Rendered | None = None
        self._last_error = ""
        self.worker = FrameWorker(process=self._render, on_result=self._check, on_error=self._error).start()
        self.counts: Counter[str] = Counter()
        self.camera_info_counts: Counter[str] = Counter()
        self.escapes: list[str] = []
        self.max_offer_ms = 0.0
        self.slowest_offer = ""  # the case that took max_offer_ms, described

    def close(self) -> None:
        self.worker.stop()

    def _render(self, frame: intake.Frame) -> rendering.Rendered | None:
        plan = outputs.plan_frame(PUBLISH_ALL, SUBSCRIBED_ALL, have_camera_info=frame.camera_info is not None)
        return rendering.render(self.pipeline, frame, plan, depth_encoding=self.depth_encoding, overlay_alpha=0.5)

    def _check(self, frame: intake.Frame, rendered: rendering.Rendered | None) -> None:
        self._last_rendered = rendered
        if rendered is None:
            self._problems.append("nothing rendered although every output is subscribed")
            return
        width, height = self.pipeline.output_size_for(frame.pixels.shape[1], frame.pixels.shape[0])
        for name, fields in rendered.images.items():
            if (fields["width"], fields["height"]) != (width, height):
                self._problems.append(f"{name} is {fields['width']}x{fields['height']}, expected {width}x{height}")
            if len(fields["data"]) != fields["step"] * fields["height"]:
                self._problems.append(f"{name}: {len(fields['data'])} bytes for step {fields['step']} x {fields['height']}")
        if set(rendered.images) != {"labels", "depth", "color", "overlay", "confidence"}:
            self._problems.append(f"outputs {sorted(rendered.images)}")
        for name in outputs.CLOUD_OUTPUTS:  # made exactly when a usable CameraInfo came with the frame
            cloud = rendered.messages.get(name)
            expected = frame.camera_info is not None and rendered.camera_info_problem is None
            if (cloud is not None) != expected:
                self._problems.append(f"{name} {'made' if cloud is not None else 'missing'} "
                                      f"(CameraInfo {'usable' if expected else 'missing or rejected'})")
            elif cloud is not None:
                f = cloud.fields
                if f["row_step"] != f["point_step"] * f["width"] or len(f["data"]) != f["row_step"] * f["height"]:
                    self._problems.append(f"{name}: {len(f['data'])} bytes for {f['width']}x{f['height']} points")
        if "depth_camera_info" in rendered.messages:
            k = np.asarray(rendered.messages["depth_camera_info"].fields["k"])
            if not np.all(np.isfinite(k)) or k[0] <= 0:
                self._problems.append(f"published CameraInfo with K {k.tolist()}")

    def _error(self, frame: intake.Frame, exc: BaseException) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}"

    def push(self, case: Case) -> Outcome:
        before = self.worker.stats()
        self._problems, self._last_rendered, self._last_error = [], None, ""
        started = time.perf_counter()
        try:
            refusal = intake.offer(self.worker, case.msg, compressed=case.kind == "compressed",
                                   max_pixels=self.max_pixels, camera_info=case.camera_info)
        except Exception as exc:  # noqa: BLE001 - the thing under test: must not happen
            return self._tally(case, Outcome(ESCAPE, f"offer raised {type(exc).__name__}: {exc}"))
        offer_ms = (time.perf_counter() - started) * 1e3
        if offer_ms > self.max_offer_ms:
            self.max_offer_ms, self.slowest_offer = offer_ms, describe(case)
        if refusal is not None:
            return self._tally(case, Outcome(f"rejected.{refusal.reason}", refusal.detail, offer_ms))
        if not self.worker.wait_idle(self.timeout_s):
            return self._tally(case, Outcome("BLOCKED", f"worker busy for more than {self.timeout_s} s", offer_ms))
        after = self.worker.stats()
        if after.errors > before.errors:
            return self._tally(case, Outcome(ESCAPE, f"worker: {self._last_error or after.last_error}", offer_ms))
        new_reasons = {r for r, n in after.rejected.items() if n > before.rejected.get(r, 0)}
        if new_reasons:
            return self._tally(case, Outcome(f"rejected.{min(new_reasons)}", "in the worker", offer_ms))
        if after.processed != before.processed + 1:
            return self._tally(case, Outcome(ESCAPE, f"message vanished: {before} -> {after}", offer_ms))
        if self._problems:
            return self._tally(case, Outcome("BAD_OUTPUT", "; ".join(self._problems), offer_ms))
        outcome = Outcome("published", "", offer_ms)
        rendered = self._last_rendered
        if case.camera_info is not None and rendered is not None:
            problem = rendered.camera_info_problem
            outcome.camera_info = "published" if problem is None else f"rejected.{problem.reason}"
        return self._tally(case, outcome)

    def _tally(self, case: Case, outcome: Outcome) -> Outcome:
        self.counts[outcome.label] += 1
        if outcome.camera_info:
            self.camera_info_counts[outcome.camera_info] += 1
        if outcome.label in (ESCAPE, "BLOCKED", "BAD_OUTPUT"):
            self.escapes.append(f"{outcome.label} {case.kind} {case.mutations}: {outcome.detail}")
        return outcome
