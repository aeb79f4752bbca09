"""Edits inside a JPEG or PNG container: chunk and segment lengths, names, order, scans, fill bytes.

Random byte flips rarely hit the few header bytes a decoder trusts; these edits aim at them on
purpose (a PNG chunk length of 0xFFFFFFFF, a JPEG cut inside its scan with the end marker put
back, a second frame header, a thousand tiny IDAT chunks, ...). Used by adversarial_messages.py
(the CI fuzz test and tools/fuzz_node.py) and by the hand-written cases in test_image_files.py.

Each mutation takes a ``Draw`` (adversarial_messages) and the bytes, and returns the new bytes,
a short description, and whether the result is still a valid file that must decode (a harmless
edit: an ancillary chunk added, IDAT split differently, a comment, fill bytes, padding after
the end).
"""

from __future__ import annotations

import functools
import re
import struct
import zlib
from typing import Any, Callable

from hydranet_ros.io.image_files import PNG_MAX_CHUNKS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_EOI = b"\xff\xd9"
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # a marker: not stuffing (FF 00) nor a restart (FF D0-D7)

# -- PNG ------------------------------------------------------------------------------------------


def png_chunk(kind: bytes, payload: bytes, *, crc: int | None = None) -> bytes:
    """One chunk: length, name, payload and its CRC (the right one unless ``crc`` is given)."""
    checksum = zlib.crc32(kind + payload) if crc is None else crc
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", checksum & 0xFFFFFFFF)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """(name, payload) of every chunk of a well-formed PNG; None if the bytes are not one."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    chunks, position = [], 8
    while position + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if position + 12 + length > len(data):
            return None
        chunks.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
        if kind == b"IEND":
            return chunks
    return None


