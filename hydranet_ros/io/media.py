"""Frames from image files, folders and videos; results to PNG files and a preview video.

Reading: an image file's size comes from its header and is checked against the caller's pixel
limit before decoding (JPEG and PNG containers are checked whole: hydranet_ros/io/image_files.py);
a video's frame size from its container before the first frame is decoded.
Writing: every file appears complete or not at all (hydranet_ros/io/staging.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hydranet_ros.errors import HydraNetError
from hydranet_ros.io import image_files, staging

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
MM_PER_M = 1000.0


class MediaError(HydraNetError):
    """An input cannot be read or an output cannot be written; the message names the file."""


@dataclass
class Source:
    """What `hydranet infer` reads: a list of images or one video."""

    path: Path
    images: list[Path]
    is_video: bool
    frame_count: int | None = None
    fps: float = 10.0


def open_source(path: str | Path) -> Source:
    path = Path(path).expanduser()
    if not path.exists():
        raise MediaError(f"{path}: no such file or folder")
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise MediaError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return Source(path=path, images=images, is_video=False, frame_count=len(images))
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise MediaError(f"{path}: cannot open video (unsupported codec or damaged file)")
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
            fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
        finally:
            capture.release()
        return Source(path=path, images=[], is_video=True, frame_count=count, fps=fps)
    if suffix in IMAGE_SUFFIXES:
        return Source(path=path, images=[path], is_video=False, frame_count=1)
    raise MediaError(f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)}) or video ({', '.join(VIDEO_SUFFIXES)})")


def read_image_rgb(path: Path, *, max_pixels: int | None) -> np.ndarray:
    """An image file as RGB uint8; MediaError naming the file when it is unreadable, damaged or has
    more than ``max_pixels`` pixels (None: no limit), checked from its header before decoding."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise MediaError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        image = image_files.decode_file(data, max_pixels)
    except image_files.BadImage as exc:
        if exc.reason == "too_large":
            raise MediaError(f"{path}: {exc}") from None
        raise MediaError(f"{path}: unreadable image ({exc})") from None
    return image[..., ::-1]


def _check_video_size(path: Path, capture: cv2.VideoCapture, max_pixels: int | None) -> None:
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    try:
        image_files.check_pixels(width, height, max_pixels)
    except image_files.BadImage as exc:
        raise MediaError(f"{path}: video frames of {exc}") from None


