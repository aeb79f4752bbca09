"""Which backend, device and precision actually run, given what was asked and what exists.

Plain functions of facts (is CUDA there? which runtimes are installed?) so that every choice and
every fallback is tested without a GPU or the runtimes. Without ``strict`` a missing accelerator
or runtime is a warning and a documented step down; with it, an error.

``backend: auto`` takes the fastest engine installed for the device, in the order of
``AUTO_ORDER`` (measured: benchmarks/bench_cpu.py on the CPU; bench_gpu.py on CUDA).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Collection, Mapping

from hydranet_ros.errors import HydraNetError
from hydranet_ros.runtime.choices import AUTO, ENGINES, build_size, problems

if TYPE_CHECKING:
    from hydranet_ros.runtime.engines.base import Engine

log = logging.getLogger(__name__)

# Fastest first. CUDA: a TensorRT engine, else the captured graph. CPU: OpenVINO was 1.9-2.2x and
# ONNX Runtime 2.0-2.5x the torch path in fp32 when filed; int8 OpenVINO 3.9x, ONNX Runtime 3x.
AUTO_ORDER = {"cuda": ("tensorrt", "cuda-graph", "torch"), "cpu": ("openvino", "onnxruntime", "torch")}


class FallbackRefused(HydraNetError, RuntimeError):
    """strict was set and what was asked for cannot run here."""


@dataclass(frozen=True)
class RuntimeChoice:
    backend: str
    device: str  # "cpu" or "cuda"
    precision: str
    warnings: tuple[str, ...] = field(default=())
    reason: str = ""  # why this backend, when the user left the choice to us ('auto')


def torch_precision(device: str, precision: str) -> str:
    """The precision the torch engine runs instead of ``precision`` on ``device``."""
    if ENGINES["torch"].runs(device, precision):
        return precision
    return "fp16" if device == "cuda" else "fp32"


def choose_runtime(
    *, backend: str, device: str, precision: str, strict: bool, cuda_available: bool,
    installed: Collection[str], fixed_input_size: bool = True,
) -> RuntimeChoice:
    """``installed``: the backends whose runtime is importable (choices.installed_backends()).
    ``fixed_input_size``: whether the pipeline has one input size (TensorRT needs one)."""
    if found := problems(backend=backend, device=device, precision=precision):
        raise ValueError("; ".join(found))
    warnings: list[str] = []

    def step_down(problem: str, fallback: str) -> None:
        # Strict names what it refuses to do, never claims to be doing it ("running on CPU").
        if strict:
            raise FallbackRefused(f"{problem} (strict: not falling back to running {fallback})")
        warnings.append(f"{problem}; running {fallback}")

    # The device: 'auto' means CUDA when there is one and the backend can use it.
    if device == "auto":
        cuda_capable = backend == AUTO or "cuda" in ENGINES[backend].devices
        device = "cuda" if cuda_available and cuda_capable else "cpu"
    elif device != "cpu":
        if cuda_available:
            device = "cuda"
        else:
            step_down(f"device {device} asked for but CUDA is not available", "on CPU")
            device = "cpu"

    reason = ""
    if backend == AUTO:
        if precision == "fp16" and device == "cpu":
            step_down("fp16 needs CUDA (CPU half-precision convolutions are slow)", "fp32")
            precision = "fp32"
        backend = auto_backend(device, precision, installed, fixed_input_size=fixed_input_size)
        if backend is None:
            fallback = torch_precision(device, precision)
            step_down(f"{precision} needs {_who_runs(device, precision)}, and none is installed",
                      f"torch on {device} in {fallback}")
            backend, precision = "torch", fallback
        reason = f"backend auto: {backend}, the fastest installed engine for {device} {precision}"
    else:
        spec = ENGINES[backend]
        why = None
        if backend not in installed:
            why = f"{spec.requires} is not installed"
        elif device not in spec.devices:
            why = f"{backend} needs CUDA" if "cpu" not in spec.devices else f"{backend} runs on the CPU only"
        if why:
            fallback = torch_precision(device, precision)
            step_down(f"backend {backend} asked for but {why}", f"torch on {device.upper()} in {fallback}")
            backend, precision = "torch", fallback
        spec = ENGINES[backend]
        if not spec.runs(device, precision):
            if precision == "fp16":
                step_down("fp16 needs CUDA (CPU half-precision convolutions are slow)", "fp32")
                precision = "fp32"
            else:  # int8
                fallback = "fp16" if spec.runs(device, "fp16") else "fp32"
                step_down(f"int8 needs {_who_runs(device, 'int8')}", f"{backend} in {fallback}")
                precision = fallback
    return RuntimeChoice(backend=backend, device=device, precision=precision, warnings=tuple(warnings), reason=reason)


def auto_backend(device: str, precision: str, installed: Collection[str], *, fixed_input_size: bool = True) -> str | None:
    """The first backend of AUTO_ORDER[device] that is installed and runs ``precision`` there."""
    for name in AUTO_ORDER[device]:
        spec = ENGINES[name]
        if name in installed and spec.runs(device, precision) and (fixed_input_size or not spec.fixed_input_size):
            return name
    return None


def _who_runs(device: str, precision: str) -> str:
    names = [name for name, spec in ENGINES.items() if spec.runs(device, precision)]
    return f"{' or '.join(names)} on {'CUDA' if device == 'cuda' else 'the CPU'}"


def fallbacks(choice: RuntimeChoice) -> list[RuntimeChoice]:
    """What runs instead, in order, when ``choice``'s engine fails to build (a TensorRT build out
    of memory, a failed graph capture, an int8 model that misses its accuracy gate): the same
    runtime in fp32 for a CPU int8 engine, then eager torch on the same device."""
    if choice.backend == "torch":
        return []  # the last resort: its failure is the error
    steps = []
    if choice.precision == "int8" and ENGINES[choice.backend].runs(choice.device, "fp32") and choice.device == "cpu":
        steps.append(dataclasses.replace(choice, precision="fp32", warnings=(), reason=""))
    steps.append(RuntimeChoice("torch", choice.device, torch_precision(choice.device, choice.precision)))
    return steps


def build_engine(
    choice: RuntimeChoice, model, *, device, input_size, weights_sha256: str, strict: bool,
    requested_backend: str, options: Mapping[str, object] | None = None, create: Callable | None = None,
) -> tuple[Engine, tuple[str, ...]]:
    """The engine for ``choice``; if it fails to build, the next of ``fallbacks(choice)`` with a
    warning, or FallbackRefused with ``strict``. Returns the engine and the warnings it added.

    ``options`` are for ``requested_backend``; each engine tried gets those it takes (options of a
    backend that is not running are dropped). A misspelt option is an error, not a fallback.
    """
    from hydranet_ros.runtime.engines.base import EngineError, create_engine

    create = create or create_engine
    options = dict(options or {})
    if choice.backend == requested_backend and (found := problems(backend=choice.backend, device=choice.device,
                                                                  precision=choice.precision, options=options)):
        raise EngineError("; ".join(found))
    warnings: list[str] = []
    attempts = [choice, *fallbacks(choice)]
    for attempt, following in zip(attempts, [*attempts[1:], None]):
        own = {k: v for k, v in options.items() if k in ENGINES[attempt.backend].options}
        try:
            engine = create(attempt.backend, model, device=device, precision=attempt.precision,
                            input_size=build_size(attempt.backend, input_size),
                            weights_sha256=weights_sha256, options=own)
            return engine, tuple(warnings)
        except EngineError as exc:
            if following is None:
                raise
            problem = f"backend {attempt.backend} could not be built ({exc})"
            fallback = f"{following.backend} on {device.type} in {following.precision}"
            if strict:
                raise FallbackRefused(f"{problem} (strict: not falling back to running {fallback})") from exc
            message = f"{problem}; running {fallback}"
            log.warning(message)
            warnings.append(message)
    raise AssertionError("unreachable")