def png_build(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return PNG_SIGNATURE + b"".join(png_chunk(kind, payload) for kind, payload in chunks)


def _png_with_length(draw: Any, data: bytes, chunks: list) -> tuple[bytes, str, bool]:
    """A chunk's length field forged (the OpenCV 5.0 stall: 0xFFFFFFFF on a 4x4 image's IDAT)."""
    index = draw.integer(0, len(chunks) - 1)
    kind, payload = chunks[index]
    forged = draw.choice((0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, len(payload) + 1, max(0, len(payload) - 1), 0,
                          draw.integer(0, 2**32 - 1)))
    position = 8 + sum(12 + len(p) for _, p in chunks[:index])
    return data[:position] + struct.pack(">I", forged) + data[position + 4 :], f"{kind.decode('latin-1')}={forged:#x}", False


def _png_rename(draw: Any, data: bytes, chunks: list) -> tuple[bytes, str, bool]:
    index = draw.integer(0, len(chunks) - 1)
    name = draw.choice((b"ABCD", b"abcd", b"iDAT", b"IDAt", b"\x00\x01\x02\x03", b"IHDR", b"IEND", b"PLTE",
                        draw.raw(4)))
    chunks = list(chunks)
    chunks[index] = (name, chunks[index][1])
    return png_build(chunks), f"{chunks[index][0]!r}", False


def _png_drop(draw: Any, data: bytes, chunks: list) -> tuple[bytes, str, bool]:
    index = draw.integer(0, len(chunks) - 1)
    return png_build(chunks[:index] + chunks[index + 1 :]), chunks[index][0].decode("latin-1"), False


def _png_duplicate(draw: Any, data: bytes, chunks: list) -> tuple[bytes, str, bool]:
    index = draw.integer(0, len(chunks) - 1)
    return png_build(chunks[: index + 1] + chunks[index:]), chunks[index][0].decode("latin-1"), False


def _png_ancillary(draw: Any, data: bytes, chunks: list) -> tuple[bytes, str, bool]:
    """A valid ancillary chunk right after IHDR or right before IEND: text, profile, animation
    control, EXIF, a private chunk. Decoders skip what they do not use: still a valid picture."""
    kind = draw.choice((b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"gAMA", b"acTL", b"fcTL", b"eXIf", b"prVt", b"sBIT",
                        b"tIME", b"pHYs"))
    if kind == b"zTXt":
        payload = _text_bomb()
    elif kind == b"acTL":
        payload = struct.pack(">II", draw.choice((1, 2**31 - 1, 0)), 0)
    elif kind == b"fcTL":
        payload = struct.pack(">IIIIIHHBB", 0, 2**31 - 1, 2**31 - 1, 0, 0, 1, 1, 0, 0)
    else:
        payload = draw.raw(draw.integer(0, 64))
    at = 1 if draw.integer(0, 1) else len(chunks) - 1
    return png_build(chunks[:at] + [(kind, payload)] + chunks[at:]), kind.decode("latin-1"), True


@functools.lru_cache(maxsize=1)
def _text_bomb() -> bytes:
    """A zTXt payload that inflates to 16 MiB: a bomb for a reader that inflates text chunks."""
    return b"bomb\x00\x00" + zlib.compress(bytes(1 << 24), 9)


def _image_data(chunks: list) -> tuple[int, bytes, list] | None:
    """(index of the first IDAT, the compressed stream, the chunks after it that are not IDAT), or
    None when an earlier edit left no IDAT."""
    first = next((i for i, (k, _) in enumerate(chunks) if k == b"IDAT"), None)
    if first is None:
        return None
    return first, b"".join(p for k, p in chunks if k == b"IDAT"), [c for c in chunks[first:] if c[0] != b"IDAT"]


def _png_split_data(draw: Any, data: bytes, chunks: list) -> tuple[bytes, str, bool]:
    """The same compressed stream in IDAT chunks of another size (1 byte each at worst): valid
    unless that makes more chunks than the checker's cap (image_files.PNG_MAX_CHUNKS)."""
    if _image_data(chunks) is None:
        return data, "no IDAT", False
    first, stream, rest = _image_data(chunks)
    size = draw.choice((1, 7, 100, 4096))
    pieces = [(b"IDAT", stream[i : i + size]) for i in range(0, len(stream), size)] or [(b"IDAT", b"")]
    built = chunks[:first] + pieces + rest
    return png_build(built), f"{size}-byte IDATs", len(built) <= PNG_MAX_CHUNKS


def _png_header_fields(draw: Any, data: bytes, chunks: list) -> tuple[bytes, str, bool]:
    if chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        return data, "no IHDR", False
    header = bytearray(chunks[0][1])
    field = draw.choice(((8, "depth"), (9, "colour"), (10, "compression"), (11, "filter"), (12, "interlace")))
    header[field[0]] = draw.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 255))
    return png_build([(b"IHDR", bytes(header))] + chunks[1:]), f"{field[1]}={header[field[0]]}", False


def _png_cut_data(draw: Any, data: bytes, chunks: list) -> tuple[bytes, str, bool]:
    """The compressed stream cut short, lengths and CRCs made consistent again."""
    if _image_data(chunks) is None:
        return data, "no IDAT", False
    first, stream, rest = _image_data(chunks)
    cut = stream[: draw.integer(0, max(0, len(stream) - 1))]
    return png_build(chunks[:first] + [(b"IDAT", cut)] + rest), f"{len(cut)}/{len(stream)} bytes", False


def _png_flip_data(draw: Any, data: bytes, chunks: list) -> tuple[bytes, str, bool]:
    """Bytes of the compressed stream changed, CRCs made consistent (only zlib can tell)."""
    if _image_data(chunks) is None or not _image_data(chunks)[1]:
        return data, "no IDAT", False
    first, compressed, rest = _image_data(chunks)
    stream = bytearray(compressed)
    for _ in range(draw.integer(1, 8)):
        stream[draw.integer(0, len(stream) - 1)] = draw.integer(0, 255)
    return png_build(chunks[:first] + [(b"IDAT", bytes(stream))] + rest), "", False


