"""sensor_msgs/Image <-> numpy: every encoding, odd widths, padded step, both byte orders."""

from __future__ import annotations

import array
import struct
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydranet_ros.io.ros_image import (
    ENCODINGS,
    ImageRejected,
    compressed_to_frame,
    image_fields,
    image_to_frame,
    image_to_numpy,
)


@dataclass
class Image:
    """Stand-in with sensor_msgs/Image's field names (no header needed by the conversions)."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: Any


@dataclass
class CompressedImage:
    format: str
    data: Any


# (numpy base type, channels) written out independently of the module's table.
LAYOUTS = {
    "rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4),
    "rgb16": ("u2", 3), "bgr16": ("u2", 3), "rgba16": ("u2", 4), "bgra16": ("u2", 4),
    "mono8": ("u1", 1), "mono16": ("u2", 1), "yuv422": ("u1", 2), "yuv422_yuy2": ("u1", 2),
    "uyvy": ("u1", 2), "yuyv": ("u1", 2),
    **{f"bayer_{p}8": ("u1", 1) for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{f"bayer_{p}16": ("u2", 1) for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{f"{bits}{kind}C{c}": ({"8U": "u1", "8S": "i1", "16U": "u2", "16S": "i2", "32S": "i4", "32F": "f4",
                               "64F": "f8"}[bits + kind], c)
       for bits, kind in (("8", "U"), ("8", "S"), ("16", "U"), ("16", "S"), ("32", "S"), ("32", "F"), ("64", "F"))
       for c in (1, 2, 3, 4)},
}
CONTAINERS = {
    "bytes": bytes,
    "bytearray": bytearray,
    "array": lambda b: array.array("B", b),
    "memoryview": memoryview,
    "list": list,
    "ndarray": lambda b: np.frombuffer(bytearray(b), np.uint8),
}


def expected_pixels(raw: bytes, encoding: str, width: int, height: int, step: int, big: bool) -> np.ndarray:
    """Row by row from the raw bytes: the independent reading of the layout."""
    base, channels = LAYOUTS[encoding]
    dtype = np.dtype(("<" if not big else ">") + base if base[1] != "1" else base)
    row_bytes = width * channels * dtype.itemsize
    rows = b"".join(raw[r * step : r * step + row_bytes] for r in range(height))
    pixels = np.frombuffer(rows, dtype)  # np.stack would turn big-endian data native
    return pixels.reshape(height, width) if channels == 1 else pixels.reshape(height, width, channels)


@st.composite
def raw_images(draw, encodings=tuple(sorted(LAYOUTS))):
    encoding = draw(st.sampled_from(encodings))
    base, channels = LAYOUTS[encoding]
    itemsize = int(base[1])
    width = draw(st.integers(1, 9))
    height = draw(st.integers(1, 6))
    padding = draw(st.integers(0, 7))
    big = draw(st.booleans()) if itemsize > 1 else False
    step = width * channels * itemsize + padding
    extra = draw(st.integers(0, 3))  # trailing bytes past step * height are allowed and ignored
    raw = draw(st.binary(min_size=step * height + extra, max_size=step * height + extra))
    container = draw(st.sampled_from(sorted(CONTAINERS)))
    return Image(height, width, encoding, int(big), step, CONTAINERS[container](raw)), raw


def test_table_covers_the_required_encodings():
    required = {"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "32FC1", "yuv422",
                "yuv422_yuy2", "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "8UC1", "8UC3"}
    assert required <= ENCODINGS
    assert set(LAYOUTS) == set(ENCODINGS)


@settings(max_examples=100, deadline=None)
@given(raw_images())
def test_image_to_numpy_reads_every_layout(sample):
    msg, raw = sample
    pixels = image_to_numpy(msg)
    expected = expected_pixels(raw, msg.encoding, msg.width, msg.height, msg.step, bool(msg.is_bigendian))
    assert pixels.dtype == expected.dtype
    assert pixels.shape == expected.shape
    assert pixels.tobytes() == expected.tobytes()  # bytewise, so NaN payloads compare too


@settings(max_examples=60, deadline=None)
@given(raw_images(encodings=("mono16", "16UC1", "32FC1")))
def test_multibyte_values_follow_is_bigendian(sample):
    msg, raw = sample
    pixels = image_to_numpy(msg)
    fmt = {"mono16": "H", "16UC1": "H", "32FC1": "f"}[msg.encoding]
    order = ">" if msg.is_bigendian else "<"
    size = struct.calcsize(fmt)
    for row in range(msg.height):
        for col in range(msg.width):
            offset = row * msg.step + col * size
            (value,) = struct.unpack(order + fmt, raw[offset : offset + size])
            got = pixels[row, col]
            assert got == value or (np.isnan(got) and np.isnan(value))


@settings(max_examples=60, deadline=None)
@given(raw_images(encodings=("rgb8", "bgr8", "32FC1")), st.sampled_from(["bytes", "bytearray", "array", "ndarray"]))
def test_no_copy_for_rgb_bgr_and_float_depth(sample, container):
    msg, raw = sample
    msg.data = CONTAINERS[container](raw)
    pixels = image_to_numpy(msg)
    buffer = msg.data if isinstance(msg.data, np.ndarray) else np.frombuffer(msg.data, np.uint8)
    assert np.shares_memory(pixels, buffer)
    if msg.encoding != "32FC1":
        frame, order = image_to_frame(msg)
        assert np.shares_memory(frame, buffer)
        assert order == ("rgb" if msg.encoding == "rgb8" else "bgr")


def test_bytes_give_read_only_views_and_bytearrays_writable_ones():
    raw = bytes(range(24))
    assert not image_to_numpy(Image(2, 4, "rgb8", 0, 12, raw)).flags.writeable
    assert image_to_numpy(Image(2, 4, "rgb8", 0, 12, bytearray(raw))).flags.writeable


@settings(max_examples=100, deadline=None)
@given(raw_images())
def test_round_trip_through_image_fields_is_exact(sample):
    msg, _ = sample
    pixels = image_to_numpy(msg)
    fields = image_fields(pixels, msg.encoding)
    assert fields["data"].dtype == np.uint8 and fields["data"].ndim == 1
    assert fields["step"] == fields["width"] * pixels.itemsize * (1 if pixels.ndim == 2 else pixels.shape[2])
    back = image_to_numpy(Image(**fields))
    assert back.dtype == pixels.dtype and back.shape == pixels.shape
    assert back.tobytes() == pixels.tobytes()


def test_image_fields_shares_memory_with_contiguous_arrays_and_keeps_byte_order():
    depth = np.arange(12, dtype=">f4").reshape(3, 4)
    fields = image_fields(depth, "32FC1")
    assert fields["is_bigendian"] == 1 and np.shares_memory(fields["data"], depth)
    native = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert image_fields(native, "32FC1")["is_bigendian"] == 0
    assert image_fields(np.zeros((2, 3), np.uint8), "mono8")["step"] == 3


@pytest.mark.parametrize(
    "pixels, encoding",
    [(np.zeros((2, 3), np.float32), "mono8"), (np.zeros((2, 3, 3), np.uint8), "mono8"),
     (np.zeros((2, 3), np.uint8), "rgb8"), (np.zeros(5, np.uint8), "mono8"), (np.zeros((2, 2), np.uint8), "nope")],
)
def test_image_fields_refuses_arrays_that_do_not_match_the_encoding(pixels, encoding):
    with pytest.raises(ValueError):
        image_fields(pixels, encoding)


# -- frames -------------------------------------------------------------------------------------

CAMERA_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16", "mono8", "mono16",
                    "8UC1", "8UC3", "8UC4", "yuv422", "yuv422_yuy2", "uyvy", "yuyv",
                    *(f"bayer_{p}{b}" for p in ("rggb", "bggr", "gbrg", "grbg") for b in (8, 16)))


@st.composite
def camera_images(draw):
    msg, raw = draw(raw_images(encodings=CAMERA_ENCODINGS))
    # 4:2:2 needs pixel pairs, a Bayer tile 2x2: grow the sample to fit instead of rejecting it.
    if msg.encoding in ("yuv422", "yuv422_yuy2", "uyvy", "yuyv") and msg.width % 2:
        return draw(camera_images())
    if msg.encoding.startswith("bayer_") and (msg.width < 2 or msg.height < 2):
        return draw(camera_images())
    return msg, raw


@settings(max_examples=100, deadline=None)
@given(camera_images())
def test_every_camera_encoding_becomes_an_hxwx3_uint8_frame(sample):
    msg, raw = sample
    frame, order = image_to_frame(msg)
    assert frame.shape == (msg.height, msg.width, 3) and frame.dtype == np.uint8
    assert order in ("rgb", "bgr")
    pixels = expected_pixels(raw, msg.encoding, msg.width, msg.height, msg.step, bool(msg.is_bigendian))
    if msg.encoding in ("rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "8UC4"):
        np.testing.assert_array_equal(frame, pixels[..., :3])
        assert order == ("rgb" if msg.encoding.startswith("rgb") else "bgr")
    elif msg.encoding in ("rgb16", "bgr16", "rgba16", "bgra16"):
        np.testing.assert_array_equal(frame, (pixels[..., :3] // 256).astype(np.uint8))
    elif msg.encoding in ("mono8", "8UC1"):
        for channel in range(3):
            np.testing.assert_array_equal(frame[..., channel], pixels)
    elif msg.encoding == "mono16":
        for channel in range(3):
            np.testing.assert_array_equal(frame[..., channel], pixels // 256)


def bt601_video_range(y, u, v):
    """YUV -> RGB as BT.601 defines it for 8-bit video range (Y 16..235), the camera convention."""
    y, u, v = (np.asarray(x, np.float64) for x in (y, u, v))
    c = 1.164 * (y - 16)
    rgb = np.stack([c + 1.596 * (v - 128), c - 0.392 * (u - 128) - 0.813 * (v - 128), c + 2.017 * (u - 128)], -1)
    return np.clip(np.round(rgb), 0, 255)


def pack_422(y: np.ndarray, u: np.ndarray, v: np.ndarray, uyvy: bool) -> np.ndarray:
    """Pack per-pixel Y and per-pair U, V into HxWx2 bytes, chroma first for UYVY."""
    height, width = y.shape
    chroma = np.empty((height, width), np.uint8)
    chroma[:, 0::2], chroma[:, 1::2] = u, v
    return np.stack([chroma, y] if uyvy else [y, chroma], -1).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_grey_ramp_and_colours_match_bt601(encoding):
    uyvy = encoding == "yuv422"
    width = 256
    y = np.tile(np.arange(256, dtype=np.uint8), (2, 1))
    u = np.full((2, width // 2), 128, np.uint8)
    v = np.full((2, width // 2), 128, np.uint8)
    # Second row: colours, with luma inside the legal video range (OpenCV clamps Y < 16 first).
    y[1] = np.linspace(16, 235, width)
    u[1], v[1] = np.linspace(0, 255, width // 2), np.linspace(255, 0, width // 2)
    packed = pack_422(y, u, v, uyvy)
    padded = np.zeros((2, width * 2 + 6), np.uint8)  # padded step, too
    padded[:, : width * 2] = packed.reshape(2, -1)
    frame, order = image_to_frame(Image(2, width, encoding, 0, width * 2 + 6, padded.tobytes()))
    assert order == "rgb"
    expected = bt601_video_range(y, np.repeat(u, 2, axis=1), np.repeat(v, 2, axis=1))
    grey = frame[0].astype(int)
    assert np.all(grey[:, 0] == grey[:, 1]) and np.all(grey[:, 1] == grey[:, 2])  # a grey ramp stays grey
    assert np.abs(grey - expected[0]).max() <= 1
    assert np.abs(frame[1].astype(int) - expected[1]).max() <= 2


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns_demosaic_to_the_right_colour(pattern):
    colour = {"r": 200, "g": 90, "b": 30}
    height, width = 8, 10
    mosaic = np.empty((height, width), np.uint8)
    for index, letter in enumerate(pattern):
        mosaic[index // 2 :: 2, index % 2 :: 2] = colour[letter]
    frame, order = image_to_frame(Image(height, width, f"bayer_{pattern}8", 0, width, mosaic.tobytes()))
    assert order == "rgb"
    interior = frame[2:-2, 2:-2].reshape(-1, 3).astype(int)
    assert np.abs(interior - [200, 90, 30]).max() <= 1
    wide = (mosaic.astype(np.uint16) * 256).astype(">u2")
    frame16, _ = image_to_frame(Image(height, width, f"bayer_{pattern}16", 1, width * 2, wide.tobytes()))
    np.testing.assert_array_equal(frame16, frame)


def test_rosbags_messages_convert_after_a_cdr_round_trip():
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    RosImage = store.types["sensor_msgs/msg/Image"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    depth = np.linspace(0.5, 80.0, 35, dtype=np.float32).reshape(5, 7)
    outgoing = RosImage(header=Header(stamp=Time(sec=3, nanosec=4), frame_id="cam"), **image_fields(depth, "32FC1"))
    raw = store.serialize_cdr(outgoing, RosImage.__msgtype__)
    incoming = store.deserialize_cdr(raw, RosImage.__msgtype__)
    back = image_to_numpy(incoming)
    np.testing.assert_array_equal(back, depth)
    assert np.shares_memory(back, incoming.data)


# -- rejections ---------------------------------------------------------------------------------


def rejected(call, *args, **kwargs) -> str:
    with pytest.raises(ImageRejected) as info:
        call(*args, **kwargs)
    assert str(info.value)  # a human message as well as the key
    return info.value.reason


def test_each_rejection_names_its_reason():
    good = bytes(4 * 3 * 3)
    assert rejected(image_to_numpy, Image(3, 4, "rgb9", 0, 12, good)) == "unknown_encoding"
    assert rejected(image_to_numpy, Image(3, 4, None, 0, 12, good)) == "unknown_encoding"
    assert rejected(image_to_numpy, Image(0, 4, "rgb8", 0, 12, good)) == "empty"
    assert rejected(image_to_numpy, Image(3, 0, "rgb8", 0, 12, good)) == "empty"
    assert rejected(image_to_numpy, Image(3, 4, "rgb8", 0, 12, b"")) == "empty"
    assert rejected(image_to_numpy, Image(3, 4, "rgb8", 0, 11, good)) == "bad_step"
    assert rejected(image_to_numpy, Image(3, 4, "rgb8", 0, 12, good[:-1])) == "size_mismatch"
    assert rejected(image_to_numpy, Image(3, 4, "rgb8", 0, 13, good)) == "size_mismatch"
    assert rejected(image_to_numpy, Image(-3, 4, "rgb8", 0, 12, good)) == "bad_size"
    assert rejected(image_to_numpy, Image(3, 4, "rgb8", 0, 12, "x" * 36)) == "bad_data"
    assert rejected(image_to_numpy, Image(3, 4, "rgb8", 0, 12, [300] * 36)) == "bad_data"
    assert rejected(image_to_frame, Image(3, 4, "rgb8", 0, 12, good), max_pixels=11) == "too_large"
    assert rejected(image_to_frame, Image(3, 4, "32FC1", 0, 16, bytes(48))) == "unsupported_encoding"
    assert rejected(image_to_frame, Image(3, 3, "yuv422", 0, 6, bytes(18))) == "odd_width"
    assert rejected(image_to_frame, Image(1, 4, "bayer_rggb8", 0, 4, bytes(4))) == "bad_size"


def test_max_pixels_refuses_before_reading_the_data():
    # A 100000 x 100000 claim with no data behind it: the size check must come first.
    assert rejected(image_to_frame, Image(100_000, 100_000, "rgb8", 0, 300_000, b""), max_pixels=10**7) == "too_large"
    frame, _ = image_to_frame(Image(3, 4, "rgb8", 0, 12, bytes(36)), max_pixels=12)
    assert frame.shape == (3, 4, 3)


# -- CompressedImage ----------------------------------------------------------------------------


def encoded(extension: str, picture: np.ndarray) -> bytes:
    ok, data = cv2.imencode(extension, picture)
    assert ok
    return data.tobytes()


PICTURE = np.dstack([np.tile(np.arange(0, 240, 5, dtype=np.uint8), (32, 1)),
                     np.full((32, 48), 60, np.uint8), np.full((32, 48), 200, np.uint8)])


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_png_decodes_exactly_in_bgr_order(container):
    frame, order = compressed_to_frame(CompressedImage("bgr8; png compressed bgr8", CONTAINERS[container](encoded(".png", PICTURE))))
    assert order == "bgr"
    np.testing.assert_array_equal(frame, PICTURE)


def test_jpeg_decodes_and_reports_the_colour_order_from_the_format():
    data = encoded(".jpg", PICTURE)
    frame, order = compressed_to_frame(CompressedImage("jpeg", data))
    assert order == "bgr" and frame.shape == PICTURE.shape
    assert np.abs(frame.astype(int) - PICTURE).mean() < 4
    assert compressed_to_frame(CompressedImage("rgb8; jpeg compressed bgr8", data))[1] == "bgr"
    assert compressed_to_frame(CompressedImage("rgb8; jpeg compressed rgb8", data))[1] == "rgb"
    padded = data + bytes(100)  # zero padding after the end marker, as some drivers send
    assert compressed_to_frame(CompressedImage("jpeg", padded))[0].shape == PICTURE.shape
    grey = compressed_to_frame(CompressedImage("mono8; png compressed mono8", encoded(".png", PICTURE[..., 0])))[0]
    assert grey.shape == PICTURE.shape and np.all(grey[..., 0] == PICTURE[..., 0])


def with_png_size(data: bytes, width: int, height: int) -> bytes:
    return data[:16] + width.to_bytes(4, "big") + height.to_bytes(4, "big") + data[24:]


def with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    position = 2
    while data[position + 1] not in (0xC0, 0xC1, 0xC2):
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return data[: position + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[position + 9 :]


def test_compressed_rejections():
    png, jpeg = encoded(".png", PICTURE), encoded(".jpg", PICTURE)
    assert rejected(compressed_to_frame, CompressedImage("jpeg", b"")) == "empty"
    assert rejected(compressed_to_frame, CompressedImage("jpeg", b"not an image at all")) == "bad_compressed"
    assert rejected(compressed_to_frame, CompressedImage("jpeg", jpeg[: len(jpeg) // 2])) == "bad_compressed"
    assert rejected(compressed_to_frame, CompressedImage("jpeg", jpeg[:-2])) == "bad_compressed"
    assert rejected(compressed_to_frame, CompressedImage("png", png[: len(png) // 2])) == "bad_compressed"
    assert rejected(compressed_to_frame, CompressedImage("png", png[:20])) == "bad_compressed"
    assert rejected(compressed_to_frame, CompressedImage("png", with_png_size(png, 0, 32))) == "bad_compressed"
    assert rejected(compressed_to_frame, CompressedImage("png", png), max_pixels=100) == "too_large"
    assert rejected(compressed_to_frame, CompressedImage("16UC1; compressedDepth png", png)) == "unsupported_format"


def test_decompression_bombs_are_refused_from_the_header():
    # The headers claim 60000 x 60000 pixels; the rest is garbage that would fail to decode, so
    # 'too_large' (not 'bad_compressed') proves the refusal came before decoding.
    png = with_png_size(encoded(".png", PICTURE)[:33], 60000, 60000) + b"\x00" * 64
    assert rejected(compressed_to_frame, CompressedImage("png", png), max_pixels=10**7) == "too_large"
    jpeg = with_jpeg_size(encoded(".jpg", PICTURE), 60000, 60000)
    assert rejected(compressed_to_frame, CompressedImage("jpeg", jpeg), max_pixels=10**7) == "too_large"
