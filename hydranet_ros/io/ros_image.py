"""sensor_msgs/Image and CompressedImage <-> numpy, without ROS and without cv_bridge.

The functions are duck-typed: they read the fields ``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data`` (and ``format`` for CompressedImage), so they work the same
on rclpy messages, on rosbags' message classes and on plain test objects.

Views, not copies: a 1920x1080 rgb8 frame is 6 MB, and a camera at 30 Hz would spend a core on
memcpy alone. Wherever the layout allows, the arrays returned here share memory with ``msg.data``
(row padding in ``step`` becomes an array stride, big-endian data a byte-swapped dtype). Such a
view is read-only when the message buffer is (bytes), and keeps the message buffer alive.
"""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from hydranet_ros.io import image_files

__all__ = [
    "ImageRejected",
    "ENCODINGS",
    "image_to_numpy",
    "image_to_frame",
    "compressed_to_frame",
    "message_to_frame",
    "CONVERSION_ERROR",
    "image_fields",
]


class ImageRejected(ValueError):
    """A message that cannot be turned into an image.

    ``reason`` is a short, stable key (``unknown_encoding``, ``bad_step``, ...) that the node
    counts in its diagnostics; the message text says what exactly was wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class _Layout:
    """How one pixel of an encoding sits in memory."""

    dtype: np.dtype  # element type in native byte order; is_bigendian decides the real one
    channels: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize * self.channels


def _build_encodings() -> dict[str, _Layout]:
    table: dict[str, _Layout] = {}
    u8, u16 = np.dtype(np.uint8), np.dtype(np.uint16)
    for name, dtype, channels in (
        ("rgb8", u8, 3), ("bgr8", u8, 3), ("rgba8", u8, 4), ("bgra8", u8, 4),
        ("rgb16", u16, 3), ("bgr16", u16, 3), ("rgba16", u16, 4), ("bgra16", u16, 4),
        ("mono8", u8, 1), ("mono16", u16, 1),
        # Packed 4:2:2: two bytes per pixel, (U|V, Y) for UYVY and (Y, U|V) for YUYV.
        ("yuv422", u8, 2), ("uyvy", u8, 2), ("yuv422_yuy2", u8, 2), ("yuyv", u8, 2),
    ):
        table[name] = _Layout(dtype, channels)
    for pattern in ("rggb", "bggr", "gbrg", "grbg"):
        table[f"bayer_{pattern}8"] = _Layout(u8, 1)
        table[f"bayer_{pattern}16"] = _Layout(u16, 1)
    # OpenCV-style generic types (8UC3 and friends), as sensor_msgs/image_encodings defines them.
    for prefix, dtype in (("8U", np.uint8), ("8S", np.int8), ("16U", np.uint16), ("16S", np.int16),
                          ("32S", np.int32), ("32F", np.float32), ("64F", np.float64)):
        for channels in (1, 2, 3, 4):
            table[f"{prefix}C{channels}"] = _Layout(np.dtype(dtype), channels)
    return table


_ENCODINGS = _build_encodings()
ENCODINGS: frozenset[str] = frozenset(_ENCODINGS)

# Bayer codes by the colours of the top-left 2x2 tile as ROS names them. OpenCV's older names
# (COLOR_BayerBG2RGB for an RGGB sensor) describe the tile one pixel further in; the explicit
# names below say the same thing as ROS does, which the tests check on a synthetic mosaic.
_BAYER_TO_RGB = {
    "rggb": cv2.COLOR_BayerRGGB2RGB,
    "bggr": cv2.COLOR_BayerBGGR2RGB,
    "gbrg": cv2.COLOR_BayerGBRG2RGB,
    "grbg": cv2.COLOR_BayerGRBG2RGB,
}
_YUV_TO_RGB = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}


def _layout(encoding: Any) -> _Layout:
    if not isinstance(encoding, str):
        raise ImageRejected("unknown_encoding", f"image encoding must be a string, got {encoding!r}")
    layout = _ENCODINGS.get(encoding) or _ENCODINGS.get(encoding.lower())
    if layout is None:
        raise ImageRejected("unknown_encoding", f"unsupported image encoding {encoding!r}")
    return layout


def _byte_buffer(data: Any) -> np.ndarray:
    """``msg.data`` as a 1-D uint8 array, sharing memory with it whenever it has a buffer."""
    if isinstance(data, np.ndarray):  # rosbags hands out uint8 arrays
        if data.dtype.itemsize != 1 or not data.flags.c_contiguous:
            data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):  # some message builders fill a list of ints: must copy
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (OverflowError, ValueError, TypeError) as exc:
            raise ImageRejected("bad_data", f"image data is not a sequence of bytes: {exc}") from None
    if isinstance(data, str):
        raise ImageRejected("bad_data", "image data is a str, expected bytes")
    # bytes, bytearray, memoryview, array.array('B') (rclpy): the buffer protocol, no copy.
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise ImageRejected("bad_data", f"image data of type {type(data).__name__} has no byte buffer: {exc}") from None


def _dimension(msg: Any, name: str) -> int:
    value = getattr(msg, name)
    try:
        # operator.index, not int(): a float 3.5 or a string "64" is a malformed message, not a size
        # to round (and int(inf) would raise OverflowError past this check).
        number = operator.index(value)
    except TypeError:
        raise ImageRejected("bad_size", f"image {name} is not an integer: {value!r}") from None
    if number < 0:
        raise ImageRejected("bad_size", f"image {name} is negative: {number}")
    return number


def image_to_numpy(msg: Any) -> np.ndarray:
    """The pixels of a sensor_msgs/Image: HxW for one channel, HxWxC otherwise.

    The dtype is the encoding's (uint8 for rgb8, '>u2' for big-endian mono16, float32 for 32FC1;
    yuv422 gives HxWx2 uint8). The result is a view on ``msg.data`` unless the data is a Python
    list. Raises ImageRejected when the fields do not describe a valid image.
    """
    layout = _layout(msg.encoding)
    height, width, step = _dimension(msg, "height"), _dimension(msg, "width"), _dimension(msg, "step")
    if height == 0 or width == 0:
        raise ImageRejected("empty", f"image has no pixels ({width}x{height})")
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise ImageRejected(
            "bad_step", f"step {step} is shorter than a row of {width} {msg.encoding} pixels ({row_bytes} bytes)"
        )
    buffer = _byte_buffer(msg.data)
    if buffer.size == 0:
        raise ImageRejected("empty", f"{width}x{height} image has no data")
    if buffer.size < step * height:
        raise ImageRejected(
            "size_mismatch", f"data holds {buffer.size} bytes, step {step} x height {height} needs {step * height}"
        )
    dtype = layout.dtype
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    itemsize = dtype.itemsize
    if layout.channels == 1:
        shape: tuple[int, ...] = (height, width)
        strides: tuple[int, ...] = (step, itemsize)
    else:
        shape = (height, width, layout.channels)
        strides = (step, itemsize * layout.channels, itemsize)
    # A strided view on the byte buffer: row padding is skipped by the row stride, nothing moves.
    view = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=0, strides=strides)
    if not buffer.flags.writeable:
        view.flags.writeable = False
    return view


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """16-bit camera data to 8 bits by keeping the high byte (what a display would show)."""
    return (pixels >> 8).astype(np.uint8)


def _check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    try:
        image_files.check_pixels(width, height, max_pixels)
    except image_files.BadImage as exc:
        raise ImageRejected("too_large", str(exc)) from None


def image_to_frame(msg: Any, *, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """A camera frame as HxWx3 uint8 plus its colour order, 'rgb' or 'bgr'.

    rgb8/bgr8 come back as views on the message buffer, rgba8/bgra8 as views without the alpha
    plane (not contiguous); mono, 16-bit, YUV 4:2:2 and Bayer data are converted (a new array).
    Raises ImageRejected naming the reason for anything that is not a usable camera frame.
    """
    layout = _layout(msg.encoding)
    encoding = msg.encoding if msg.encoding in _ENCODINGS else msg.encoding.lower()
    # Refuse before touching the data, so a huge message costs nothing.
    _check_pixels(_dimension(msg, "width"), _dimension(msg, "height"), max_pixels)
    pixels = image_to_numpy(msg)
    if encoding in ("rgb8", "bgr8", "8UC3"):
        return pixels, "rgb" if encoding == "rgb8" else "bgr"
    if encoding in ("rgba8", "bgra8", "8UC4"):
        return pixels[..., :3], "rgb" if encoding == "rgba8" else "bgr"
    if encoding in ("rgb16", "bgr16", "16UC3", "rgba16", "bgra16", "16UC4"):
        return _to_uint8(pixels[..., :3]), "rgb" if encoding.startswith("rgb") else "bgr"
    if encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB), "rgb"
    if encoding == "mono16":
        return cv2.cvtColor(_to_uint8(pixels), cv2.COLOR_GRAY2RGB), "rgb"
    if encoding in _YUV_TO_RGB:
        if pixels.shape[1] % 2:
            raise ImageRejected("odd_width", f"{encoding} packs pixel pairs; width {pixels.shape[1]} is odd")
        return cv2.cvtColor(pixels, _YUV_TO_RGB[encoding]), "rgb"
    if encoding.startswith("bayer_"):
        if pixels.shape[0] < 2 or pixels.shape[1] < 2:
            raise ImageRejected("bad_size", f"a Bayer mosaic needs at least 2x2 pixels, got {pixels.shape[1]}x{pixels.shape[0]}")
        mosaic = pixels if layout.dtype.itemsize == 1 else _to_uint8(pixels)
        return cv2.cvtColor(mosaic, _BAYER_TO_RGB[encoding[6:10]]), "rgb"
    raise ImageRejected("unsupported_encoding", f"{encoding} is not a camera colour format")


# -- CompressedImage ------------------------------------------------------------------------------

def _compressed_colour_order(format_string: str) -> str:
    """image_transport writes e.g. 'rgb8; jpeg compressed bgr8': the last word is what was compressed.

    OpenCV decodes into BGR channel order, which is right when BGR was compressed (the usual
    case: image_transport converts rgb8 to bgr8 first). When RGB bytes were compressed as they
    were, the decoded channels are in RGB order.
    """
    words = format_string.lower().replace(";", " ").split()
    if "compressed" in words:
        after = words[words.index("compressed") + 1 :]
        if after and after[0].startswith("rgb"):
            return "rgb"
    return "bgr"


def compressed_to_frame(msg: Any, *, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """Decode a sensor_msgs/CompressedImage (JPEG or PNG) into HxWx3 uint8 plus colour order.

    The container is checked before OpenCV sees it (hydranet_ros/io/image_files.py): an oversized
    image (a decompression bomb) is refused from its header, a damaged one without decoding.
    """
    format_string = str(getattr(msg, "format", "") or "")
    if "compresseddepth" in format_string.lower():
        raise ImageRejected("unsupported_format", f"{format_string!r} is a depth image, not a camera frame")
    data = _byte_buffer(msg.data)
    if data.size == 0:
        raise ImageRejected("empty", "compressed image has no data")
    try:
        frame = image_files.decode(data, max_pixels)
    except image_files.BadImage as exc:
        if exc.reason == "too_large":
            raise ImageRejected("too_large", str(exc)) from None
        raise ImageRejected("bad_compressed", f"compressed image is not a readable JPEG or PNG: {exc} "
                                              f"(format {format_string!r})") from None
    return frame, _compressed_colour_order(format_string)


# Reason for a message that broke the conversion in a way no check above foresaw.
CONVERSION_ERROR = "conversion_error"


def message_to_frame(msg: Any, *, compressed: bool, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """``compressed_to_frame`` or ``image_to_frame``, as the one boundary every message crosses.

    The checks above name every fault they know; whatever else a malformed message provokes
    (an OpenCV assertion, a numpy error on an absurd field) becomes ImageRejected with reason
    ``conversion_error`` too, so a caller counts it like any other bad message instead of dying.
    """
    convert = compressed_to_frame if compressed else image_to_frame
    try:
        return convert(msg, max_pixels=max_pixels)
    except ImageRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - a message must never take the node or the replay down
        raise ImageRejected(CONVERSION_ERROR, f"{type(exc).__name__}: {exc}") from None


# -- numpy -> message fields ----------------------------------------------------------------------


def image_fields(pixels: np.ndarray, encoding: str) -> dict[str, Any]:
    """The sensor_msgs/Image fields (all but header) for ``pixels`` in ``encoding``.

    Use as ``Image(header=header, **image_fields(labels, 'mono8'))``. ``data`` is a 1-D uint8
    array sharing memory with ``pixels`` when they are C-contiguous (otherwise one copy); rclpy
    wants bytes or array.array there, which the ROS node converts. Byte order is kept: a '>f4'
    array gives is_bigendian=1. ``image_to_numpy`` of the result gives back ``pixels`` exactly.
    """
    layout = _ENCODINGS.get(encoding)
    if layout is None:
        raise ValueError(f"unsupported image encoding {encoding!r}")
    if pixels.ndim == 2:
        channels = 1
    elif pixels.ndim == 3:
        channels = pixels.shape[2]
    else:
        raise ValueError(f"an image is HxW or HxWxC, got shape {pixels.shape}")
    if channels != layout.channels or pixels.dtype.kind != layout.dtype.kind or pixels.dtype.itemsize != layout.dtype.itemsize:
        raise ValueError(
            f"{encoding} needs {layout.channels} channel(s) of {layout.dtype.name}, got shape {pixels.shape} of {pixels.dtype}"
        )
    height, width = pixels.shape[:2]
    contiguous = np.ascontiguousarray(pixels)
    order = contiguous.dtype.byteorder
    big_endian = order == ">" or (order == "=" and sys.byteorder == "big")
    return {
        "height": int(height),
        "width": int(width),
        "encoding": encoding,
        "is_bigendian": int(big_endian),
        "step": int(width * layout.bytes_per_pixel),
        "data": contiguous.reshape(-1).view(np.uint8),
    }