def _png_bad_crc(draw: Any, data: bytes, chunks: list) -> tuple[bytes, str, bool]:
    index = draw.integer(0, len(chunks) - 1)
    kind, payload = chunks[index]
    broken = png_chunk(kind, payload, crc=zlib.crc32(kind + payload) ^ 0x5A5A)
    built = [png_chunk(k, p) for k, p in chunks]
    built[index] = broken
    return PNG_SIGNATURE + b"".join(built), kind.decode("latin-1"), False


PNG_MUTATIONS: dict[str, Callable] = {
    "png_chunk_length": _png_with_length, "png_chunk_name": _png_rename, "png_drop_chunk": _png_drop,
    "png_duplicate_chunk": _png_duplicate, "png_ancillary_chunk": _png_ancillary, "png_split_data": _png_split_data,
    "png_header_fields": _png_header_fields, "png_cut_data": _png_cut_data, "png_flip_data": _png_flip_data,
    "png_bad_crc": _png_bad_crc,
}

# -- JPEG -----------------------------------------------------------------------------------------


def jpeg_parts(data: bytes) -> tuple[list[bytes], bytes, bytes] | None:
    """(segments up to and including the first scan header, scan data, the rest from the marker
    that ends the scan) of a baseline or progressive JPEG; None if the bytes are not one."""
    if not data.startswith(b"\xff\xd8"):
        return None
    segments, position = [data[:2]], 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segments.append(data[position : position + 2 + length])
        position += 2 + length
        if marker == 0xDA:
            found = _SCAN_END.search(data, position)
            end = found.start() if found else len(data)
            return segments, data[position:end], data[end:]
    return None


def _jpeg_segment_length(draw: Any, data: bytes, parts: tuple) -> tuple[bytes, str, bool]:
    segments, scan, rest = parts
    index = draw.integer(1, len(segments) - 1)
    segment = segments[index]
    forged = draw.choice((0, 1, 2, 0xFFFF, len(segment) - 1, len(segment) + 1, draw.integer(0, 0xFFFF)))
    segments = list(segments)
    segments[index] = segment[:2] + struct.pack(">H", forged & 0xFFFF) + segment[4:]
    return b"".join(segments) + scan + rest, f"FF{segment[1]:02X}={forged}", False


def _jpeg_drop_segment(draw: Any, data: bytes, parts: tuple) -> tuple[bytes, str, bool]:
    segments, scan, rest = parts
    index = draw.integer(1, len(segments) - 1)
    return b"".join(segments[:index] + segments[index + 1 :]) + scan + rest, f"FF{segments[index][1]:02X}", False


def _jpeg_duplicate_segment(draw: Any, data: bytes, parts: tuple) -> tuple[bytes, str, bool]:
    segments, scan, rest = parts
    index = draw.integer(1, len(segments) - 1)
    return b"".join(segments[: index + 1] + segments[index:]) + scan + rest, f"FF{segments[index][1]:02X}", False


def _jpeg_cut_scan(draw: Any, data: bytes, parts: tuple) -> tuple[bytes, str, bool]:
    """The scan cut short and the end marker put back: looks complete to a structural check."""
    segments, scan, rest = parts
    keep = draw.integer(0, max(0, len(scan) - 1))
    return b"".join(segments) + scan[:keep] + JPEG_EOI, f"{keep}/{len(scan)} scan bytes", False


def _jpeg_fill_bytes(draw: Any, data: bytes, parts: tuple) -> tuple[bytes, str, bool]:
    """0xFF fill bytes before a marker (allowed by the standard): still valid."""
    segments, scan, rest = parts
    index = draw.integer(1, len(segments) - 1)
    segments = list(segments)
    count = draw.integer(1, 8)
    segments[index] = b"\xff" * count + segments[index]
    return b"".join(segments) + scan + rest, f"{count} before FF{segments[index][count + 1]:02X}", True


