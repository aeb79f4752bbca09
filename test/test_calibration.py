"""int8 calibration data: frames from an image folder, a video or a rosbag2, prepared exactly as
the pipeline prepares camera frames."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from gpu_support import SHARED_FRAMES, shared_frame, small_frame
from hydranet_ros.io.ros_image import image_fields
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset
from hydranet_ros.runtime.calibration import (
    CalibrationError, batches_digest, calibration_batches, calibration_frames, prepare,
)
from hydranet_ros.runtime.engines.base import EngineError
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig

STORE = get_typestore(Stores.ROS2_HUMBLE)
PRESET = get_preset("kitti")


def numbered_frame(index: int, size=(48, 32)) -> np.ndarray:
    """A frame that says which one it is: every pixel's red value is its index."""
    frame = small_frame(SHARED_FRAMES[index % 3], size).copy()
    frame[..., 0] = index
    return frame


def write_folder(path, count: int):
    path.mkdir()
    for i in range(count):
        cv2.imwrite(str(path / f"frame_{i:03d}.png"), cv2.cvtColor(numbered_frame(i), cv2.COLOR_RGB2BGR))
    return path


def test_folder_frames_are_spread_over_the_sequence(tmp_path):
    folder = write_folder(tmp_path / "frames", 10)
    frames = calibration_frames(folder, limit=4)
    assert [int(f[0, 0, 0]) for f in frames] == [0, 3, 6, 9]  # first to last, evenly
    assert all(f.dtype == np.uint8 and f.shape == (32, 48, 3) for f in frames)
    assert np.array_equal(frames[1], numbered_frame(3))  # RGB, not OpenCV's BGR
    assert len(calibration_frames(folder, limit=100)) == 10


def test_video_frames(tmp_path):
    path = tmp_path / "drive.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for i in range(6):
        writer.write(cv2.cvtColor(numbered_frame(i * 40), cv2.COLOR_RGB2BGR))
    writer.release()
    frames = calibration_frames(path, limit=3)
    assert len(frames) == 3 and frames[0].shape == (32, 48, 3)


