"""JPEG and PNG bytes are checked before OpenCV decodes them (hydranet_ros/io/image_files.py).

The decoder is replaced by one that fails the test wherever a case must be refused from the
container alone: a refusal that comes after decoding would still cost what the check exists to
avoid (OpenCV 5.0 spent 15 s and 4 GiB on an 85-byte PNG before refusing it).
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adversarial_messages import HypothesisDraw
from container_mutations import (
    JPEG_MUTATIONS, PNG_MUTATIONS, jpeg_parts, mutate_container, png_build, png_chunk, png_chunks,
)
from hydranet_ros.io import image_files
from hydranet_ros.io.image_files import BadImage
from support import KITTI_FRAME, read_rgb


def street(width: int = 160, height: int = 120) -> np.ndarray:
    """A street-like BGR picture: gradients and noise (no flat grey corners)."""
    rows, cols = np.mgrid[0:height, 0:width]
    picture = np.dstack([cols * 255 // width, rows * 255 // height, (rows + cols) % 256]).astype(np.int16)
    picture += np.random.default_rng(width).integers(-20, 20, picture.shape, dtype=np.int16)
    return np.clip(picture, 1, 254).astype(np.uint8)


def encoded(extension: str, picture: np.ndarray, *options: int) -> bytes:
    ok, data = cv2.imencode(extension, picture, list(options))
    assert ok
    return data.tobytes()


JPEGS = {
    "baseline": encoded(".jpg", street()),
    "progressive": encoded(".jpg", street(), cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "restart markers": encoded(".jpg", street(), cv2.IMWRITE_JPEG_RST_INTERVAL, 2),
    "grey": encoded(".jpg", street()[..., 0]),
}
PNG = encoded(".png", street())


def plain_decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@pytest.fixture
def no_decoder(monkeypatch):
    """cv2.imdecode fails the test if it is reached."""
    def reached(*_args, **_kwargs):
        raise AssertionError("the decoder was given bytes the container check should have refused")

    monkeypatch.setattr(cv2, "imdecode", reached)


def refusal(data: bytes, max_pixels: int | None = 3840 * 2160) -> BadImage:
    with pytest.raises(BadImage) as caught:
        image_files.decode(data, max_pixels)
    return caught.value


# -- PNG ------------------------------------------------------------------------------------------


def tiny_png_with_idat_length(length: int) -> bytes:
    """A valid 4x4 PNG whose IDAT chunk's length field is then forged (the issue's 0xFFFFFFFF)."""
    data = bytearray(encoded(".png", np.full((4, 4, 3), 90, np.uint8)))
    position = data.index(b"IDAT") - 4
    data[position : position + 4] = struct.pack(">I", length)
    return bytes(data)


def test_the_85_byte_png_claiming_a_4_gib_chunk_never_reaches_the_decoder(no_decoder):
    data = tiny_png_with_idat_length(0xFFFFFFFF)
    assert len(data) < 100
    problem = refusal(data)
    assert problem.reason == "bad_compressed" and "IDAT" in str(problem) and "4294967295" in str(problem)


@pytest.mark.parametrize("index", range(len(png_chunks(PNG))))
@pytest.mark.parametrize("forged", [0xFFFFFFFF, 0x80000000, 2**31 - 1, 10**6])
def test_every_chunk_length_is_checked_against_the_bytes_that_follow(no_decoder, index, forged):
    chunks = png_chunks(PNG)
    position = 8 + sum(12 + len(payload) for _, payload in chunks[:index])
    data = PNG[:position] + struct.pack(">I", forged) + PNG[position + 4 :]
    assert refusal(data).reason == "bad_compressed"


@pytest.mark.parametrize("name, chunks", [
    ("no IEND (truncated)", lambda c: c[:-1]),
    ("no IDAT", lambda c: [c[0], c[-1]]),
    ("second IHDR", lambda c: [c[0]] + c),
    ("unknown critical chunk", lambda c: [c[0], (b"ABCD", b"x")] + c[1:]),
    ("chunk name not letters", lambda c: [c[0], (b"a\x00c)", b"x")] + c[1:]),
    ("IDAT split by a text chunk", lambda c: [c[0], c[1], (b"tEXt", b"a\x00b"), *c[1:]]),
    ("palette PNG without PLTE", lambda c: [(b"IHDR", c[0][1][:9] + b"\x03" + c[0][1][10:])] + c[1:]),
    ("bit depth 3", lambda c: [(b"IHDR", c[0][1][:8] + b"\x03" + c[0][1][9:])] + c[1:]),
    ("zero width", lambda c: [(b"IHDR", bytes(4) + c[0][1][4:])] + c[1:]),
])
def test_png_structure_faults_are_refused_before_decoding(no_decoder, name, chunks):
    data = PNG[:8] + b"".join(png_chunk(k, p) for k, p in chunks(png_chunks(PNG)))
    assert refusal(data).reason == "bad_compressed", name


def test_png_too_many_chunks_is_refused_without_decoding(no_decoder):
    chunks = png_chunks(PNG)
    data = png_build([chunks[0]] + [(b"IDAT", b"")] * (image_files.PNG_MAX_CHUNKS + 1) + chunks[1:])
    assert "more than" in str(refusal(data))


@pytest.mark.parametrize("chunk", [
    (b"zTXt", b"bomb\x00\x00" + __import__("zlib").compress(bytes(1 << 24), 9)),  # inflates to 16 MiB
    (b"acTL", struct.pack(">II", 2**31 - 1, 0)),  # animation control claiming 2^31 frames
    (b"fcTL", struct.pack(">IIIIIHHBB", 0, 2**31 - 1, 2**31 - 1, 0, 0, 1, 1, 0, 0)),
    (b"eXIf", b"MM\x00*" + bytes(20)),
    (b"iCCP", b"p\x00\x00" + b"garbage"),
    (b"prVt", bytes(100)),
])
def test_ancillary_chunks_are_left_out_and_the_picture_is_the_same(chunk):
    chunks = png_chunks(PNG)
    for at in (1, len(chunks) - 1):  # after IHDR, before IEND
        data = png_build(chunks[:at] + [chunk] + chunks[at:])
        checked = image_files.check_png(data)
        assert chunk[0] not in checked.data.tobytes()
        np.testing.assert_array_equal(image_files.decode(data), street())


def test_png_padding_after_iend_is_accepted():
    for tail in (bytes(5000), np.random.default_rng(1).bytes(700)):
        np.testing.assert_array_equal(image_files.decode(PNG + tail), street())


def test_png_split_into_tiny_image_chunks_still_decodes():
    chunks = png_chunks(PNG)
    stream = b"".join(p for k, p in chunks if k == b"IDAT")
    data = png_build([chunks[0]] + [(b"IDAT", stream[i : i + 3]) for i in range(0, len(stream), 3)] + [chunks[-1]])
    np.testing.assert_array_equal(image_files.decode(data), street())


def test_declared_size_is_refused_from_the_header(no_decoder):
    data = PNG[:16] + struct.pack(">II", 5000, 5000) + PNG[24:]
    assert refusal(data).reason == "too_large"
    assert refusal(PNG, max_pixels=100).reason == "too_large"


# -- JPEG -----------------------------------------------------------------------------------------


def cut_with_end_marker(data: bytes, share: float) -> bytes:
    """The scan data cut to ``share`` of its length and the end marker put back."""
    segments, scan, _ = jpeg_parts(data)
    return b"".join(segments) + scan[: int(len(scan) * share)] + b"\xff\xd9"


@pytest.mark.parametrize("kind", sorted(JPEGS))
@pytest.mark.parametrize("share", [0.05, 0.33, 0.67, 0.9])
def test_jpeg_cut_short_with_its_end_marker_put_back_is_refused(kind, share):
    data = cut_with_end_marker(JPEGS[kind], share)
    assert plain_decode(data) is not None  # OpenCV alone takes it for a picture
    problem = refusal(data)
    assert problem.reason == "bad_compressed" and ("cut short" in str(problem) or "truncated" in str(problem))


def test_progressive_jpeg_cut_before_its_last_scan_is_refused():
    """A cut anywhere before the last scan leaves coefficients uncoded: refused from the structure.
    (A cut inside the last scan, the finest bit of the luma detail, is not detected.)"""
    data = JPEGS["progressive"]
    scans = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]
    assert len(scans) > 5
    for start, following in zip(scans, scans[1:]):
        for cut in (start + 40, (start + following) // 2, following):
            shortened = data[:cut] + b"\xff\xd9"
            assert plain_decode(shortened) is not None
            assert refusal(shortened).reason == "bad_compressed", cut


def test_a_real_frame_cut_short_is_refused():
    data = encoded(".jpg", read_rgb(KITTI_FRAME)[..., ::-1])
    for share in (0.3, 0.6, 0.95):
        assert "cut short" in str(refusal(cut_with_end_marker(data, share)))


@pytest.mark.parametrize("kind", sorted(JPEGS))
def test_jpeg_with_padding_after_the_end_marker_is_accepted(kind):
    data = JPEGS[kind]
    for tail in (bytes(5000), np.random.default_rng(2).bytes(300), b"\xff\xd9\xff\xd8" + bytes(10)):
        np.testing.assert_array_equal(image_files.decode(data + tail), plain_decode(data))


@pytest.mark.parametrize("kind", sorted(JPEGS))
def test_well_formed_jpegs_decode_as_opencv_does(kind):
    np.testing.assert_array_equal(image_files.decode(JPEGS[kind]), plain_decode(JPEGS[kind]))


def test_a_frame_whose_corner_is_exactly_fill_grey_is_still_accepted():
    picture = street()
    picture[-16:, -16:] = 128  # the colour libjpeg fills missing blocks with, in the last block
    picture[:16, :16] = 128
    data = encoded(".jpg", picture)
    assert (plain_decode(data)[-1, -1] == 128).all()
    np.testing.assert_array_equal(image_files.decode(data), plain_decode(data))


def test_jpeg_declaring_far_more_blocks_than_its_data_holds_is_refused_unread(no_decoder):
    segments, scan, rest = jpeg_parts(JPEGS["baseline"])
    frame = next(i for i, s in enumerate(segments) if s[1] == 0xC0)
    segments[frame] = segments[frame][:5] + struct.pack(">HH", 2000, 4000) + segments[frame][9:]  # 4000x2000
    assert len(scan) * 8 < 500 * 250  # fewer bits than 8x8 blocks: no Huffman-coded JPEG is that small
    assert "cannot hold a 4000x2000 picture" in str(refusal(b"".join(segments) + scan + rest))


def test_jpeg_with_too_many_scans_is_refused_unread(no_decoder):
    segments, scan, rest = jpeg_parts(JPEGS["progressive"])
    data = b"".join(segments[:-1]) + (segments[-1] + scan) * (image_files.JPEG_MAX_SCANS + 1) + rest
    assert "scans" in str(refusal(data))


@pytest.mark.parametrize("name, edit", [
    ("segment length past the end", lambda s: [s[0], s[1][:2] + b"\xff\xff" + s[1][4:], *s[2:]]),
    ("segment length 0", lambda s: [s[0], s[1][:2] + b"\x00\x00" + s[1][4:], *s[2:]]),
    ("no frame header", lambda s: [x for x in s if x[1:2] != b"\xc0"]),
    ("two frame headers", lambda s: [*s[:-1], next(x for x in s if x[1:2] == b"\xc0"), s[-1]]),
])
def test_jpeg_structure_faults_are_refused_before_decoding(no_decoder, name, edit):
    segments, scan, rest = jpeg_parts(JPEGS["baseline"])
    assert refusal(b"".join(edit(segments)) + scan + rest).reason == "bad_compressed", name


def test_jpeg_fill_bytes_and_comments_are_accepted():
    segments, scan, rest = jpeg_parts(JPEGS["baseline"])
    comment = b"\xff\xfe\x00\x07hello"
    data = b"".join(segments[:2]) + b"\xff\xff\xff" + comment + b"".join(segments[2:]) + scan + rest
    np.testing.assert_array_equal(image_files.decode(data), plain_decode(JPEGS["baseline"]))


# -- every container edit: a decoded picture or a BadImage, nothing else ---------------------------


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_container_edits_end_decoded_or_refused(data):
    """Any chain of container edits: BadImage or a picture; a still-valid file (an ancillary
    chunk, a comment, fill or padding) decodes to exactly the original's pixels."""
    draw = HypothesisDraw(data)
    original = draw.choice([PNG, *JPEGS.values()])
    mutated, valid, names = original, True, []
    for _ in range(draw.integer(1, 2)):
        mutated, name, still_valid = mutate_container(draw, mutated)
        valid, names = valid and still_valid, names + [name]
    try:
        frame = image_files.decode(mutated)
    except BadImage:
        assert not valid, f"{names}: a valid file was refused"
        return
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3, names
    if valid:
        np.testing.assert_array_equal(frame, plain_decode(original), err_msg=str(names))


def test_the_mutation_tables_cover_both_containers():
    assert {"png_chunk_length", "png_ancillary_chunk", "png_split_data"} <= set(PNG_MUTATIONS)
    assert {"jpeg_cut_scan", "jpeg_segment_length", "jpeg_many_scans"} <= set(JPEG_MUTATIONS)


# -- other image files: the size from the header ----------------------------------------------------


@pytest.mark.parametrize("extension, options", [
    (".bmp", ()), (".tif", ()), (".webp", ()), (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101)), (".ppm", ()), (".pgm", ()),
    (".png", ()), (".jpg", ()),
])
def test_header_size_of_every_format_infer_reads(extension, options):
    picture = street(70, 50)
    data = encoded(extension, picture if extension != ".pgm" else picture[..., 0], *options)
    kind, width, height = image_files.header_size(data)
    assert (width, height) == (70, 50), kind
    assert image_files.decode_file(data, 70 * 50).shape == (50, 70, 3)
    with pytest.raises(BadImage) as caught:
        image_files.decode_file(data, 70 * 50 - 1)
    assert caught.value.reason == "too_large"
