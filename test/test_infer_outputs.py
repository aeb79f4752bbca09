"""`hydranet infer` loses nothing (issue 12, items 2, 3, 7, 8): the pixel limit applies before
decoding, no input or result is overwritten, a damaged image is skipped and named, and an
interrupted run leaves every frame's results complete or absent and no partial preview video."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from hydranet_ros.cli import main
from hydranet_ros.io import media, staging
from hydranet_ros.model.checkpoints import save_safetensors
from hydranet_ros.model.random_init import realistic_model
from hydranet_ros.presets import get_preset

RESULTS = ("_labels.png", "_depth.png", "_color.png", "_preview.png")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "kitti.safetensors"
    save_safetensors(path, realistic_model(get_preset("kitti"), seed=3).state_dict(), get_preset("kitti"))
    return str(path)


def infer(weights: str, *args) -> int:
    try:
        return main(["infer", *[str(a) for a in args], "--weights", weights, "--size", "64x32", "--threads", "1"])
    except SystemExit as done:
        return int(done.code)


def picture(seed: int, width: int = 96, height: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def result_sets(folder: Path) -> dict[str, int]:
    """name -> how many of its four result files exist (4 or nothing is complete)."""
    counts: dict[str, int] = {}
    for path in folder.iterdir():
        for suffix in RESULTS:
            if path.name.endswith(suffix):
                counts[path.name[: -len(suffix)]] = counts.get(path.name[: -len(suffix)], 0) + 1
    return counts


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- item 2: the pixel limit, from the header -------------------------------------------------------


@pytest.fixture
def no_decoding(monkeypatch):
    def reached(*_args, **_kwargs):
        raise AssertionError("an image over the pixel limit reached the decoder")

    monkeypatch.setattr(cv2, "imread", reached)
    monkeypatch.setattr(cv2, "imdecode", reached)


def forged_png(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header claims width x height (the issue's 213 KiB 15000x15000 file decoded to 8.2 GiB)."""
    data = cv2.imencode(".png", picture(1))[1].tobytes()
    path.write_bytes(data[:16] + struct.pack(">II", width, height) + data[24:])
    return path


def test_infer_refuses_an_image_over_the_limit_before_decoding(tmp_path, weights, capsys, no_decoding):
    image = forged_png(tmp_path / "huge.png", 15000, 15000)
    assert infer(weights, image, "-o", tmp_path / "out") == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("hydranet infer: error: ") and "15000x15000" in line and "limit of 8294400" in line
    assert not any((tmp_path / "out").iterdir())


def test_max_pixels_is_configurable_and_0_means_no_limit(tmp_path, weights, capsys):
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), picture(2))  # 96 x 64 = 6144 pixels
    assert infer(weights, image, "-o", tmp_path / "a", "--max-pixels", "6000") == 2
    assert "96x64 = 6144 pixels is more than the limit of 6000" in capsys.readouterr().err
    assert infer(weights, image, "-o", tmp_path / "b", "--max-pixels", "6144") == 0
    assert infer(weights, image, "-o", tmp_path / "c", "--max-pixels", "0") == 0
    assert result_sets(tmp_path / "c") == {"frame": 4}
    assert infer(weights, image, "-o", tmp_path / "d", "--max-pixels", "-1") == 2
    assert "must be 0 (no limit) or more" in capsys.readouterr().err


def test_a_video_over_the_limit_is_refused_from_its_container(tmp_path, weights, capsys):
    video = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 64))
    for index in range(3):
        writer.write(picture(index))
    writer.release()
    assert infer(weights, video, "-o", tmp_path / "out", "--max-pixels", "5000") == 2
    assert "video frames of 96x64 = 6144 pixels is more than the limit of 5000" in capsys.readouterr().err
    assert not any((tmp_path / "out").iterdir())


# -- item 3: no input or result is replaced ----------------------------------------------------------


def test_images_sharing_a_name_each_get_their_own_results(tmp_path, weights, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.png"), picture(3))
    cv2.imwrite(str(frames / "a.jpg"), picture(4))
    cv2.imwrite(str(frames / "b.png"), picture(5))
    assert infer(weights, frames, "-o", tmp_path / "out") == 0
    assert result_sets(tmp_path / "out") == {"a.png": 4, "a.jpg": 4, "b": 4}
    assert "a.jpg, a.png" in capsys.readouterr().out  # said in one line
    # the two sets are of two different pictures
    assert digest(tmp_path / "out" / "a.png_preview.png") != digest(tmp_path / "out" / "a.jpg_preview.png")


@pytest.mark.parametrize("all_images", [False, True])
def test_results_never_replace_a_file_in_the_input_folder(tmp_path, weights, capsys, all_images):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "frame.png"), picture(6))
    cv2.imwrite(str(frames / "frame_labels.png"), picture(7))  # a camera frame with an unlucky name
    before = {p.name: digest(p) for p in frames.iterdir()}
    extra = ["--all-images"] if all_images else []
    assert infer(weights, frames, "-o", frames, *extra) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("hydranet infer: error: ") and "frame_labels.png" in line and "another -o" in line
    assert {p.name: digest(p) for p in frames.iterdir()} == before


