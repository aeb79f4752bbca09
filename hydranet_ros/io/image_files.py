"""Image bytes checked before a decoder sees them, and decoded within the pixel limit.

OpenCV's decoders trust the container. A 79-byte PNG whose header says 4x4 but whose IDAT length
field says 4 GiB makes OpenCV 5.0 allocate 4 GiB and spend 15 s before it refuses the file; a
JPEG cut short with its end marker put back decodes as a picture two thirds grey, without an
error. So the bytes are walked first, in Python but touching only the container (a few dozen
chunk or segment headers, one vectorised search of the scan data):

- PNG: the signature, IHDR (size, bit depth, colour type) and every chunk length against the
  bytes that follow, up to IEND. The decoder is given only the chunks the pixels need (IHDR,
  PLTE, IDAT, IEND): ancillary chunks (text, colour profiles, animation control) cannot change
  the decoded BGR pixels, but each is one more parser a damaged file could reach.
- JPEG: every segment length, one frame header, the scans ending in a marker, the end-of-image
  marker, enough scan data for the declared size, and scans that together code every
  coefficient of every component to its last bit (a progressive file cut short lacks its last
  scans). Bytes after the end marker (padding some drivers add) are not given to the decoder.
- The declared width x height against the limit, before any pixel is decoded.

After decoding, a JPEG with a corner of exactly libjpeg's fill grey is decoded once more with filler bytes before its end marker: a complete scan ignores them, a
scan cut short decodes them into the missing blocks, so a difference means the frame is
incomplete. Other file formats (BMP, TIFF, WebP, PNM) are read by `hydranet infer` only; their
size comes from the header, so the pixel limit applies to them too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["BadImage", "Checked", "check_png", "check_jpeg", "header_size", "decode", "decode_file",
           "PNG_SIGNATURE", "JPEG_START"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_START = b"\xff\xd8\xff"

# PNG: the chunks the decoded pixels depend on; allowed bit depths per colour type (PNG spec 11.2.2).
_PNG_PIXEL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_MAX_CHUNK = 2**31 - 1  # the PNG spec's limit for a length field
# libpng writes 8 KiB IDAT chunks: a 3840x2160 16-bit RGBA PNG of pure noise (66 MB) has 8,100.
# The walk costs about 1 us a chunk, so the cap also bounds a hostile file's cost (~20 ms).
PNG_MAX_CHUNKS = 1 << 14

# JPEG: markers that start a frame (C4 DHT, C8 JPG and CC DAC do not), which of them code DCT
# blocks with Huffman tables (at least one bit per 8x8 block), and the lossless ones (no DCT).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_HUFFMAN_DCT = frozenset({0xC0, 0xC1, 0xC2})
_JPEG_LOSSLESS = frozenset({0xC3, 0xC7, 0xCB, 0xCF})
_JPEG_RESTART = range(0xD0, 0xD8)
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9
# Real files have tens of segments (progressive ones a few more: a Huffman table per scan);
# the caps keep a hostile file's walk short.
JPEG_MAX_SEGMENTS = 1024
JPEG_MAX_SCANS = 64  # libjpeg's progressive scripts use about 10; each scan costs a pass over the picture
_JPEG_MAX_FILL = 64  # 0xFF fill bytes allowed before a marker
# Decoded over a complete scan's end it changes nothing; over a cut one it becomes coefficients.
_JPEG_FILLER = b"\x55\xaa" * 32
_LIBJPEG_FILL_GREY = 128  # what libjpeg decodes the zeroed blocks of missing data into


class BadImage(ValueError):
    """Bytes that cannot become a frame. ``reason``: 'too_large' (more pixels than the limit, known
    from the header) or 'bad_compressed' (a damaged or unknown container, or the decoder refused it)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _bad(message: str) -> BadImage:
    return BadImage("bad_compressed", message)


def check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise BadImage("too_large", f"{width}x{height} = {width * height} pixels is more than the limit of {max_pixels}")


@dataclass(frozen=True)
class Checked:
    """A container that passed the walk: the bytes to give the decoder and what they declare."""

    data: np.ndarray  # 1-D uint8: the checked part (trailing padding and ancillary chunks left out)
    width: int
    height: int
    kind: str  # 'png' or 'jpeg'


