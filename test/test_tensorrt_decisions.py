"""Everything the TensorRT backend decides, tested without TensorRT: supported versions, the
precision arguments per torch-tensorrt release, output order, and clear errors."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset
from hydranet_ros.runtime.engines.base import EngineError, create_engine
from hydranet_ros.runtime.engines.tensorrt_engine import (
    check_supported, compile_kwargs, engine_dtype, output_order, parse_version,
)


@pytest.mark.parametrize("text, expected", [
    ("2.5.0", (2, 5, 0)),
    ("2.5.0a0+872d972e41.nv24.08", (2, 5, 0)),  # JetPack wheel
    ("2.10.0.dev20250101+cu128", (2, 10, 0)),
    ("2.13.0+cu130", (2, 13, 0)),
    ("2.8", (2, 8, 0)),
])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_unreadable_version():
    with pytest.raises(EngineError, match="cannot read"):
        parse_version("unknown")


@pytest.mark.parametrize("version", ["2.5.0", "2.9.1", "2.10.0", "2.13.0+cu130"])
def test_supported_versions(version):
    check_supported(version)


@pytest.mark.parametrize("version", ["1.4.0", "2.2.0", "2.4.1", "2.14.0", "3.0.0"])
def test_unsupported_versions_are_refused_with_the_range(version):
    with pytest.raises(EngineError, match=r"not supported.*>=2\.5,<2\.14"):
        check_supported(version)
    with pytest.raises(EngineError, match="not supported"):
        compile_kwargs(version, "fp16")


@pytest.mark.parametrize("version", ["2.5.0", "2.6.1", "2.8.0", "2.9.0"])
def test_weakly_typed_releases_get_enabled_precisions(version):
    assert compile_kwargs(version, "fp16")["enabled_precisions"] == {torch.float16}
    assert compile_kwargs(version, "fp32")["enabled_precisions"] == {torch.float32}
    assert compile_kwargs(version, "int8")["enabled_precisions"] == {torch.float16, torch.int8}
    assert "use_explicit_typing" not in compile_kwargs(version, "fp16")


@pytest.mark.parametrize("version", ["2.10.0", "2.11.0", "2.12.1", "2.13.0"])
def test_explicitly_typed_releases_get_precision_from_dtypes_only(version):
    # 2.10-2.12 reject enabled_precisions other than fp32 under explicit typing (their default);
    # 2.13 removed both options: precision comes from the model's and input's dtype.
    for precision in ("fp32", "fp16", "int8"):
        kwargs = compile_kwargs(version, precision)
        assert "enabled_precisions" not in kwargs and "use_explicit_typing" not in kwargs


def test_dtypes_per_precision():
    assert engine_dtype("fp32") == torch.float32
    assert engine_dtype("fp16") == torch.float16
    assert engine_dtype("int8") == torch.float16  # layers left unquantised run in fp16
    with pytest.raises(EngineError, match="not bf16"):
        compile_kwargs("2.9.0", "bf16")


def test_output_order_follows_the_index_not_the_text():
    assert output_order(["output10", "output2", "output0", "output1"]) == ["output0", "output1", "output2", "output10"]
    with pytest.raises(EngineError, match="unexpected TensorRT output name"):
        output_order(["segm"])


MODEL = HydraNet(get_preset("kitti")).eval()


def test_needs_cuda():
    with pytest.raises(EngineError, match="needs a CUDA device"):
        create_engine("tensorrt", MODEL, device=torch.device("cpu"), precision="fp16", input_size=(64, 48))


@pytest.fixture
def pretend_cuda(monkeypatch):
    """Get past the CUDA check on a machine without one (nothing reaches the GPU in these tests)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)  # engines hold 'cuda:0', not 'cuda'


def test_needs_a_fixed_size(pretend_cuda):
    with pytest.raises(EngineError, match="one input size"):
        create_engine("tensorrt", MODEL, device=torch.device("cuda"), precision="fp16", input_size=None)


@pytest.fixture
def fake_tensorrt(pretend_cuda, monkeypatch):
    """A supported torch-tensorrt and a GPU identity, enough to reach the cache decisions."""
    from hydranet_ros.runtime import engine_cache

    monkeypatch.setitem(sys.modules, "torch_tensorrt", types.SimpleNamespace(__version__="2.5.0"))
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setattr(engine_cache, "gpu_identity", lambda device: ("Orin", "8.7"))


def test_int8_needs_calibration_frames_or_a_prebuilt_engine(fake_tensorrt, tmp_path):
    with pytest.raises(EngineError, match="calibration frames.*hydranet build-engine --precision int8"):
        create_engine("tensorrt", MODEL, device=torch.device("cuda"), precision="int8", input_size=(64, 48),
                      options={"cache_dir": str(tmp_path)})


def test_int8_without_frames_finds_the_engine_built_ahead(fake_tensorrt, tmp_path, monkeypatch):
    """The node has no calibration frames: it must find what build-engine made with them."""
    from hydranet_ros.model.checkpoints import weights_sha256
    from hydranet_ros.runtime import engine_cache
    from hydranet_ros.runtime.engines import tensorrt_engine

    versions = {"torch": torch.__version__, "torch_tensorrt": "2.5.0", "tensorrt": "10.3.0",
                "modelopt": tensorrt_engine._modelopt_version(), "int8_calibration": "feedbeef00112233"}
    key = engine_cache.make_key(weights_sha256=weights_sha256(MODEL.state_dict()), input_size=(64, 48), precision="int8",
                                backend="tensorrt", library_versions=versions, gpu_name="Orin", compute_capability="8.7")
    built = engine_cache.EngineCache(directory=tmp_path).get_or_build(
        key, suffix=tensorrt_engine.ENGINE_SUFFIX, build=lambda p: p.write_bytes(b"int8 engine"))
    loaded = []

    class Runner:
        input_dtype = torch.float32
        max_batch = 1

        def __init__(self, trt, data, *, device):
            loaded.append(data)

        def check(self, *, shape, outputs, max_batch):
            assert max_batch == 1

    monkeypatch.setattr(tensorrt_engine, "_TrtRunner", Runner)
    engine = create_engine("tensorrt", MODEL, device=torch.device("cuda"), precision="int8", input_size=(64, 48),
                           options={"cache_dir": str(tmp_path)})
    assert loaded == [b"int8 engine"] and engine.engine_path == built.path


def test_missing_torch_tensorrt_is_an_engine_error(pretend_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # import fails as if not installed
    with pytest.raises(EngineError, match="cannot be imported"):
        create_engine("tensorrt", MODEL, device=torch.device("cuda"), precision="fp16", input_size=(64, 48))


def test_unsupported_installed_version_is_refused_before_building(pretend_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", types.SimpleNamespace(__version__="2.4.0"))
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    with pytest.raises(EngineError, match=r"torch-tensorrt 2\.4\.0 is not supported"):
        create_engine("tensorrt", MODEL, device=torch.device("cuda"), precision="fp16", input_size=(64, 48))


def test_unknown_option_names_the_real_ones():
    with pytest.raises(EngineError, match="has no option turbo.*calibration"):
        create_engine("tensorrt", MODEL, device=torch.device("cpu"), precision="fp16", input_size=(64, 48), options={"turbo": True})
