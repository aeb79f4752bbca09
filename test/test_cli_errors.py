"""The `hydranet` command's one error model: input a user can fix ends in one line,
`hydranet CMD: error: ...`, and exit status 2 (``--debug`` adds the traceback); a bug shows its
traceback. Every case listed in issue 11 that used to end in a traceback is here, and the checks
that must answer before torch is imported run in a fresh interpreter that says whether it did."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from hydranet_ros.cli import main
from hydranet_ros.model.checkpoints import save_safetensors
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset
from support import KITTI_FRAME, REPO

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine-without-CUDA path")
SMOKE = REPO / "config" / "train" / "smoke.yaml"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "kitti.safetensors"
    save_safetensors(path, HydraNet(get_preset("kitti")).state_dict(), get_preset("kitti"))
    return str(path)


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"hydranet {command}: error: ") and "Traceback" not in err[0]
    return err[0]


def exits(argv: list[str]) -> int:
    """main's status, also when argparse ends the run (SystemExit)."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as done:
        return done.code


@NO_CUDA
def test_build_engine_with_its_defaults_without_cuda(capsys):
    assert exits(["build-engine"]) == 2
    assert "needs CUDA" in one_error_line(capsys, "build-engine")


@NO_CUDA
@pytest.mark.parametrize("command", ["train", "affinity"])
def test_training_on_cuda_without_cuda(capsys, tmp_path, command):
    extra = ["--steps", "1"] if command == "affinity" else []
    assert exits([command, "--config", SMOKE, "--device", "cuda", "--out-dir", tmp_path, "--no-progress", *extra]) == 2
    assert "CUDA is not available" in one_error_line(capsys, command)


@pytest.mark.parametrize("argv, needle", [
    (["bench", "--frame-size", "0x0"], "frame size 0x0 is impossible"),
    (["train", "--config", SMOKE, "--threads", "-4"], "--threads: must be at least 1, got -4"),
    (["export-onnx", "{tmp}/x.onnx", "--size", "0x0"], "network input size 0x0 is impossible"),
    (["export-onnx", "{tmp}/x.onnx", "--opset", "999"], "--opset 999: this torch"),
    (["infer", "{pgm}", "-o", "{tmp}/out"], "40000x40000 = 1600000000 pixels is more than the limit of 8294400"),
    (["infer", "{pgm}", "-o", "{tmp}/out", "--max-pixels", "0"], "more pixels than OpenCV decodes"),
    (["infer", "{pgm}", "-o", "{tmp}/out", "--max-pixels", "-1"], "--max-pixels: must be 0 (no limit) or more, got -1"),
    (["bag", "{tmp}", "{tmp}/out", "--max-pixels", "-5"], "--max-pixels: must be 0 (no limit) or more, got -5"),
])
def test_traceback_cases_end_in_one_line(capsys, tmp_path, weights, argv, needle):
    pgm = tmp_path / "huge.pgm"
    pgm.write_bytes(b"P5\n40000 40000\n255\n" + bytes(1000))  # 1.6e9 pixels: OpenCV refuses to decode it
    argv = [str(a).format(tmp=tmp_path, pgm=pgm) for a in argv] + ["--weights", weights] * (argv[0] in ("infer", "export-onnx"))
    assert exits(argv) == 2
    assert needle in one_error_line(capsys, argv[0])


@NO_CUDA
def test_strict_cuda_says_it_does_not_fall_back(capsys, weights):
    assert exits(["infer", KITTI_FRAME, "--weights", weights, "--device", "cuda", "--strict"]) == 2
    line = one_error_line(capsys, "infer")
    assert "CUDA is not available" in line and "not falling back to running on CPU" in line
    assert "; running on CPU" not in line


