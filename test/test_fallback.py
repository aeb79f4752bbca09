"""choose_runtime: which backend, device and precision run, as a plain function of the facts
(CUDA present? which runtimes installed?), tested without a GPU or any runtime."""

import pytest

from hydranet_ros.runtime.choices import ENGINES
from hydranet_ros.runtime.fallback import AUTO_ORDER, FallbackRefused, auto_backend, choose_runtime, fallbacks, RuntimeChoice

EVERYTHING = frozenset(ENGINES)
BARE = frozenset({"torch", "cuda-graph"})  # what a plain pip install of torch has


def choose(**kw):
    args = dict(backend="torch", device="auto", precision="fp32", strict=False, cuda_available=True, installed=EVERYTHING)
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
    c = choose(backend="tensorrt", precision="int8", installed=BARE)
    assert (c.backend, c.device, c.precision) == ("torch", "cuda", "fp16")
    assert any("torch_tensorrt is not installed" in w for w in c.warnings)


def test_tensorrt_without_cuda_runs_torch_on_cpu():
    c = choose(backend="tensorrt", cuda_available=False)
    assert (c.backend, c.device, c.precision) == ("torch", "cpu", "fp32")
    assert any("tensorrt needs CUDA" in w for w in c.warnings)


def test_tensorrt_kept_when_available():
    c = choose(backend="tensorrt", precision="int8")
    assert (c.backend, c.precision, c.warnings) == ("tensorrt", "int8", ())


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_cpu_runtimes_run_on_the_cpu_even_when_cuda_is_there(backend):
    assert choose(backend=backend, precision="int8") == RuntimeChoice(backend, "cpu", "int8")
    # Asked for CUDA explicitly: the device wins, with a warning.
    c = choose(backend=backend, device="cuda")
    assert (c.backend, c.device) == ("torch", "cuda") and f"{backend} runs on the CPU only" in c.warnings[0]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_missing_cpu_runtime_falls_back_to_torch(backend):
    c = choose(backend=backend, precision="int8", installed=BARE, cuda_available=False)
    assert (c.backend, c.device, c.precision) == ("torch", "cpu", "fp32")
    assert f"{ENGINES[backend].requires} is not installed" in c.warnings[0]


# --- backend: auto ------------------------------------------------------------------------------
@pytest.mark.parametrize("installed, cuda, precision, expected", [
    (EVERYTHING, True, "fp32", ("tensorrt", "cuda", "fp32")),
    (EVERYTHING, True, "fp16", ("tensorrt", "cuda", "fp16")),
    (BARE | {"openvino"}, True, "fp16", ("cuda-graph", "cuda", "fp16")),
    (EVERYTHING, False, "fp32", ("openvino", "cpu", "fp32")),
    (EVERYTHING, False, "int8", ("openvino", "cpu", "int8")),
    (BARE | {"onnxruntime"}, False, "int8", ("onnxruntime", "cpu", "int8")),
    (BARE, False, "fp32", ("torch", "cpu", "fp32")),
])
def test_auto_takes_the_fastest_installed_engine(installed, cuda, precision, expected):
    c = choose(backend="auto", precision=precision, installed=installed, cuda_available=cuda)
    assert (c.backend, c.device, c.precision) == expected
    assert c.warnings == () and c.reason.startswith(f"backend auto: {expected[0]}")


def test_auto_order_is_the_documented_one():
    assert AUTO_ORDER == {"cuda": ("tensorrt", "cuda-graph", "torch"), "cpu": ("openvino", "onnxruntime", "torch")}


def test_auto_without_a_fixed_size_skips_tensorrt():
    assert auto_backend("cuda", "fp16", EVERYTHING, fixed_input_size=False) == "cuda-graph"
    assert auto_backend("cuda", "fp16", EVERYTHING) == "tensorrt"


def test_auto_steps_down_when_nothing_installed_runs_the_precision():
    c = choose(backend="auto", precision="int8", installed=BARE, cuda_available=False)
    assert (c.backend, c.precision) == ("torch", "fp32") and "int8 needs" in c.warnings[0]
    c = choose(backend="auto", precision="int8", installed=BARE)
    assert (c.backend, c.device, c.precision) == ("torch", "cuda", "fp16")
    c = choose(backend="auto", precision="fp16", cuda_available=False)
    assert (c.backend, c.precision) == ("openvino", "fp32") and "fp16 needs CUDA" in c.warnings[0]
    with pytest.raises(FallbackRefused, match="strict"):
        choose(backend="auto", precision="int8", installed=BARE, cuda_available=False, strict=True)


@pytest.mark.parametrize("kw", [
    dict(device="cuda", cuda_available=False),
    dict(backend="tensorrt", installed=BARE),
    dict(backend="cuda-graph", cuda_available=False),
    dict(backend="openvino", installed=BARE),
    dict(backend="onnxruntime", device="cuda"),
    dict(precision="int8"),
    dict(precision="fp16", device="cpu"),
])
def test_strict_refuses_every_fallback(kw):
    with pytest.raises(FallbackRefused, match="strict"):
        choose(strict=True, **kw)


def test_unknown_values_are_refused():
    for kw in (dict(backend="tflite"), dict(device="tpu"), dict(device="cuda:x"), dict(precision="fp8")):
        with pytest.raises(ValueError):
            choose(**kw)


# --- what runs instead when a build fails -------------------------------------------------------
def test_fallback_chains():
    assert fallbacks(RuntimeChoice("torch", "cpu", "fp32")) == []
    assert fallbacks(RuntimeChoice("tensorrt", "cuda", "int8")) == [RuntimeChoice("torch", "cuda", "fp16")]
    assert fallbacks(RuntimeChoice("cuda-graph", "cuda", "fp32")) == [RuntimeChoice("torch", "cuda", "fp32")]
    # A CPU int8 model that misses its gate: the same runtime in fp32 first, then torch.
    assert fallbacks(RuntimeChoice("openvino", "cpu", "int8")) == [RuntimeChoice("openvino", "cpu", "fp32"),
                                                                   RuntimeChoice("torch", "cpu", "fp32")]
    assert fallbacks(RuntimeChoice("onnxruntime", "cpu", "fp32")) == [RuntimeChoice("torch", "cpu", "fp32")]
