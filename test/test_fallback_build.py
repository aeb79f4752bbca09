"""Fallbacks at engine build time: an accelerated backend that exists but fails to build steps
down to eager torch with a warning, or is an error with strict; each promised message appears."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset
from hydranet_ros.runtime.engines.base import EngineError
from hydranet_ros.runtime.fallback import FallbackRefused, RuntimeChoice, build_engine
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig

PRESET = get_preset("kitti")
MODEL = HydraNet(PRESET).eval()
CPU = torch.device("cpu")
FRAME = np.zeros((48, 64, 3), np.uint8)


class Recorder:
    """create_engine stand-in: fails for the backends named, records every call."""

    def __init__(self, failing: set[str]) -> None:
        self.failing, self.calls = failing, []

    def __call__(self, name, model, *, device, precision, input_size, weights_sha256, options):
        self.calls.append((name, device.type, precision, dict(options)))
        if name in self.failing:
            raise EngineError(f"{name} build exploded: out of memory")
        return f"<{name} {precision}>"


def build(choice, *, strict=False, requested=None, options=None, device=torch.device("cuda"), create=None):
    return build_engine(choice, MODEL, device=device, input_size=(64, 48), weights_sha256="", strict=strict,
                        requested_backend=requested or choice.backend, options=options, create=create)


def test_tensorrt_build_failure_falls_back_to_cuda_fp16_with_warning(caplog):
    create = Recorder({"tensorrt"})
    with caplog.at_level(logging.WARNING):
        engine, warnings = build(RuntimeChoice("tensorrt", "cuda", "int8"), create=create,
                                 options={"calibration": "/frames"})
    assert engine == "<torch fp16>"
    assert create.calls == [("tensorrt", "cuda", "int8", {"calibration": "/frames"}), ("torch", "cuda", "fp16", {})]
    assert len(warnings) == 1 and "tensorrt could not be built" in warnings[0] and "out of memory" in warnings[0]
    assert "running torch on cuda in fp16" in caplog.text


def test_tensorrt_build_failure_with_strict_is_an_error():
    create = Recorder({"tensorrt"})
    with pytest.raises(FallbackRefused, match=r"tensorrt could not be built .*out of memory.*strict: not falling back"):
        build(RuntimeChoice("tensorrt", "cuda", "fp16"), strict=True, create=create)
    assert [c[0] for c in create.calls] == ["tensorrt"]


def test_cuda_graph_capture_failure_keeps_the_precision(caplog):
    create = Recorder({"cuda-graph"})
    with caplog.at_level(logging.WARNING):
        engine, warnings = build(RuntimeChoice("cuda-graph", "cuda", "fp32"), create=create)
    assert engine == "<torch fp32>" and "cuda-graph could not be built" in caplog.text


def test_torch_failure_is_not_hidden():
    with pytest.raises(EngineError, match="torch build exploded"):
        build(RuntimeChoice("torch", "cuda", "fp16"), create=Recorder({"torch"}))


def test_options_for_a_backend_that_is_not_running_are_dropped():
    create = Recorder(set())
    build(RuntimeChoice("torch", "cuda", "fp16"), requested="tensorrt", create=create,
          options={"calibration": "/frames", "cache_dir": "/x"})
    assert create.calls == [("torch", "cuda", "fp16", {})]
    build(RuntimeChoice("torch", "cuda", "fp16"), requested="torch", create=create, options={"compile": False})
    assert create.calls[-1][3] == {"compile": False}


# --- real engines on this CPU-only machine ----------------------------------------------------------
@pytest.mark.parametrize("backend", ["tensorrt", "cuda-graph"])
def test_real_build_failures_step_down_to_torch(backend, caplog):
    with caplog.at_level(logging.WARNING):
        engine, warnings = build(RuntimeChoice(backend, "cpu", "fp32"), device=CPU)
    assert engine.name == "torch" and engine.device.type == "cpu"
    assert f"backend {backend} could not be built" in caplog.text and "needs a CUDA device" in caplog.text


def test_pipeline_reports_what_actually_runs(caplog):
    config = PipelineConfig(backend="tensorrt", device="cuda", precision="int8", input_size=(64, 48),
                            engine_options={"calibration": "/frames"})
    with caplog.at_level(logging.WARNING):
        pipe = Pipeline.from_model(MODEL, PRESET, config)
    if torch.cuda.is_available():  # tensorrt missing -> CUDA fp16 (int8 needs TensorRT)
        assert (pipe.info["backend"], pipe.info["device"], pipe.info["precision"]) == ("torch", "cuda:0", "fp16")
        assert "torch-tensorrt is not installed" in caplog.text
    else:
        assert (pipe.info["backend"], pipe.info["device"], pipe.info["precision"]) == ("torch", "cpu", "fp32")
        assert "CUDA is not available" in caplog.text
    assert pipe.warnings and all(w in caplog.text for w in pipe.warnings)
    assert pipe.process(FRAME).labels.shape == (48, 64)


@pytest.mark.parametrize("config", [
    dict(backend="tensorrt", device="cuda", precision="fp16"),
    dict(backend="cuda-graph", device="auto", precision="fp32"),
    dict(backend="torch", device="cuda", precision="fp32"),
])
def test_pipeline_strict_refuses(config):
    if torch.cuda.is_available():
        pytest.skip("these steps down only happen without CUDA")
    with pytest.raises(FallbackRefused, match="strict"):
        Pipeline.from_model(MODEL, PRESET, PipelineConfig(strict=True, input_size=(64, 48), **config))


def test_engine_options_are_validated():
    with pytest.raises(ValueError, match="engine_options"):
        PipelineConfig(engine_options=[("compile", True)])
    # Refused when the config is made, with the options the backend has, before anything is built.
    with pytest.raises(ValueError, match="has no option turbo"):
        PipelineConfig(backend="torch", device="cpu", input_size=(64, 48), engine_options={"turbo": 1})
    # A build() argument is not an option: it used to pass one check, fail the next and fall back.
    for backend in ("tensorrt", "torch", "openvino", "auto"):
        with pytest.raises(ValueError, match="has no option input_size"):
            PipelineConfig(backend=backend, engine_options={"input_size": (64, 48)})


def test_misspelt_option_is_an_error_not_a_fallback():
    create = Recorder(set())
    with pytest.raises(EngineError, match="has no option calibraton"):
        build(RuntimeChoice("tensorrt", "cuda", "int8"), create=create, options={"calibraton": "/frames"})
    assert create.calls == []