def test_debug_shows_the_traceback_too(capsys):
    assert exits(["--debug", "infer", "/nonexistent/frame.png"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("hydranet infer: error: ")


def test_a_bug_shows_its_traceback(monkeypatch):
    """Only HydraNetError and OSError are the user's to fix; anything else is ours."""
    from hydranet_ros.commands import bench

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(bench, "run", broken)
    with pytest.raises(KeyError):
        main(["bench"])


def test_an_unwritable_user_path_is_one_line(capsys, tmp_path, weights):
    (tmp_path / "taken").write_text("a file")
    assert exits(["infer", KITTI_FRAME, "-o", tmp_path / "taken", "--weights", weights]) == 2
    assert "that is a file, not a folder" in one_error_line(capsys, "infer")
    assert exits(["infer", KITTI_FRAME, "-o", tmp_path / "taken" / "inside", "--weights", weights]) == 2
    assert "is a file" in one_error_line(capsys, "infer")


# -- answers at once: before torch is imported ------------------------------------------------

FRESH = """
import sys
from hydranet_ros.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as done:
    status = done.code
print(status, "torch" in sys.modules)
"""


@pytest.mark.parametrize("argv, needle", [
    (["infer", "missing.png"], "no such file"),
    (["infer", str(KITTI_FRAME), "--weights", "kiti"], "not a preset name"),
    (["infer", str(KITTI_FRAME), "--weights", "/nowhere/w.safetensors"], "no such file"),
    (["infer", str(KITTI_FRAME), "--size", "10x10"], "impossible"),
    (["infer", str(KITTI_FRAME), "--device", "tpu"], "device 'tpu'"),
    (["infer", str(KITTI_FRAME), "--threads", "0"], "--threads"),
    (["demo", "--weights", "nyud"], "not cached"),
    (["bench", "--json", "/nonexistent/b.json"], "does not exist"),
    (["bag", "/nonexistent/bag", "/tmp/out"], "does not exist"),
    (["eval", "--weights", "/nowhere/w.safetensors", "--data", "synthetic"], "no such file"),
    (["train", "--config", "/nowhere/train.yaml"], "no such file"),
    (["export-onnx", "x.onnx", "--size", "0x0"], "impossible"),
    (["build-engine", "--weights", "kiti"], "not a preset name"),
    (["build-engine", "--backend", "openvino", "--max-batch", "4"], "an openvino model runs one frame at a time"),
])
def test_argument_path_and_weights_errors_answer_before_torch_loads(argv, needle, tmp_path):
    done = subprocess.run([sys.executable, "-c", FRESH, *argv], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "", "HYDRANET_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)},
                          timeout=120)
    assert done.stdout.split() == ["2", "False"], (done.stdout, done.stderr)
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"hydranet {argv[0]}: error: ") and needle in line


# -- the small CLI items -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["infer", "demo", "bench", "bag"])
def test_threads_on_every_command_that_runs_the_network(command):
    from hydranet_ros.cli import build_parser

    args = build_parser(command).parse_args([command, *(["x"] if command == "infer" else []),
                                             *(["a", "b"] if command == "bag" else []), "--threads", "3"])
    assert args.threads == 3


def test_bench_says_the_sizes_it_used_and_checks_json_first(capsys, tmp_path, weights):
    threads = torch.get_num_threads()
    try:
        assert exits(["bench", "--weights", weights, "--frames", "1", "--frame-size", "96x64", "--size", "auto",
                      "--threads", "1", "--json", tmp_path / "b.json"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "frame 96x64 -> network 96x64 (--size auto) -> outputs 96x64" in out
    assert json.loads((tmp_path / "b.json").read_text())["network_size"] == "96x64"
    assert exits(["bench", "--weights", weights, "--json", tmp_path]) == 2
    assert "that is a folder" in one_error_line(capsys, "bench")


def test_weights_list_shows_the_cache_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRANET_CACHE_DIR", str(tmp_path / "c"))
    assert exits(["weights", "list"]) == 0
    assert f"cache folder: {tmp_path / 'c' / 'weights'}" in capsys.readouterr().out


def test_infer_on_a_folder_skips_our_outputs_and_ground_truth(capsys, tmp_path, weights):
    import shutil

    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("a.png", "a_labels.png", "a_preview.png", "a_segm_gt.png"):
        shutil.copy(KITTI_FRAME, folder / name)
    assert exits(["infer", folder, "-o", tmp_path / "out", "--weights", weights, "--size", "64x32"]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 result image(s) of an earlier run" in out and "1 ground-truth image(s)" in out
    assert "--all-images" in out
    assert sorted(p.name for p in (tmp_path / "out").glob("*_labels.png")) == ["a_labels.png"]
    assert exits(["infer", folder, "-o", tmp_path / "all", "--weights", weights, "--size", "64x32", "--all-images"]) == 0
    assert len(list((tmp_path / "all").glob("*_depth.png"))) == 4


def test_demo_says_what_it_skipped(capsys, tmp_path, weights):
    from hydranet_ros.commands.demo import choose_sample_frames

    data = tmp_path / "data"
    (data / "kitti").mkdir(parents=True)
    (data / "nyud").mkdir()
    for name in ("kitti/1.png", "kitti/1_segm_gt.png", "nyud/2.png", "nyud/2_depth_gt.png"):
        (data / name).write_bytes(b"")
    chosen = choose_sample_frames("kitti", data)
    assert [p.name for p in chosen.frames] == ["1.png"]
    assert any("nyud/" in s and "indoor" in s for s in chosen.skipped)
    assert any("1 ground-truth image(s) in kitti/" in s for s in chosen.skipped)
    both = choose_sample_frames("nyud_kitti", data)
    assert [p.name for p in both.frames] == ["1.png", "2.png"]
