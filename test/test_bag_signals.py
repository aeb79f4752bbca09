"""`hydranet bag` as a real subprocess, interrupted by real signals, and run twice over one output.

The promises: the input bag is never modified (same bytes before and after); an interrupted run
leaves nothing at OUT and nothing that looks like a finished bag anywhere (a rosbag2 folder is
complete only with its metadata.yaml, which the writer adds last); a killed run's hidden staging
folder is removed by the next replay to the same OUT; a corrupt message mid-bag is reported and
the rest processed; an existing OUT is refused without --overwrite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from hydranet_ros.replay.bag import replay_bag
from hydranet_ros.io.ros_image import image_fields
from hydranet_ros.model.checkpoints import save_safetensors
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset
from test_bag import STORE, T, camera_info, header, pipeline, tree_digest, write_bag  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
BIG_FRAMES = 1500  # long enough that a signal sent soon after the start lands mid-way here and on CI


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    torch.manual_seed(0)
    preset = get_preset("kitti")
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_safetensors(path, HydraNet(preset).state_dict(), preset)
    return str(path)


@pytest.fixture(scope="module")
def big_bag(tmp_path_factory) -> Path:
    """BIG_FRAMES small camera frames plus CameraInfo, sqlite3."""
    path = tmp_path_factory.mktemp("bags") / "long_drive"
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (5, 5), 0) for _ in range(8)]
    with Writer(path, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        image = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        info = writer.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=STORE)
        for index in range(BIG_FRAMES):
            t = 1_000_000_000 + index * 33_000_000
            msg = T["sensor_msgs/msg/Image"](header=header(index), **image_fields(frames[index % 8], "rgb8"))
            writer.write(image, t, STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            writer.write(info, t + 1000, STORE.serialize_cdr(camera_info(index), "sensor_msgs/msg/CameraInfo"))
    return path


def hydranet_bag(source: Path, target: Path, weights: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # The child starts with SIGINT at its default, as from a terminal: a suite started in the
    # background by a non-interactive shell (`nohup bash .ci/run &`) has SIGINT ignored, which the
    # child would inherit, and Python then never turns Ctrl-C into KeyboardInterrupt.
    return subprocess.Popen(
        [sys.executable, "-m", "hydranet_ros.cli", "bag", str(source), str(target), "--weights", weights,
         "--size", "32x32", "--device", "cpu", *extra],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def staging_folders(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*.partial"))


def wait_until_mid_way(process: subprocess.Popen, target: Path, timeout: float = 120.0) -> None:
    """Until the replay is writing (its staging folder holds the bag being built), plus a moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"hydranet bag ended (rc {process.returncode}) before the signal: {err[-2000:]}")
        folders = staging_folders(target)
        if folders and any((folders[0] / target.name).glob("*")):
            time.sleep(0.5)
            assert process.poll() is None, f"the replay of {BIG_FRAMES} frames finished within 0.5 s; make the bag longer"
            return
        time.sleep(0.05)
    process.kill()
    pytest.fail("hydranet bag never started writing")


def looks_complete(folder: Path) -> bool:
    return (folder / "metadata.yaml").exists()


# Ctrl-C (SIGINT) and systemd / docker stop / a plain `kill` (SIGTERM) clean up at once. After
# SIGTERM the command ends by the signal itself (systemd counts that as a clean stop; shells see 143).
@pytest.mark.parametrize("sig, returncode, said", [
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, -signal.SIGTERM, "terminated"),
])
def test_stopping_mid_replay_leaves_the_input_untouched_and_no_output(big_bag, weights, tmp_path, sig, returncode, said):
    before = tree_digest(big_bag)
    target = tmp_path / "out"
    process = hydranet_bag(big_bag, target, weights)
    wait_until_mid_way(process, target)
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    assert process.returncode == returncode, err
    assert said in err and "Traceback" not in err
    assert not target.exists() and staging_folders(target) == []
    assert tree_digest(big_bag) == before


def test_sigkill_mid_replay_leaves_nothing_that_looks_complete_and_the_next_run_cleans_up(
        big_bag, weights, tmp_path, pipeline):  # noqa: F811
    before = tree_digest(big_bag)
    target = tmp_path / "out"
    process = hydranet_bag(big_bag, target, weights)
    wait_until_mid_way(process, target)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not target.exists()
    [staging] = staging_folders(target)  # hidden, and not a bag rosbag2 would open
    assert not looks_complete(staging / target.name) and not looks_complete(staging)
    with pytest.raises(Exception):
        Reader(staging / target.name).open()
    assert tree_digest(big_bag) == before

    # The next replay to the same output removes the dead run's folder and writes a whole bag.
    small = write_bag(tmp_path / "small", "sqlite3", frames=2)
    report = replay_bag(small, target, pipeline, progress=False)
    assert report.processed == 2 and looks_complete(target)
    assert staging_folders(target) == []


def test_corrupt_message_is_reported_and_an_existing_output_needs_overwrite(weights, tmp_path):
    source = write_bag(tmp_path / "in", "mcap", frames=5, corrupt={2})
    before = tree_digest(source)
    target = tmp_path / "out"
    first = hydranet_bag(source, target, weights)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert "4/5 frame(s)" in out and "1 corrupt_message" in out
    with Reader(target) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/cam/semantic/labels"] == 4 and counts["/cam/image_raw"] == 5
    result = tree_digest(target)

    again = hydranet_bag(source, target, weights)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 2 and "--overwrite" in err and "Traceback" not in err
    assert tree_digest(target) == result and tree_digest(source) == before