def iter_frames(source: Source, *, max_pixels: int | None, names: dict[Path, str] | None = None,
                unreadable: list[tuple[Path, str]] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(name, RGB uint8 frame) for every frame: an image's name from ``names``, else its stem;
    video frames are named <video stem>_<index>. With ``unreadable`` a list, an image that cannot
    be read is noted there as (path, why) and the next one read; without, its MediaError ends
    the iteration."""
    if not source.is_video:
        for path in source.images:
            try:
                frame = read_image_rgb(path, max_pixels=max_pixels)
            except MediaError as exc:
                if unreadable is None:
                    raise
                unreadable.append((path, str(exc)))
                continue
            yield (names or {}).get(path, path.stem), frame
        return
    capture = cv2.VideoCapture(str(source.path))
    try:
        _check_video_size(source.path, capture, max_pixels)
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield f"{source.path.stem}_{index:06d}", frame[..., ::-1]
            index += 1
        if index == 0:
            raise MediaError(f"{source.path}: video has no decodable frames")
    finally:
        capture.release()


def count_video_frames(path: Path) -> int:
    """Frames in a video by demuxing it (grab() without colour conversion): for containers that do
    not say, or say wrong. Holds one frame at a time."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MediaError(f"{path}: cannot open video (unsupported codec or damaged file)")
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def video_frames_at(path: Path, indices: Iterable[int], *, max_pixels: int | None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB uint8 frame) for the wanted frame indices only, in order, streaming: the frames
    in between are grabbed but never converted or kept, so memory holds one frame however long the
    video. Stops early if the video is shorter than an index."""
    wanted = sorted({int(i) for i in indices if int(i) >= 0})
    if not wanted:
        return
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MediaError(f"{path}: cannot open video (unsupported codec or damaged file)")
        _check_video_size(path, capture, max_pixels)
        chosen = set(wanted)
        for index in range(wanted[-1] + 1):
            if not capture.grab():
                return
            if index in chosen:
                ok, frame = capture.retrieve()
                if ok:
                    yield index, np.ascontiguousarray(frame[..., ::-1])
    finally:
        capture.release()


def _saturated_uint16(depth_m: np.ndarray, units_per_m: float) -> np.ndarray:
    """float metres -> uint16 (value = metres x units_per_m, rounded), 0 = no estimate (NaN,
    -Inf, non-positive). A valid depth is never turned into "no estimate": beyond the largest
    value (and +Inf, REP 117's "nothing within range") it saturates at 65535, read as "this far
    or farther"; a positive depth that would round to 0 becomes 1."""
    top = np.iinfo(np.uint16).max
    # float32 is exact for every integer below 2**24, so it loses nothing here and runs several
    # times faster than float64 on a 1080p frame.
    with np.errstate(invalid="ignore", over="ignore"):
        depth = np.asarray(depth_m).astype(np.float32, copy=False)
        value = np.rint(np.minimum(depth, np.float32(top + 1) / np.float32(units_per_m)) * np.float32(units_per_m))
        valid = depth > 0  # NaN fails the comparison; +Inf passes and saturates
        value = np.clip(value, 1, top)
    return np.where(valid, value, 0).astype(np.uint16)


def depth_to_millimetres(depth_m: np.ndarray) -> np.ndarray:
    """16UC1 for ROS (REP 118): uint16 millimetres, 0 = no estimate; 65535 = 65.535 m or farther
    (see _saturated_uint16)."""
    return _saturated_uint16(depth_m, MM_PER_M)


DEPTH_PNG_UNITS_PER_M = 256.0  # KITTI's depth PNG encoding: uint16 = metres x 256


def depth_to_png(depth_m: np.ndarray) -> np.ndarray:
    """``<stem>_depth.png``: uint16 = metres x 256 (KITTI's encoding: 1/256 m steps up to 255.996 m),
    0 = no estimate, 65535 = 256 m or farther. Read back with ``png / 256.0``."""
    return _saturated_uint16(depth_m, DEPTH_PNG_UNITS_PER_M)


def encode_png(image: np.ndarray, *, rgb: bool = False) -> bytes:
    """PNG bytes of a uint8/uint16 image (RGB channel order when ``rgb``)."""
    data = image[..., ::-1] if rgb else image
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(data))
    if not ok:
        raise MediaError(f"cannot encode a {data.dtype} image of shape {data.shape} as PNG")
    return encoded.tobytes()


def write_pngs(images: dict[Path, tuple[np.ndarray, bool]]) -> None:
    """Write path -> (image, rgb?) as PNG files that appear together, complete, or not at all."""
    encoded = {path: encode_png(image, rgb=rgb) for path, (image, rgb) in images.items()}
    try:
        staging.write_files_together(encoded)
    except OSError as exc:
        raise MediaError(staging.write_failure(Path(exc.filename or next(iter(images))), exc)) from None


def write_png(path: Path, image: np.ndarray, *, rgb: bool = False) -> None:
    write_pngs({path: (image, rgb)})


# Browsers play H.264 in MP4 and VP8/VP9 in WebM; OpenCV's pip wheels have no H.264 encoder
# (patent licensing), but they do have libvpx. MPEG-4 Part 2 (mp4v), OpenCV's old default, plays
# in media players but in no browser: the last resort, said aloud.
VIDEO_CODECS = (("avc1", ".mp4", "H.264"), ("VP80", ".webm", "VP8"), ("mp4v", ".mp4", "MPEG-4 Part 2"))


class PreviewVideo:
    """A preview video, opened on the first frame (its size fixes the video's): H.264 MP4 where
    the OpenCV build can write it, else VP8 WebM, else MPEG-4 Part 2 MP4 with a note. ``path``
    is the stem's path; the suffix comes with the codec (``.path`` after the first frame).
    Written under a hidden name and renamed to ``path`` by ``finish``: an interrupted run leaves
    no valid-looking video of part of the frames (``discard`` removes it)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps, self._writer = path, fps, None
        self.codec: str | None = None
        self.note: str | None = None  # set when the video will not play in a browser
        self._staged: Path | None = None

    def write(self, frame_rgb: np.ndarray) -> None:
        if self._writer is None:
            h, w = frame_rgb.shape[:2]
            w_even, h_even = w - w % 2, h - h % 2  # encoders want even sizes (4:2:0 chroma)
            self._size = (w_even, h_even)
            for fourcc, suffix, name in VIDEO_CODECS:
                path = self.path.with_suffix(suffix)
                staged = staging.staged_file(path)
                writer = cv2.VideoWriter(str(staged), cv2.VideoWriter_fourcc(*fourcc), self.fps, (w_even, h_even))
                if writer.isOpened():
                    self._writer, self.path, self.codec, self._staged = writer, path, name, staged
                    break
                writer.release()
                staged.unlink(missing_ok=True)
            if self._writer is None:
                raise MediaError(f"{self.path}: this OpenCV build cannot write any video codec ({', '.join(c[2] for c in VIDEO_CODECS)})")
            if self.codec == "MPEG-4 Part 2":
                self.note = (f"{self.path}: no H.264 or VP8 encoder in this OpenCV build; MPEG-4 Part 2 plays in media "
                             "players, not in browsers (ffmpeg -i IN -c:v libx264 OUT.mp4 converts it)")
        w, h = self._size
        self._writer.write(np.ascontiguousarray(frame_rgb[:h, :w, ::-1]))

    def finish(self) -> None:
        """Close the video and put it in place under its name."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._staged, self.path)
            self._staged = None

    def discard(self) -> None:
        """Close and remove the partial video (an interrupted or failed run)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._staged is not None:
            self._staged.unlink(missing_ok=True)
            self._staged = None