def test_results_beside_a_single_image_are_written_when_nothing_is_replaced(tmp_path, weights):
    image = tmp_path / "shot.png"
    cv2.imwrite(str(image), picture(8))
    assert infer(weights, image, "-o", tmp_path) == 0
    assert result_sets(tmp_path) == {"shot": 4}
    assert infer(weights, image, "-o", tmp_path) == 2  # again: the earlier results are in the input folder now
    assert infer(weights, image, "-o", tmp_path / "elsewhere") == 0
    assert infer(weights, image, "-o", tmp_path / "elsewhere") == 0  # a results folder is rewritten freely


# -- item 7: a damaged image is skipped and named -----------------------------------------------------


def test_a_damaged_image_is_skipped_named_and_the_rest_processed(tmp_path, weights, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, name in enumerate("abcdef"):
        cv2.imwrite(str(frames / f"{name}.png"), picture(10 + index))
    data = (frames / "d.png").read_bytes()
    (frames / "d.png").write_bytes(data[: len(data) // 2])  # the 4th of 6, cut short
    assert infer(weights, frames, "-o", tmp_path / "out") == 1
    assert result_sets(tmp_path / "out") == {name: 4 for name in "abcef"}
    err = capsys.readouterr().err.strip().splitlines()
    assert any("d.png" in line and "truncated" in line for line in err[:-1])
    assert err[-1].startswith("hydranet infer: error: 1 of 6 image(s) could not be read: d.png")


# -- item 8: interrupted, nothing half written ---------------------------------------------------------


def interrupt_on_call(monkeypatch, owner, name: str, call: int, counts=lambda *args: True) -> None:
    """Ctrl-C at the ``call``-th call of ``owner.name`` among those ``counts`` accepts."""
    original = getattr(owner, name)
    calls = []

    def wrapped(*args, **kwargs):
        if counts(*args):
            calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


def drive(tmp_path: Path, frames: int = 30) -> Path:
    video = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 64))
    for index in range(frames):
        writer.write(picture(index))
    writer.release()
    return video


def test_interrupted_video_leaves_whole_frame_sets_and_no_preview_video(tmp_path, weights, monkeypatch):
    video = drive(tmp_path)
    # Ctrl-C while the 6th frame's results are being made (after its labels exist in memory)
    interrupt_on_call(monkeypatch, media, "depth_to_png", 6)
    assert infer(weights, video, "-o", tmp_path / "out") == 130
    out = tmp_path / "out"
    assert set(result_sets(out).values()) == {4} and len(result_sets(out)) == 5
    assert not list(out.glob("drive_preview.*"))  # a valid-looking video of 5 of 30 frames would lie
    assert hidden(out) == []


def test_interrupted_between_a_frames_files_leaves_none_of_them(tmp_path, weights, monkeypatch):
    video = drive(tmp_path, frames=4)
    out = tmp_path / "out"
    # Ctrl-C between the renames of the 3rd frame's files (the 10th rename into the results
    # folder; with backend auto an engine build also renames files into the engine cache)
    interrupt_on_call(monkeypatch, staging.os, "replace", 10,
                      counts=lambda source, target: Path(target).parent == out)
    assert infer(weights, video, "-o", out) == 130
    assert result_sets(out) == {"drive_000000": 4, "drive_000001": 4}
    assert not list(out.glob("drive_preview.*")) and hidden(out) == []


def test_partial_files_of_a_killed_run_are_removed_by_the_next(tmp_path, weights):
    image = tmp_path / "shot.png"
    cv2.imwrite(str(image), picture(9))
    out = tmp_path / "out"
    out.mkdir()
    dead = out / ".shot_labels.png.4194305.abcdefgh.partial.png"  # a pid above any pid_max: no such process
    dead.write_bytes(b"half")
    live = out / f".other.png.1.abcdefgh.partial.png"  # pid 1 is alive: another writer's
    live.write_bytes(b"in progress")
    assert infer(weights, image, "-o", out) == 0
    assert not dead.exists() and live.exists()