def write_video(path, count: int):
    """Flat grey frames of value 8 x index: a lossy codec keeps flat frames (nearly) exact."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for i in range(count):
        writer.write(np.full((32, 48, 3), 8 * i, np.uint8))
    writer.release()
    return path


def video_index(frame) -> int:
    return round(float(frame.mean()) / 8)


class CountingCapture:
    """cv2.VideoCapture that counts the frames converted for Python (read/retrieve) at once."""

    converted = 0
    real = cv2.VideoCapture

    def __init__(self, *args):
        self._capture = self.real(*args)

    def __getattr__(self, name):
        return getattr(self._capture, name)

    def read(self):
        ok, frame = self._capture.read()
        type(self).converted += ok
        return ok, frame

    def retrieve(self):
        ok, frame = self._capture.retrieve()
        type(self).converted += ok
        return ok, frame


def test_video_frames_are_chosen_first_then_streamed(tmp_path, monkeypatch):
    """A long drive must not be decoded into memory: only the chosen frames are converted."""
    from hydranet_ros.io import media

    path = write_video(tmp_path / "drive.avi", 30)
    monkeypatch.setattr(media.cv2, "VideoCapture", CountingCapture)
    CountingCapture.converted = 0
    frames = calibration_frames(path, limit=3)
    assert CountingCapture.converted == 3
    # Indices 0, 14, 29: evenly over the drive.
    assert [video_index(f) for f in frames] == [0, 14, 29]


@pytest.mark.parametrize("reported", [None, 45])
def test_video_whose_container_misreports_its_length(tmp_path, monkeypatch, reported):
    """No frame count (some containers) or a wrong one: the frames are counted, then chosen."""
    from hydranet_ros.io import media

    path = write_video(tmp_path / "drive.avi", 20)
    real_open = media.open_source
    monkeypatch.setattr(media, "open_source", lambda p: dataclasses.replace(real_open(p), frame_count=reported))
    frames = calibration_frames(path, limit=3)
    assert [video_index(f) for f in frames] == [0, 10, 19]


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "jpeg"])
def test_bag_frames(tmp_path, storage, encoding):
    bag = tmp_path / "bag"
    with Writer(bag, version=8, storage_plugin=storage) as writer:
        msgtype = "sensor_msgs/msg/CompressedImage" if encoding == "jpeg" else "sensor_msgs/msg/Image"
        conn = writer.add_connection("/cam/image_raw" + ("/compressed" if encoding == "jpeg" else ""), msgtype, typestore=STORE)
        other = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE)
        header = STORE.types["std_msgs/msg/Header"](stamp=STORE.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="cam")
        for i in range(8):
            rgb = numbered_frame(i * 30)
            if encoding == "jpeg":
                ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # lossless, so values are exact
                msg = STORE.types[msgtype](header=header, format="bgr8; png compressed bgr8", data=data.ravel())
            else:
                pixels = rgb if encoding == "rgb8" else np.ascontiguousarray(rgb[..., ::-1])
                msg = STORE.types[msgtype](header=header, **image_fields(pixels, encoding))
            writer.write(conn, 1000 + i, STORE.serialize_cdr(msg, msgtype))
            writer.write(other, 1001 + i, STORE.serialize_cdr(STORE.types["std_msgs/msg/String"](data="x"), "std_msgs/msg/String"))
    frames = calibration_frames(bag, limit=4)
    assert [int(f[0, 0, 0]) for f in frames] == [0, 60, 150, 210]  # indices 0, 2, 5, 7 of 8
    assert np.array_equal(frames[0], numbered_frame(0))


def test_prepare_matches_the_pipeline(tmp_path):
    """Calibration must see what the engine will see: same geometry (fitted, padded to the fixed
    engine size), resize and normalisation."""
    from hydranet_ros.runtime.geometry import plan_input

    pipe = Pipeline.from_model(HydraNet(PRESET).eval(), PRESET, PipelineConfig(device="cpu", input_size=(64, 64)))
    for frame in (shared_frame("kitti/000099.png"), small_frame("nyud/000464.png", (64, 48)), small_frame("nyud/000433.png", (40, 30))):
        ours = prepare(frame, size=(64, 64), mean=PRESET.mean, std=PRESET.std)
        geometry = plan_input((frame.shape[1], frame.shape[0]), (64, 64), fill_request=True)  # as for TensorRT
        theirs = pipe._preprocess(frame, "rgb", geometry).float().contiguous()
        assert ours.shape == (1, 3, 64, 64)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_batches_and_digest():
    frames = [numbered_frame(i) for i in range(5)]
    batches = calibration_batches(frames, size=(32, 24), mean=PRESET.mean, std=PRESET.std, batch_size=2)
    # an engine for 32x24 is built at 32x32 (the stride); frames are fitted and padded to it
    assert [tuple(b.shape) for b in batches] == [(2, 3, 32, 32), (2, 3, 32, 32), (1, 3, 32, 32)]
    assert all(b.dtype == torch.float32 for b in batches)
    # Normalised like ImageNet: roughly zero-centred, unit-scale values.
    values = torch.cat([b.flatten() for b in batches])
    assert -3.0 < float(values.min()) and float(values.max()) < 3.0
    same = calibration_batches(frames, size=(32, 24), mean=PRESET.mean, std=PRESET.std, batch_size=2)
    other = calibration_batches(frames[:4], size=(32, 24), mean=PRESET.mean, std=PRESET.std, batch_size=2)
    assert batches_digest(batches) == batches_digest(same) != batches_digest(other)


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        calibration_frames(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no images"):
        calibration_frames(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    with pytest.raises(CalibrationError, match="unreadable"):
        calibration_frames(tmp_path / "broken")
    with pytest.raises(CalibrationError, match="at least one"):
        calibration_frames(tmp_path / "empty", limit=0)
    with pytest.raises(CalibrationError, match="uint8"):
        prepare(np.zeros((4, 4, 3), np.float32), size=(4, 4), mean=PRESET.mean, std=PRESET.std)
    bag = tmp_path / "no_images"
    with Writer(bag, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        writer.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE)
    with pytest.raises(CalibrationError, match="no sensor_msgs/msg"):
        calibration_frames(bag)
    assert issubclass(CalibrationError, EngineError)  # a failed int8 build falls back like any other
