"""Frames from image files, folders and videos; results to PNG files and an mp4 preview."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hydranet_ros.errors import HydraNetError, first_line

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


def read_image_rgb(path: Path) -> np.ndarray:
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV refuses what it will not decode with an exception, not None
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):
            raise MediaError(f"{path}: more pixels than OpenCV decodes (2^30; the environment variable "
                             "OPENCV_IO_MAX_IMAGE_PIXELS raises the limit)") from None
        raise MediaError(f"{path}: cannot decode ({first_line(exc)})") from None
    if image is None:
        raise MediaError(f"{path}: unreadable image (damaged or not an image)")
    return image[..., ::-1]


def iter_frames(source: Source) -> Iterator[tuple[str, np.ndarray]]:
    """(stem, RGB uint8 frame) for every frame; video frames are named <video stem>_<index>."""
    if not source.is_video:
        for path in source.images:
            yield path.stem, read_image_rgb(path)
        return
    capture = cv2.VideoCapture(str(source.path))
    try:
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


def video_frames_at(path: Path, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
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


def depth_to_millimetres(depth_m: np.ndarray) -> np.ndarray:
    """float metres -> uint16 millimetres with 0 = invalid (NaN, Inf, non-positive, or beyond
    65.535 m: saturating would report a false distance; 0 is REP 118's "invalid")."""
    # float32 is exact for every integer millimetre below 2**24, so it loses nothing here and
    # runs several times faster than float64 on a 1080p frame.
    with np.errstate(invalid="ignore", over="ignore"):
        mm = np.rint(np.asarray(depth_m).astype(np.float32, copy=False) * np.float32(MM_PER_M))
        # NaN and +/-Inf fail both comparisons, so they land in the invalid (0) set as well.
        valid = (mm > 0) & (mm <= np.iinfo(np.uint16).max)
    return np.where(valid, mm, 0).astype(np.uint16)


def write_png(path: Path, image: np.ndarray, *, rgb: bool = False) -> None:
    data = image[..., ::-1] if rgb else image
    try:
        ok = cv2.imwrite(str(path), np.ascontiguousarray(data))
    except cv2.error as exc:
        raise MediaError(f"{path}: cannot write ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if not ok:
        raise MediaError(f"{path}: cannot write (missing folder, read-only or disk full)")


class PreviewVideo:
    """An mp4 of preview frames, opened on the first frame (its size fixes the video's)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps, self._writer = path, fps, None

    def write(self, frame_rgb: np.ndarray) -> None:
        if self._writer is None:
            h, w = frame_rgb.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise MediaError(f"{self.path}: cannot open an mp4 writer")
        self._writer.write(np.ascontiguousarray(frame_rgb[..., ::-1]))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
