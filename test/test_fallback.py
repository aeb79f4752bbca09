import pytest

from hydranet_ros.runtime.fallback import FallbackRefused, choose_runtime


def choose(**kw):
    args = dict(backend="torch", device="auto", precision="fp32", strict=False, cuda_available=True, tensorrt_available=True)
    args.update(kw)
    return choose_runtime(**args)


def test_auto_picks_cuda_when_present_and_cpu_otherwise():
    assert choose().device == "cuda"
    assert choose(cuda_available=False).device == "cpu"
    assert choose(cuda_available=False).warnings == ()


def test_missing_cuda_falls_back_to_cpu_with_warning():
    c = choose(device="cuda", precision="fp16", cuda_available=False)
    assert (c.device, c.precision) == ("cpu", "fp32")
    assert any("CUDA is not available" in w for w in c.warnings)


def test_missing_tensorrt_falls_back_to_cuda_fp16():
    c = choose(backend="tensorrt", precision="int8", tensorrt_available=False)
    assert (c.backend, c.device, c.precision) == ("torch", "cuda", "fp16")
    assert any("torch-tensorrt is not installed" in w for w in c.warnings)


def test_tensorrt_without_cuda_runs_torch_on_cpu():
    c = choose(backend="tensorrt", cuda_available=False)
    assert (c.backend, c.device, c.precision) == ("torch", "cpu", "fp32")


def test_tensorrt_kept_when_available():
    c = choose(backend="tensorrt", precision="int8")
    assert (c.backend, c.precision, c.warnings) == ("tensorrt", "int8", ())


@pytest.mark.parametrize("kw", [
    dict(device="cuda", cuda_available=False),
    dict(backend="tensorrt", tensorrt_available=False),
    dict(backend="cuda-graph", cuda_available=False),
    dict(precision="int8"),
    dict(precision="fp16", device="cpu"),
])
def test_strict_refuses_every_fallback(kw):
    with pytest.raises(FallbackRefused, match="strict"):
        choose(strict=True, **kw)


def test_unknown_values_are_refused():
    with pytest.raises(ValueError):
        choose(backend="openvino")
