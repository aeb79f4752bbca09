"""Frames for int8 calibration: from a folder of images, a video or a rosbag2, as network batches.

TensorRT's int8 mode measures the range of every activation on real frames; they must look like
what the robot will see and be prepared exactly as the pipeline prepares a camera frame, or the
ranges (and so the quantisation) are wrong. So this module runs the pipeline's own arithmetic
(runtime/network_input.py): fitted inside the engine's size with the aspect ratio kept (bilinear,
antialiased when shrinking), (x/255 - mean) / std, padded to the stride with the edges repeated
(to the whole request for a fixed-size engine, as the pipeline pads for it).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hydranet_ros.runtime.choices import MAX_FRAME_PIXELS
from hydranet_ros.runtime.engines.base import EngineError
from hydranet_ros.runtime.geometry import plan_input
from hydranet_ros.runtime.network_input import fit_and_normalise, normalisation

log = logging.getLogger(__name__)

DEFAULT_FRAMES = 64  # TensorRT's guidance is ~500 images for classifiers; ranges settle far sooner on video


class CalibrationError(EngineError):
    """Calibration frames cannot be read; the message names the source and the problem."""


def is_bag(path: Path) -> bool:
    if path.is_file():
        return path.suffix in (".db3", ".mcap")
    return path.is_dir() and ((path / "metadata.yaml").is_file() or any(p.suffix in (".db3", ".mcap") for p in path.iterdir()))


def _evenly(count: int, limit: int) -> list[int]:
    """Indices of ``limit`` items spread over ``count``: calibration should see the whole drive."""
    if count <= limit:
        return list(range(count))
    return sorted({int(round(i * (count - 1) / (limit - 1))) for i in range(limit)}) if limit > 1 else [0]


def calibration_frames(source: str | Path, *, limit: int = DEFAULT_FRAMES, topic: str | None = None) -> list[np.ndarray]:
    """Up to ``limit`` RGB uint8 frames spread over ``source`` (image folder, video or bag)."""
    if limit < 1:
        raise CalibrationError(f"calibration needs at least one frame, not {limit}")
    path = Path(source).expanduser()
    if not path.exists():
        raise CalibrationError(f"calibration source {path} does not exist")
    frames = _bag_frames(path, limit, topic) if is_bag(path) else _media_frames(path, limit)
    if not frames:
        raise CalibrationError(f"{path}: no usable frames for calibration")
    log.info("calibrating on %d frames from %s", len(frames), path)
    return frames


def _media_frames(path: Path, limit: int) -> list[np.ndarray]:
    """Frames chosen first, then read: from a video only the chosen ones are converted and kept,
    so memory holds ``limit`` frames however long the drive (a 10-minute 1080p video is ~100 GB
    decoded)."""
    from hydranet_ros.io.media import MediaError, count_video_frames, open_source, read_image_rgb, video_frames_at

    try:
        source = open_source(path)
        if not source.is_video:
            return [np.ascontiguousarray(read_image_rgb(source.images[i], max_pixels=MAX_FRAME_PIXELS))
                    for i in _evenly(len(source.images), limit)]
        count = source.frame_count or count_video_frames(path)  # containers may not say
        wanted = _evenly(count, limit)
        frames = [frame for _, frame in video_frames_at(path, wanted, max_pixels=MAX_FRAME_PIXELS)]
        if len(frames) < len(wanted) and source.frame_count:
            # The container said more frames than it holds: choose again from the true count.
            count = count_video_frames(path)
            frames = [frame for _, frame in video_frames_at(path, _evenly(count, limit), max_pixels=MAX_FRAME_PIXELS)]
    except MediaError as exc:
        raise CalibrationError(str(exc)) from None
    return frames


def _bag_frames(path: Path, limit: int, topic: str | None) -> list[np.ndarray]:
    from hydranet_ros.io.bag_reader import BagError, messages, open_reader, typestore
    from hydranet_ros.io.bag_topics import choose_camera
    from hydranet_ros.io.ros_image import ImageRejected, message_to_frame

    try:
        reader = open_reader(path)
    except BagError as exc:
        raise CalibrationError(str(exc)) from None
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        try:
            camera = choose_camera(topics, topic=topic)
        except BagError:
            camera = choose_camera(topics, topic=topic, compressed=True)  # a bag with only compressed images
        store = typestore(None)
        connections = [c for c in reader.connections if c.topic == camera.image]
        wanted = set(_evenly(sum(c.msgcount for c in connections), limit))
        frames = []
        for index, (_, _, raw) in enumerate(messages(reader, connections)):
            if index not in wanted:
                continue
            try:
                msg = store.deserialize_cdr(raw, camera.image_type)
                frame, order = message_to_frame(msg, compressed=camera.compressed)
            except ImageRejected as exc:
                log.warning("calibration: skipping a frame of %s (%s)", camera.image, exc)
                continue
            except Exception as exc:  # a damaged message: CDR errors have no common base class
                log.warning("calibration: skipping a damaged message of %s (%s)", camera.image, exc)
                continue
            frames.append(np.ascontiguousarray(frame[..., ::-1] if order == "bgr" else frame))
        return frames
    except BagError as exc:
        raise CalibrationError(str(exc)) from None
    finally:
        reader.close()


def prepare(frame: np.ndarray, *, size: tuple[int, int], mean: Sequence[float], std: Sequence[float],
            fill_request: bool = True) -> torch.Tensor:
    """RGB uint8 HxWx3 -> normalised (1,3,H,W) float32 as the pipeline feeds it to an engine for
    the requested ``size`` (width, height): fitted inside it with the aspect ratio kept, then
    padded to the whole request rounded up to the stride for a fixed-size engine (``fill_request``,
    TensorRT), or only to the next stride multiple for an engine that takes any shape (the CPU
    engines, torch), exactly as runtime/geometry.plan_input plans a camera frame."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise CalibrationError(f"calibration frames must be uint8 HxWx3, got {frame.dtype} {frame.shape}")
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0).float()
    geometry = plan_input((frame.shape[1], frame.shape[0]), size, fill_request=fill_request)
    return fit_and_normalise(x, geometry, *normalisation(mean, std))


def calibration_batches(
    frames: Sequence[np.ndarray], *, size: tuple[int, int], mean: Sequence[float], std: Sequence[float], batch_size: int = 1,
    fill_request: bool = True,
) -> list[torch.Tensor]:
    """Frames -> list of (N,3,H,W) float32 batches; the last may be smaller.

    The default batch of 1 matches the engine's input (1,3,H,W). Without ``fill_request`` frames
    of different aspect ratios have different shapes: batches of 1 only."""
    if batch_size < 1:
        raise CalibrationError(f"batch_size must be >= 1, not {batch_size}")
    prepared = [prepare(f, size=size, mean=mean, std=std, fill_request=fill_request) for f in frames]
    return [torch.cat(prepared[i:i + batch_size]) for i in range(0, len(prepared), batch_size)]


def batches_digest(batches: Sequence[torch.Tensor]) -> str:
    """Identity of the calibration data: part of an int8 engine's cache key."""
    digest = hashlib.sha256()
    for batch in batches:
        digest.update(str(tuple(batch.shape)).encode())
        digest.update(batch.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
