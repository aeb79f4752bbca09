"""The ONNX Runtime and OpenVINO engines on the shipped model: fp32 against torch, int8 against the
accuracy gates on the real sample frames and on held-out synthetic frames, the engine cache, a
missed gate (refused with its figures, or a fallback), and int8 built ahead for the node.

CI installs both runtimes (setup.py's test extra); test_ci_has_the_cpu_runtimes fails there if it
does not, so these tests are never skipped in CI without a red line.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import cv2
import numpy as np
import pytest
import torch

from support import KITTI_FRAME, SHARED_DATA, read_rgb
from hydranet_ros.model.checkpoints import load_weights
from hydranet_ros.runtime.calibration import prepare
from hydranet_ros.runtime.engines import int8
from hydranet_ros.runtime.engines.base import EngineError, create_engine
from hydranet_ros.runtime.fallback import FallbackRefused
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from hydranet_ros.train.synthetic import SyntheticStreets

CPU = torch.device("cpu")
SIZE = (320, 96)  # the shipped model's training size, which the node's 0x0 input size uses
HELD_OUT_SEED = 1000003  # the shipped model's evaluation seed: never drawn from in training or here
RUNTIMES = [pytest.param(name, marks=pytest.mark.skipif(__import__("importlib").util.find_spec(module) is None,
                                                          reason=f"{module} is not installed"))
            for name, module in (("onnxruntime", "onnxruntime"), ("openvino", "nncf"))]


def test_ci_has_the_cpu_runtimes():
    """CI must test the engines, not skip them: its install (.[test]) brings both runtimes."""
    if os.environ.get("CI") != "true":
        pytest.skip("only CI promises the runtimes")
    import nncf  # noqa: F401
    import onnxruntime  # noqa: F401
    import openvino  # noqa: F401


@pytest.fixture(scope="module")
def shipped():
    weights = load_weights("default")
    return weights, weights.build_model().eval()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """Synthetic street frames (not the held-out seed) as a folder of PNGs, as a user gives them."""
    folder = tmp_path_factory.mktemp("calibration")
    for i, frame in enumerate(SyntheticStreets(size=(640, 192), length=24, seed=7)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame["image"][..., ::-1])
    return str(folder)


def judged_frames() -> dict[str, list[np.ndarray]]:
    real = [read_rgb(KITTI_FRAME), read_rgb(SHARED_DATA / "nyud" / "000464.png"), read_rgb(SHARED_DATA / "nyud" / "000433.png")]
    synthetic = [f["image"] for f in SyntheticStreets(size=(640, 192), length=8, seed=HELD_OUT_SEED)]
    return {"real": real, "synthetic": synthetic}


def inputs(frames, preset) -> list[torch.Tensor]:
    """As the pipeline feeds the CPU engines: each frame at the size planned for it (the NYU frames
    at 128x96, the KITTI frame at 320x96), padded to the stride only."""
    return [prepare(f, size=SIZE, mean=preset.mean, std=preset.std, fill_request=False) for f in frames]


def torch_forward(model):
    engine = create_engine("torch", model, device=CPU, precision="fp32", input_size=SIZE)
    return lambda x: {k: v.numpy().copy() for k, v in engine(torch.from_numpy(x).contiguous(memory_format=torch.channels_last)).items()}


def engine_forward(engine):
    return lambda x: {k: v.numpy().copy() for k, v in engine(torch.from_numpy(x)).items()}


@pytest.mark.parametrize("backend", RUNTIMES)
def test_fp32_matches_torch_within_1e_4_on_the_shipped_models_logits(backend, shipped, cache_dir):
    weights, model = shipped
    engine = create_engine(backend, model, device=CPU, precision="fp32", input_size=SIZE, weights_sha256=weights.sha256,
                           options={"cache_dir": cache_dir})
    reference = torch_forward(model)
    frames = judged_frames()
    for x in inputs(frames["real"] + frames["synthetic"][:2], weights.preset):
        got, want = engine_forward(engine)(x.numpy()), reference(x.numpy())
        assert got["segm"].shape == want["segm"].shape and got["depth"].shape == want["depth"].shape
        assert np.abs(got["segm"] - want["segm"]).max() < 1e-4, backend
        # Depth is metres (up to ~80): float32 rounding alone is ~1e-5 of the value.
        np.testing.assert_allclose(got["depth"], want["depth"], rtol=1e-5, atol=1e-5)


def test_the_layers_kept_in_fp32_name_layers_of_the_shipped_model(shipped, cache_dir):
    """NNCF ignores a pattern that matches nothing (validate=False) and ONNX Runtime a name it does
    not find: a renamed layer would silently quantise what the README says stays fp32."""
    pytest.importorskip("nncf")
    import re

    import openvino as ov

    from hydranet_ros.runtime.engines import openvino_engine

    weights, model = shipped
    engine = create_engine("openvino", model, device=CPU, precision="fp32", weights_sha256=weights.sha256,
                           options={"cache_dir": cache_dir})
    names = [op.get_friendly_name() for op in openvino_engine.read_packed(ov.Core(), engine.model_path).get_ops()]
    for pattern in openvino_engine.FP32_SCOPE:
        assert any(re.fullmatch(pattern, name) for name in names), pattern
    pytest.importorskip("onnxruntime")
    from hydranet_ros.runtime.engine_cache import EngineCache
    from hydranet_ros.runtime.engines import onnxruntime_engine
    from hydranet_ros.runtime.engines.onnx_export import cached_onnx

    onnx_path = cached_onnx(model, weights_sha256=weights.sha256, input_size=None, cache=EngineCache(directory=cache_dir))
    kept = onnxruntime_engine.fp32_nodes(onnxruntime_engine._node_names(onnx_path))
    for prefix in onnxruntime_engine.FP32_PREFIXES:
        assert any(name.startswith(prefix) for name in kept), prefix
    assert {"/model/segm/out/Conv", "/model/depth/out/Conv"} <= set(kept)


@pytest.fixture(scope="module")
def int8_engines(shipped, cache_dir, calibration):
    weights, model = shipped
    built = {}

    def get(backend):
        if backend not in built:
            built[backend] = create_engine(backend, model, device=CPU, precision="int8", input_size=SIZE,
                                           weights_sha256=weights.sha256,
                                           options={"cache_dir": cache_dir, "calibration": calibration, "calibration_frames": 20})
        return built[backend]
    return get


@pytest.mark.parametrize("backend", RUNTIMES)
def test_int8_passes_the_gates_on_real_and_held_out_synthetic_frames(backend, shipped, int8_engines):
    weights, model = shipped
    engine = int8_engines(backend)
    assert engine.precision == "int8" and "int8_gate" in engine.describe()
    assert int8.GateFigures(**engine.gate).passed  # measured on frames its calibration held out
    reference = torch_forward(model)
    for name, frames in judged_frames().items():
        figures = int8.measure_gate(engine_forward(engine), reference, [x.numpy() for x in inputs(frames, weights.preset)])
        assert figures.labels_agree >= int8.MIN_LABELS_AGREE, (name, figures.describe())
        assert figures.depth_median_rel <= int8.MAX_DEPTH_MEDIAN_REL, (name, figures.describe())
        # int8 is not fp32: the figures measure something (an engine silently running fp32 would give 100 %).
        assert figures.depth_median_rel > 0


@pytest.mark.parametrize("backend", RUNTIMES)
def test_int8_is_cached_with_its_gate_and_rebuilt_when_a_library_changes(backend, shipped, int8_engines, cache_dir,
                                                                          calibration, monkeypatch, caplog):
    weights, model = shipped
    first = int8_engines(backend)
    options = {"cache_dir": cache_dir, "calibration": calibration, "calibration_frames": 20}
    with caplog.at_level(logging.INFO):
        again = create_engine(backend, model, device=CPU, precision="int8", input_size=SIZE,
                              weights_sha256=weights.sha256, options=options)
    assert again.model_path == first.model_path and again.gate == first.gate
    assert "using cached" in caplog.text and "quantising" not in caplog.text
    # The node has no frames: it finds the model built with them (same weights, size, CPU, versions).
    found = create_engine(backend, model, device=CPU, precision="int8", input_size=SIZE,
                          weights_sha256=weights.sha256, options={"cache_dir": cache_dir})
    assert found.model_path == first.model_path
    # Another runtime version: the built-ahead model is stale, and without frames nothing is trusted.
    module = __import__(f"hydranet_ros.runtime.engines.{backend}_engine", fromlist=["versions"])
    real_versions = module.versions
    monkeypatch.setattr(module, "versions", lambda: {**real_versions(), backend: "0.0.1"})
    with pytest.raises(EngineError, match="int8 needs calibration frames"):
        create_engine(backend, model, device=CPU, precision="int8", input_size=SIZE, weights_sha256=weights.sha256,
                      options={"cache_dir": cache_dir})


@pytest.fixture(scope="module")
def small_model():
    from gpu_support import realistic_model

    return realistic_model("kitti")


@pytest.mark.parametrize("backend", RUNTIMES)
def test_a_missed_gate_is_refused_with_its_figures_or_falls_back_to_fp32(backend, small_model, calibration,
                                                                          tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(int8, "MIN_LABELS_AGREE", 1.01)  # no int8 model can agree on 101 % of pixels
    options = {"cache_dir": str(tmp_path), "calibration": calibration, "calibration_frames": 4}
    with pytest.raises(int8.GateMissed, match=r"missed the int8 accuracy gate: labels equal to fp32 on \d+\.\d\d % of pixels"):
        create_engine(backend, small_model, device=CPU, precision="int8", input_size=(64, 48), options=options)
    assert not [p for p in tmp_path.glob("*int8*") if p.suffix != ".lock"], "a refused model must not be cached"
    config = PipelineConfig(backend=backend, device="cpu", precision="int8", input_size=(64, 48), engine_options=options)
    with caplog.at_level(logging.WARNING):
        pipe = Pipeline.from_model(small_model, small_model.preset, config)
    assert (pipe.info["backend"], pipe.info["precision"]) == (backend, "fp32")
    assert "missed the int8 accuracy gate" in caplog.text and f"running {backend} on cpu in fp32" in caplog.text
    with pytest.raises(FallbackRefused, match="missed the int8 accuracy gate.*strict"):
        Pipeline.from_model(small_model, small_model.preset, dataclasses.replace(config, strict=True))


@pytest.mark.parametrize("backend", RUNTIMES)
def test_pipeline_with_the_engine_runs_the_torch_geometry_on_a_wide_frame(backend, small_model, tmp_path):
    """The CPU engines take any input shape: a KITTI-shaped frame (not 4:3) is fed at the network
    size the pipeline plans for torch (128x64 here), not padded to the whole request (128x96)."""
    frame = np.ascontiguousarray(cv2.resize(read_rgb(KITTI_FRAME), (310, 94), interpolation=cv2.INTER_AREA))
    results, pipes = {}, {}
    for name in ("torch", backend):
        config = PipelineConfig(backend=name, device="cpu", input_size=(128, 96), output_size="input", strict=True,
                                engine_options={} if name == "torch" else {"cache_dir": str(tmp_path)})
        pipes[name] = Pipeline.from_model(small_model, small_model.preset, config)
        assert pipes[name].info["backend"] == name and pipes[name].info["requested_backend"] == name
        results[name] = pipes[name].process(frame)
    assert pipes[backend].network_size_for(310, 94) == pipes["torch"].network_size_for(310, 94) == (128, 64)
    torch_result, other = results["torch"], results[backend]
    assert other.geometry == torch_result.geometry
    assert other.labels.shape == (94, 310) and other.labels.dtype == np.uint8
    assert (other.labels == torch_result.labels).mean() > 0.999
    np.testing.assert_allclose(other.depth_m, torch_result.depth_m, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", RUNTIMES)
def test_int8_pipeline_runs_the_planned_shape_within_the_gate(backend, shipped, int8_engines, cache_dir, calibration):
    """int8 is calibrated on frames at the shapes the pipeline plans, and its graph takes any shape:
    a 4:3 crop of the KITTI frame at the 320x96 request runs at 160x96, as torch runs it, not
    padded to 320x96, with labels within the gate of torch fp32's."""
    weights, model = shipped
    int8_engines(backend)  # built (and cached) with the calibration frames
    frame = np.ascontiguousarray(read_rgb(KITTI_FRAME)[:, 371:871])  # 500x370
    options = {"cache_dir": cache_dir, "calibration": calibration, "calibration_frames": 20}
    pipes = {name: Pipeline.from_model(model, weights.preset, PipelineConfig(
        backend=name, device="cpu", precision=precision, input_size=SIZE, strict=True,
        engine_options={} if name == "torch" else options), weights_sha256=weights.sha256)
        for name, precision in (("torch", "fp32"), (backend, "int8"))}
    assert pipes[backend].info["precision"] == "int8"
    got, want = pipes[backend].process(frame), pipes["torch"].process(frame)
    assert got.geometry == want.geometry and got.geometry.network_size == (160, 96)
    assert (got.labels == want.labels).mean() >= int8.MIN_LABELS_AGREE