def _jpeg_comment(draw: Any, data: bytes, parts: tuple) -> tuple[bytes, str, bool]:
    segments, scan, rest = parts
    text = draw.raw(draw.integer(0, 200))
    index = draw.integer(1, len(segments) - 1)
    comment = b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text
    return b"".join(segments[:index] + [comment] + segments[index:]) + scan + rest, f"{len(text)} bytes", True


def _jpeg_restart_in_scan(draw: Any, data: bytes, parts: tuple) -> tuple[bytes, str, bool]:
    segments, scan, rest = parts
    at = draw.integer(0, len(scan))
    return b"".join(segments) + scan[:at] + bytes([0xFF, 0xD0 + draw.integer(0, 7)]) + scan[at:] + rest, "", False


def _jpeg_many_scans(draw: Any, data: bytes, parts: tuple) -> tuple[bytes, str, bool]:
    """The scan repeated: each scan is one more pass over the picture for the decoder."""
    segments, scan, rest = parts
    count = draw.choice((2, 70, 500))
    return b"".join(segments[:-1]) + (segments[-1] + scan) * count + rest, f"{count} scans", False


def _jpeg_frame_fields(draw: Any, data: bytes, parts: tuple) -> tuple[bytes, str, bool]:
    """Precision, component count, sampling factors or table ids of the frame header changed."""
    segments, scan, rest = parts
    index = next((i for i, s in enumerate(segments) if s[1] in (0xC0, 0xC1, 0xC2)), None)
    if index is None:
        return data, "no frame header", False
    frame = bytearray(segments[index])
    offset = draw.choice((4, 9, 11, 12))  # precision, component count, first sampling factors, first table
    frame[offset] = draw.choice((0, 1, 3, 4, 8, 12, 16, 0x44, 0x11, 0xFF))
    segments = list(segments)
    segments[index] = bytes(frame)
    return b"".join(segments) + scan + rest, f"byte {offset}={frame[offset]}", False


def _trailing_bytes(draw: Any, data: bytes, parts: Any) -> tuple[bytes, str, bool]:
    """Bytes after the end (drivers that pad the buffer, or send it recycled): still valid."""
    tail = draw.choice((bytes(draw.integer(1, 5000)), draw.raw(draw.integer(1, 600)), b"\xff\xd9" * 3))
    return data + tail, f"{len(tail)} bytes", True


JPEG_MUTATIONS: dict[str, Callable] = {
    "jpeg_segment_length": _jpeg_segment_length, "jpeg_drop_segment": _jpeg_drop_segment,
    "jpeg_duplicate_segment": _jpeg_duplicate_segment, "jpeg_cut_scan": _jpeg_cut_scan,
    "jpeg_fill_bytes": _jpeg_fill_bytes, "jpeg_comment": _jpeg_comment, "jpeg_restart_in_scan": _jpeg_restart_in_scan,
    "jpeg_many_scans": _jpeg_many_scans, "jpeg_frame_fields": _jpeg_frame_fields,
}


def mutate_container(draw: Any, data: bytes) -> tuple[bytes, str, bool]:
    """One container edit chosen for what ``data`` is: (bytes, 'name:detail', still valid?).
    Bytes that no longer parse as either container get trailing bytes (the one edit that needs no parse)."""
    chunks = png_chunks(data)
    if chunks:
        name = draw.choice(sorted(PNG_MUTATIONS) + ["trailing_bytes"])
        edit, parsed = (PNG_MUTATIONS.get(name), chunks)
    else:
        parts = jpeg_parts(data)
        names = sorted(JPEG_MUTATIONS) + ["trailing_bytes"] if parts else ["trailing_bytes"]
        name = draw.choice(names)
        edit, parsed = (JPEG_MUTATIONS.get(name), parts)
    if edit is None:
        edit = _trailing_bytes
    mutated, detail, valid = edit(draw, data, parsed)
    return mutated, f"{name}:{detail}" if detail else name, valid