def _as_array(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def check_png(data: bytes | np.ndarray, max_pixels: int | None = None) -> Checked:
    """Walk a PNG's chunks; BadImage names the first thing wrong."""
    array = _as_array(data)
    raw = memoryview(array)  # struct reads from the message buffer itself: no copy
    size = len(raw)
    if bytes(raw[:8]) != PNG_SIGNATURE:
        raise _bad("not a PNG (no PNG signature)")
    if size < 33:
        raise _bad(f"PNG of {size} bytes ends inside its header (truncated)")
    length, kind = struct.unpack_from(">I4s", raw, 8)
    if kind != b"IHDR" or length != 13:
        raise _bad(f"PNG does not start with a 13-byte IHDR chunk (found {kind!r}, {length} bytes)")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(">IIBBBBB", raw, 16)
    if not (0 < width <= _PNG_MAX_CHUNK and 0 < height <= _PNG_MAX_CHUNK):
        raise _bad(f"PNG header gives a {width}x{height} image")
    check_pixels(width, height, max_pixels)
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise _bad(f"PNG header is invalid (bit depth {depth}, colour type {colour}, compression {compression}, "
                   f"filter {filtering}, interlace {interlace})")
    keep = [(0, 33)]  # (start, end) byte ranges handed to the decoder: signature and IHDR first
    position, chunks, image_data, palette, data_ended = 33, 1, False, False, False
    while True:
        if position + 12 > size:
            raise _bad("PNG ends without an IEND chunk (truncated)")
        length, kind = struct.unpack_from(">I4s", raw, position)
        end = position + 12 + length
        if length > _PNG_MAX_CHUNK or end > size:
            raise _bad(f"PNG chunk {kind!r} at byte {position} claims {length} bytes, {size - position - 12} follow "
                       "(truncated or damaged)")
        chunks += 1
        if chunks > PNG_MAX_CHUNKS:
            raise _bad(f"PNG has more than {PNG_MAX_CHUNKS} chunks")
        if not kind.isalpha():
            raise _bad(f"PNG chunk at byte {position} has no valid name ({kind!r})")
        if kind[:1].isupper() and kind not in _PNG_PIXEL_CHUNKS:
            raise _bad(f"PNG holds an unknown critical chunk {kind!r}")
        if kind == b"IHDR":
            raise _bad(f"PNG has a second IHDR chunk at byte {position}")
        if kind == b"IDAT":
            if data_ended:
                raise _bad(f"PNG image data is split by other chunks (IDAT at byte {position})")
            image_data = True
        elif image_data:
            data_ended = True
        if kind == b"PLTE":
            if palette or image_data:
                raise _bad(f"PNG palette (PLTE) at byte {position} is repeated or after the image data")
            palette = True
        if kind in _PNG_PIXEL_CHUNKS:
            if keep[-1][1] == position:
                keep[-1] = (keep[-1][0], end)  # adjacent chunks: one range
            else:
                keep.append((position, end))
        if kind == b"IEND":
            break
        position = end
    if not image_data:
        raise _bad("PNG has no image data (no IDAT chunk)")
    if colour == 3 and not palette:
        raise _bad("palette PNG without a palette (PLTE chunk)")
    # A copy only when chunks were left out; else a view up to IEND (trailing padding dropped).
    checked = array[: keep[0][1]] if len(keep) == 1 else np.concatenate([array[a:b] for a, b in keep])
    return Checked(checked, width, height, "png")


def _marker_positions(array: np.ndarray) -> np.ndarray:
    """Offsets of every 0xFF that starts a marker a scan can end at: not stuffing (FF 00), not fill
    (FF FF), not a restart marker (FF D0-D7), which all occur inside scan data."""
    ff = np.flatnonzero(array[:-1] == 0xFF)
    following = array[ff + 1]
    ends = (following != 0x00) & (following != 0xFF) & ((following < 0xD0) | (following > 0xD7))
    return ff[ends]


def check_jpeg(data: bytes | np.ndarray, max_pixels: int | None = None) -> Checked:
    """Walk a JPEG's segments up to its end-of-image marker; BadImage names the first thing wrong."""
    array = _as_array(data)
    raw = memoryview(array)
    size = len(raw)
    if bytes(raw[:3]) != JPEG_START:
        raise _bad("not a JPEG (no start-of-image marker)")
    position, segments, scans, scan_bytes = 2, 0, 0, 0
    frame: tuple[int, int, int] | None = None  # (marker, width, height)
    coded: dict[int, bytearray] = {}
    markers: np.ndarray | None = None  # found on the first scan
    while True:
        segments += 1
        if segments > JPEG_MAX_SEGMENTS:
            raise _bad(f"JPEG has more than {JPEG_MAX_SEGMENTS} segments")
        fill = 0
        while position + 1 < size and raw[position] == 0xFF and raw[position + 1] == 0xFF:
            position, fill = position + 1, fill + 1
            if fill > _JPEG_MAX_FILL:
                raise _bad(f"JPEG has more than {_JPEG_MAX_FILL} fill bytes at byte {position}")
        if position + 1 >= size:
            raise _bad("JPEG is truncated (no end-of-image marker)")
        if raw[position] != 0xFF:
            raise _bad(f"JPEG segment marker missing at byte {position}")
        marker, position = raw[position + 1], position + 2
        if marker == _JPEG_EOI:
            if frame is None or not scans:
                raise _bad("JPEG ends before its image data")
            break
        if marker in _JPEG_RESTART or marker == 0x01:
            continue  # no length field
        if marker in (0x00, 0xD8):
            raise _bad(f"JPEG holds a stray marker FF{marker:02X} at byte {position - 2}")
        if position + 2 > size:
            raise _bad("JPEG is truncated (inside a segment header)")
        length = struct.unpack_from(">H", raw, position)[0]
        if length < 2 or position + length > size:
            raise _bad(f"JPEG segment FF{marker:02X} at byte {position - 2} claims {length} bytes, "
                       f"{size - position} follow (truncated or damaged)")
        if marker in _JPEG_SOF:
            if frame is not None:
                raise _bad(f"JPEG has a second frame header at byte {position - 2}")
            if length < 8:
                raise _bad(f"JPEG frame header of {length} bytes")
            height, width, components = struct.unpack_from(">HHB", raw, position + 3)
            if width == 0 or height == 0:
                raise _bad(f"JPEG header gives a {width}x{height} image")
            check_pixels(width, height, max_pixels)
            if components not in (1, 3, 4) or length != 8 + 3 * components:
                raise _bad(f"JPEG frame header for {components} components is {length} bytes")
            frame = (marker, width, height)
            # Per component: the lowest bit decoded so far of each of its 64 coefficients (9: none).
            coded = {raw[position + 8 + 3 * i]: bytearray([9] * 64) for i in range(components)}
        elif marker == _JPEG_SOS:
            if frame is None:
                raise _bad("JPEG scan before its frame header")
            scans += 1
            if scans > JPEG_MAX_SCANS:
                raise _bad(f"JPEG has more than {JPEG_MAX_SCANS} scans")
            count = raw[position + 2] if length > 2 else 0
            if not 1 <= count <= 4 or length != 6 + 2 * count:
                raise _bad(f"JPEG scan header for {count} components is {length} bytes")
            # Spectral selection (first..last coefficient) and the low bit this scan codes down to.
            first, last, bits = raw[position + 3 + 2 * count : position + 6 + 2 * count]
            low_bit = bits & 0x0F
            for component in (raw[position + 3 + 2 * i] for i in range(count)):
                if component not in coded:
                    raise _bad(f"JPEG scan codes component {component}, which its frame header does not list")
                band = coded[component][first : last + 1]
                coded[component][first : last + 1] = bytes(min(bit, low_bit) for bit in band)
            # The scan's coded data runs up to the next marker that is not part of it.
            if markers is None:
                markers = _marker_positions(array)
            start = position + length
            found = int(np.searchsorted(markers, start))
            if found == markers.size:
                raise _bad("JPEG is truncated (its scan data runs to the end without an end-of-image marker)")
            scan_bytes += int(markers[found]) - start
            position = int(markers[found])
            continue
        position += length
    kind, width, height = frame
    # Huffman-coded DCT spends at least one bit per 8x8 block of the full-resolution component.
    blocks = -(-width // 8) * -(-height // 8)
    if kind in _JPEG_HUFFMAN_DCT and scan_bytes * 8 < blocks:
        raise _bad(f"JPEG is truncated ({scan_bytes} bytes of scan data cannot hold a {width}x{height} picture)")
    if kind not in _JPEG_LOSSLESS and any(any(bits) for bits in coded.values()):  # lossless has no coefficients
        raise _bad("JPEG lacks scans: not every coefficient is coded to its last bit (a progressive file cut short?)")
    return Checked(array[:position], width, height, "jpeg")


def _cut_short(checked: Checked, frame: np.ndarray) -> bool:
    """Whether the JPEG's scan data was cut short (and an end marker put back): see the module notes."""
    corners = frame[[0, 0, -1, -1], [0, -1, 0, -1]]
    if not (corners == _LIBJPEG_FILL_GREY).all(axis=-1).any():
        return False  # libjpeg fills the blocks it has no data for with grey, ending in a corner
    data = checked.data
    refilled = np.concatenate([data[:-2], np.frombuffer(_JPEG_FILLER, np.uint8), data[-2:]])
    again = cv2.imdecode(refilled, cv2.IMREAD_COLOR)
    return again is None or not np.array_equal(again, frame)


def _imdecode(data: np.ndarray) -> np.ndarray:
    try:
        frame = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV's assertions raise instead of returning None
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):
            raise BadImage("too_large", "more pixels than OpenCV decodes (2^30; the environment variable "
                                        "OPENCV_IO_MAX_IMAGE_PIXELS raises the limit)") from None
        raise _bad(f"decoder refused it ({str(exc).strip().splitlines()[-1][:200]})") from None
    if frame is None:
        raise _bad("decoder failed (corrupt or truncated data)")
    return frame


def check(data: bytes | np.ndarray, max_pixels: int | None = None) -> Checked:
    """check_png or check_jpeg, by the signature; BadImage for anything else."""
    array = _as_array(data)
    head = array[:8].tobytes()
    if head == PNG_SIGNATURE:
        return check_png(array, max_pixels)
    if head[:3] == JPEG_START:
        return check_jpeg(array, max_pixels)
    raise _bad(f"not a JPEG or PNG (starts with {head[:4]!r})")


def decode(data: bytes | np.ndarray, max_pixels: int | None = None) -> np.ndarray:
    """A JPEG or PNG as an HxWx3 uint8 BGR frame, checked first (see the module notes)."""
    checked = check(data, max_pixels)
    frame = _imdecode(checked.data)
    if checked.kind == "jpeg" and _cut_short(checked, frame):
        raise _bad("JPEG scan data is cut short (an end marker after a truncation)")
    return frame


# -- other image files (hydranet infer) -----------------------------------------------------------


def _tiff_size(raw: memoryview) -> tuple[int, int]:
    order = "<" if bytes(raw[:2]) == b"II" else ">"
    if struct.unpack_from(order + "H", raw, 2)[0] != 42:
        raise _bad("TIFF variant not supported (BigTIFF?)")
    offset = struct.unpack_from(order + "I", raw, 4)[0]
    if offset + 2 > len(raw):
        raise _bad("TIFF directory lies past the end of the file")
    count = struct.unpack_from(order + "H", raw, offset)[0]
    found: dict[int, int] = {}
    for entry in range(min(count, (len(raw) - offset - 2) // 12)):
        tag, kind = struct.unpack_from(order + "HH", raw, offset + 2 + 12 * entry)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            found[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), raw, offset + 2 + 12 * entry + 8)[0]
    if len(found) < 2:
        raise _bad("TIFF directory without image width and length")
    return found[256], found[257]


def _webp_size(raw: bytes) -> tuple[int, int]:
    chunk = raw[12:16]
    if chunk == b"VP8 " and raw[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", raw, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and raw[20] == 0x2F:
        bits = int.from_bytes(raw[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(raw[24:27], "little") + 1, int.from_bytes(raw[27:30], "little") + 1
    raise _bad(f"WebP without a known image chunk ({chunk!r})")


def _pnm_size(raw: bytes) -> tuple[int, int]:
    numbers: list[int] = []
    for line in raw[2:].split(b"\n"):
        for word in line.split(b"#", 1)[0].split():
            if not word.isdigit():
                raise _bad(f"PNM header holds {word[:10]!r} where a size belongs")
            numbers.append(int(word))
            if len(numbers) == 2:
                return numbers[0], numbers[1]
    raise _bad("PNM header without a size")


def header_size(data: bytes | np.ndarray) -> tuple[str, int, int]:
    """(format, width, height) from an image file's header, without decoding it."""
    array = _as_array(data)
    raw = array[:4096].tobytes()  # every size field but TIFF's sits within the first bytes
    try:
        if raw[:8] == PNG_SIGNATURE:
            return "png", *struct.unpack_from(">II", raw, 16)
        if raw[:3] == JPEG_START:
            checked = check_jpeg(array)
            return "jpeg", checked.width, checked.height
        if raw[:2] == b"BM":
            if struct.unpack_from("<I", raw, 14)[0] == 12:  # the old OS/2 header: 16-bit sizes
                return "bmp", *struct.unpack_from("<HH", raw, 18)
            width, height = struct.unpack_from("<ii", raw, 18)
            return "bmp", abs(width), abs(height)  # a negative height means rows stored top-down
        if raw[:4] in (b"II*\x00", b"MM\x00*"):
            return "tiff", *_tiff_size(memoryview(array))  # its directory may sit at the end
        if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
            return "webp", *_webp_size(raw)
        if raw[:1] == b"P" and raw[1:2] in b"123456" and len(raw) > 2:
            return "pnm", *_pnm_size(raw)
    except (struct.error, IndexError):
        raise _bad("image header is truncated") from None
    raise _bad(f"not an image format this tool reads (starts with {raw[:4]!r})")


def decode_file(data: bytes | np.ndarray, max_pixels: int | None = None) -> np.ndarray:
    """An image file's bytes (any format IMAGE_SUFFIXES lists) as HxWx3 uint8 BGR, within the limit:
    JPEG and PNG through ``decode``, the others after their header's size is checked."""
    array = _as_array(data)
    head = array[:8].tobytes()
    if head == PNG_SIGNATURE or head[:3] == JPEG_START:
        return decode(array, max_pixels)
    _, width, height = header_size(array)
    if width <= 0 or height <= 0:
        raise _bad(f"header gives a {width}x{height} image")
    check_pixels(width, height, max_pixels)
    return _imdecode(array)
