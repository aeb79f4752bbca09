"""One table of backends and one check of a request (issue 11, item 3): the pipeline config, the
fallback logic and create_engine all ask choices.problems, and the table agrees with the code."""

from __future__ import annotations

import inspect

import pytest

from hydranet_ros.runtime.choices import AUTO, BACKENDS, ENGINES, installed_backends, options_of, problems
from hydranet_ros.runtime.engines.base import EngineError, create_engine, engine_class

STANDARD = {"model", "device", "precision", "input_size", "weights_sha256"}


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_table_matches_each_engines_build(name):
    cls = engine_class(name)  # importing an engine module imports no runtime (test_heavy_imports)
    assert cls.name == name
    parameters = set(inspect.signature(cls.build).parameters)
    assert STANDARD <= parameters
    assert set(ENGINES[name].options) == parameters - STANDARD
    assert cls.fixed_input_size == ENGINES[name].fixed_input_size


def test_backend_names():
    assert BACKENDS == (AUTO, "torch", "cuda-graph", "tensorrt", "onnxruntime", "openvino")
    assert ENGINES["openvino"].runs("cpu", "int8") and not ENGINES["openvino"].runs("cuda", "fp32")
    assert ENGINES["torch"].runs("cuda", "fp16") and not ENGINES["torch"].runs("cpu", "fp16")


def test_a_well_formed_request_has_no_problems():
    for backend in BACKENDS:
        assert problems(backend=backend, device="auto", precision="fp32", options={}) == []
    assert problems(backend="tensorrt", device="cuda:1", precision="int8", options={"calibration": "/f"}) == []
    assert problems(backend=AUTO, device="cpu", precision="int8", options={"calibration": "/f", "threads": 2}) == []


@pytest.mark.parametrize("request_, fragment", [
    (dict(backend="onnx"), "backend 'onnx' is not one of auto, torch"),
    (dict(device="gpu"), "device 'gpu' is not one of"),
    (dict(device="cuda:"), "device 'cuda:' is not one of"),
    (dict(precision="bf16"), "precision 'bf16' is not one of fp32, fp16, int8"),
    (dict(options=[("compile", True)]), "engine_options must map option names"),
    (dict(backend="torch", options={"input_size": (64, 48)}), "backend torch has no option input_size (it has: compile, cudnn_benchmark)"),
    (dict(backend="cuda-graph", options={"compile": True}), "backend cuda-graph has no option compile (it has: none)"),
    (dict(backend="openvino", options={"calibraton": "/f"}), "backend openvino has no option calibraton"),
    (dict(backend=AUTO, options={"turbo": 1}), "backend auto has no option turbo"),
])
def test_each_problem_is_one_line_with_the_reason(request_, fragment):
    found = problems(**{"backend": "torch", "device": "auto", "precision": "fp32", "options": {}, **request_})
    assert len(found) == 1 and fragment in found[0], found


def test_several_problems_are_all_reported():
    assert len(problems(backend="x", device="y", precision="z", options={"a": 1})) == 3  # options of an unknown backend: not judged


def test_create_engine_asks_the_same_check():
    import torch

    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.presets import get_preset

    model = HydraNet(get_preset("kitti")).eval()
    with pytest.raises(EngineError, match="backend torch has no option input_size"):
        create_engine("torch", model, device=torch.device("cpu"), precision="fp32", options={"input_size": (64, 48)})
    with pytest.raises(EngineError, match="unknown backend"):
        create_engine("auto", model, device=torch.device("cpu"), precision="fp32")  # auto is chosen before a build


def test_auto_accepts_any_engines_options():
    assert set(options_of(AUTO)) == {o for spec in ENGINES.values() for o in spec.options}


def test_installed_backends_finds_without_importing():
    found = installed_backends()
    assert {"torch", "cuda-graph"} <= found
    assert ("onnxruntime" in found) == (__import__("importlib").util.find_spec("onnxruntime") is not None)
