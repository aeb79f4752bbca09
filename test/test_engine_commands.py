"""`hydranet build-engine` and `hydranet export-onnx`, run through their add_arguments/run."""

from __future__ import annotations

import argparse

import pytest

from gpu_support import realistic_model
from hydranet_ros.commands import build_engine, export_onnx
from hydranet_ros.model.checkpoints import save_safetensors
from hydranet_ros.runtime.engines.base import EngineError
from hydranet_ros.runtime.engines.onnx_export import read_metadata

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = realistic_model("kitti")
    path = tmp_path_factory.mktemp("w") / "kitti.safetensors"
    digest = save_safetensors(path, model.state_dict(), model.preset)
    return str(path), digest


def run(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def test_export_onnx_writes_and_checks(tmp_path, weights, capsys):
    path, digest = weights
    out = tmp_path / "kitti.onnx"
    assert run(export_onnx, [str(out), "--weights", path, "--size", "64x48"]) == 0
    printed = capsys.readouterr().out
    assert "64x64" in printed and "(ok)" in printed  # 64x48 padded to the stride, as the pipeline feeds it
    assert read_metadata(out)["weights_sha256"] == digest


def test_export_onnx_refuses_a_wrong_suffix(tmp_path, weights):
    with pytest.raises(ValueError, match=".onnx"):
        run(export_onnx, [str(tmp_path / "x.bin"), "--weights", weights[0]])


def test_build_engine_onnx_goes_to_the_cache_and_is_reused(tmp_path, weights, capsys):
    path, digest = weights
    argv = ["--backend", "onnx", "--weights", path, "--size", "64x48", "--cache-dir", str(tmp_path / "engines"), "--precision", "fp32"]
    assert run(build_engine, argv) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert first.startswith(str(tmp_path / "engines")) and first.endswith(".onnx")
    assert run(build_engine, argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == first


def test_build_engine_tensorrt_without_cuda_is_a_clear_error(tmp_path, weights):
    with pytest.raises(EngineError, match="CUDA"):
        run(build_engine, ["--weights", weights[0], "--cache-dir", str(tmp_path), "--device", "cpu"])
    with pytest.raises(EngineError, match="one input size"):
        run(build_engine, ["--weights", weights[0], "--size", "input"])
