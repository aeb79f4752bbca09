"""The `hydranet` command end to end on the shared sample frames, and every bad input."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from hydranet_ros.cli import main
from hydranet_ros.model import HydraNet, get_preset
from hydranet_ros.model.checkpoints import save_safetensors
from hydranet_ros.model.random_init import realistic_model
from support import KITTI_FRAME, REPO, save_published


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "kitti.safetensors"
    save_safetensors(path, realistic_model(get_preset("kitti"), seed=11).state_dict(), get_preset("kitti"))
    return str(path)


def run_cli(*args):
    return main([str(a) for a in args])


def test_infer_on_a_shared_frame_writes_every_output(tmp_path, weights):
    assert run_cli("infer", KITTI_FRAME, "-o", tmp_path, "--weights", weights, "--size", "320x96", "--output-size", "input") == 0
    labels = cv2.imread(str(tmp_path / "000099_labels.png"), cv2.IMREAD_UNCHANGED)
    depth = cv2.imread(str(tmp_path / "000099_depth.png"), cv2.IMREAD_UNCHANGED)
    colour = cv2.imread(str(tmp_path / "000099_color.png"), cv2.IMREAD_UNCHANGED)
    preview = cv2.imread(str(tmp_path / "000099_preview.png"), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint8 and labels.shape == (370, 1226) and labels.max() < 6
    assert depth.dtype == np.uint16 and depth.shape == (370, 1226) and depth.max() > 0
    # overlay, depth, then a panel with the class legend and the depth colour bar
    assert colour.shape == (370, 1226, 3) and preview.shape == (370, 2 * 1226 + 170, 3)


def test_infer_on_a_folder_and_a_video(tmp_path, weights):
    frames = tmp_path / "frames"
    frames.mkdir()
    image = cv2.imread(str(KITTI_FRAME))
    for i in range(2):
        cv2.imwrite(str(frames / f"f{i}.png"), image)
    assert run_cli("infer", frames, "-o", tmp_path / "out", "--weights", weights, "--size", "160x64") == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*_labels.png")) == ["f0_labels.png", "f1_labels.png"]

    video = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (320, 96))
    for _ in range(3):
        writer.write(cv2.resize(image, (320, 96)))
    writer.release()
    assert run_cli("infer", video, "-o", tmp_path / "vid", "--weights", weights, "--size", "input") == 0
    assert len(list((tmp_path / "vid").glob("drive_*_depth.png"))) == 3
    # a video browsers play: H.264 MP4 where OpenCV has it, else VP8 WebM (pip wheels: no H.264)
    [video_out] = [p for p in (tmp_path / "vid").iterdir() if p.name.startswith("drive_preview")]
    assert video_out.suffix in (".mp4", ".webm") and video_out.stat().st_size > 0
    codec = cv2.VideoCapture(str(video_out))
    fourcc = int(codec.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode(errors="replace")
    assert codec.read()[0] and fourcc.lower() in ("avc1", "h264", "vp80"), fourcc
    codec.release()


def test_convert_then_use(tmp_path, capsys):
    ckpt = save_published(tmp_path / "ExpKITTI_joint.ckpt", HydraNet(get_preset("kitti")).eval())
    out = tmp_path / "kitti.safetensors"
    assert run_cli("convert", ckpt, out, "--fp16") == 0
    assert "preset kitti" in capsys.readouterr().out
    assert run_cli("infer", KITTI_FRAME, "-o", tmp_path / "o", "--weights", out, "--size", "64x32") == 0


def test_demo_uses_the_weights_it_names(tmp_path, weights, capsys):
    assert run_cli("demo", "-o", tmp_path, "--weights", weights, "--size", "320x96") == 0
    out = capsys.readouterr().out
    assert f"weights: {weights}" in out and "sample frame" in out
    assert (tmp_path / "000099_preview.png").is_file()


def test_bench_prints_a_table_and_json(tmp_path, weights, capsys):
    assert run_cli("bench", "--weights", weights, "--frames", "2", "--size", "64x32", "--frame-size", "128x64", "--json", tmp_path / "b.json") == 0
    assert "inference" in capsys.readouterr().out
    assert (tmp_path / "b.json").is_file()


@pytest.mark.parametrize("args,needle", [
    (["infer", "/nonexistent/frame.png"], "no such file"),
    (["infer", "{bad_image}"], "unreadable image"),
    (["infer", "{frame}", "--weights", "{bad_weights}"], "truncated"),
    (["infer", "{frame}", "--weights", "no_such_preset"], "not a preset name"),
    (["infer", "{frame}", "--size", "10x10"], "impossible"),
    (["infer", "{frame}", "--size", "big"], "WIDTHxHEIGHT"),
    (["infer", "{frame}", "--alpha", "2"], "alpha"),
    (["infer", "{frame}", "--device", "tpu"], "device"),
    (["convert", "{bad_weights}", "{out}"], "truncated"),
    (["convert", "{frame}", "{tmp}/x.bin"], ".safetensors"),
])
def test_bad_input_exits_non_zero_with_one_line(tmp_path, weights, capsys, args, needle):
    bad_image = tmp_path / "broken.png"
    bad_image.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    bad_weights = tmp_path / "broken.ckpt"
    bad_weights.write_bytes(b"PK\x03\x04 truncated")
    values = dict(bad_image=bad_image, bad_weights=bad_weights, frame=KITTI_FRAME, weights=weights,
                  out=tmp_path / "o.safetensors", tmp=tmp_path)
    args = [a.format(**values) for a in args]
    if args[0] == "infer" and "--weights" not in args:
        args += ["--weights", weights]
    code = run_cli(*args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine-without-CUDA path")
def test_strict_cuda_without_cuda_is_an_error(weights, capsys):
    assert run_cli("infer", KITTI_FRAME, "--weights", weights, "--device", "cuda", "--strict") == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_installed_entry_point_help_and_usage_errors():
    result = subprocess.run([sys.executable, "-m", "hydranet_ros.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and "infer" in result.stdout and "weights" in result.stdout
    result = subprocess.run([sys.executable, "-m", "hydranet_ros.cli", "frobnicate"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and "invalid choice" in result.stderr