def test_auto_on_the_cpu_runs_the_fastest_installed(small_model, tmp_path, caplog):
    from hydranet_ros.runtime.choices import installed_backends
    from hydranet_ros.runtime.fallback import auto_backend

    expected = auto_backend("cpu", "fp32", installed_backends())
    config = PipelineConfig(device="cpu", input_size=(64, 48), engine_options={"cache_dir": str(tmp_path)})
    assert config.backend == "auto"  # the default
    with caplog.at_level(logging.INFO):
        pipe = Pipeline.from_model(small_model, small_model.preset, config)
    assert pipe.info["backend"] == expected and pipe.info["requested_backend"] == "auto"
    assert f"backend auto: {expected}, the fastest installed engine for cpu fp32" in caplog.text
    assert pipe.process(np.zeros((48, 64, 3), np.uint8)).labels.shape == (48, 64)


@pytest.mark.parametrize("backend", RUNTIMES)
def test_build_engine_command_builds_int8_ahead(backend, int8_engines, cache_dir, calibration, capsys):
    import argparse

    from hydranet_ros.commands import build_engine

    built = int8_engines(backend)  # the same build, so the command finds it in the cache
    parser = argparse.ArgumentParser()
    build_engine.add_arguments(parser)
    argv = ["--backend", backend, "--precision", "int8", "--weights", "default", "--size", "320x96",
            "--calibration", calibration, "--calibration-frames", "20", "--cache-dir", cache_dir]
    assert build_engine.run(parser.parse_args(argv)) == 0
    printed = capsys.readouterr().out
    assert str(built.model_path) in printed and "int8 accuracy: labels equal to fp32 on" in printed
    # Without --size an int8 model cannot be built: it is calibrated for one size.
    with pytest.raises(EngineError, match="one input size"):
        build_engine.run(parser.parse_args(argv[:6] + ["--size", "input"] + argv[8:]))
