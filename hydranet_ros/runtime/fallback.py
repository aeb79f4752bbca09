"""Which backend, device and precision actually run, given what was asked and what exists.

A plain function of facts (is CUDA there? is TensorRT?) so every fallback is tested without a
GPU. Without ``strict`` a missing accelerator is a warning and a documented step down; with it,
an error.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

if TYPE_CHECKING:
    from hydranet_ros.runtime.engines.base import Engine

log = logging.getLogger(__name__)

from hydranet_ros.errors import HydraNetError
from hydranet_ros.runtime.choices import BACKENDS, DEVICES, PRECISIONS


class FallbackRefused(HydraNetError, RuntimeError):
    """strict was set and what was asked for cannot run here."""


@dataclass(frozen=True)
class RuntimeChoice:
    backend: str
    device: str  # "cpu" or "cuda"
    precision: str
    warnings: tuple[str, ...] = field(default=())


def choose_runtime(
    *, backend: str, device: str, precision: str, strict: bool, cuda_available: bool, tensorrt_available: bool,
) -> RuntimeChoice:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    warnings: list[str] = []

    def step_down(problem: str, fallback: str) -> None:
        # Strict names what it refuses to do, never claims to be doing it ("running on CPU").
        if strict:
            raise FallbackRefused(f"{problem} (strict: not falling back to running {fallback})")
        warnings.append(f"{problem}; running {fallback}")

    wants_cuda = device != "cpu"
    if device == "auto":
        device = "cuda" if cuda_available else "cpu"
    elif wants_cuda and not cuda_available:
        step_down(f"device {device} asked for but CUDA is not available", "on CPU")
        device = "cpu"

    if backend == "tensorrt" and not (tensorrt_available and device != "cpu"):
        why = "torch-tensorrt is not installed" if not tensorrt_available else "TensorRT needs CUDA"
        if device != "cpu":
            step_down(f"backend tensorrt asked for but {why}", "torch on CUDA in fp16")
            backend, precision = "torch", "fp16"
        else:
            step_down(f"backend tensorrt asked for but {why}", "torch on CPU in fp32")
            backend, precision = "torch", "fp32"
    if backend == "cuda-graph" and device == "cpu":
        step_down("backend cuda-graph needs CUDA", "torch on CPU")
        backend = "torch"
    if precision == "int8" and backend != "tensorrt":
        fallback = "fp16" if device != "cpu" else "fp32"
        step_down("int8 needs the tensorrt backend", f"{backend} in {fallback}")
        precision = fallback
    if precision == "fp16" and device == "cpu":
        step_down("fp16 needs CUDA (CPU half-precision convolutions are slow)", "fp32")
        precision = "fp32"
    return RuntimeChoice(backend=backend, device=device, precision=precision, warnings=tuple(warnings))


# Backends whose *build* can fail on a machine that has what they need (a TensorRT build runs out
# of memory or meets an unsupported layer; a graph capture fails): they step down to eager torch.
ACCELERATED = ("tensorrt", "cuda-graph")


def build_engine(
    choice: RuntimeChoice, model, *, device, input_size, weights_sha256: str, strict: bool,
    requested_backend: str, options: Mapping[str, object] | None = None, create: Callable | None = None,
) -> tuple[Engine, tuple[str, ...]]:
    """The engine for ``choice``; if an accelerated backend fails to build, eager torch on the same
    device (fp16 on CUDA for tensorrt, as when TensorRT is missing) with a warning, or
    FallbackRefused with ``strict``. Returns the engine and the warnings it added.

    ``options`` are for ``requested_backend``: when choose_runtime already moved to another
    backend they are dropped, since they belong to the backend that is not running.
    """
    from hydranet_ros.runtime.engines.base import EngineError, create_engine, engine_class

    create = create or create_engine
    options = dict(options or {})
    accepted = set(inspect.signature(engine_class(choice.backend).build).parameters)
    if choice.backend != requested_backend:
        options = {k: v for k, v in options.items() if k in accepted}
    elif unknown := sorted(set(options) - accepted):
        # A misspelt option is a configuration error, not a build failure to fall back from.
        raise EngineError(f"backend {choice.backend} has no option {', '.join(unknown)}")
    try:
        engine = create(choice.backend, model, device=device, precision=choice.precision, input_size=input_size,
                        weights_sha256=weights_sha256, options=options)
        return engine, ()
    except EngineError as exc:
        if choice.backend not in ACCELERATED:
            raise
        precision = "fp16" if choice.backend == "tensorrt" and device.type == "cuda" else choice.precision
        problem, fallback = f"backend {choice.backend} could not be built ({exc})", f"torch on {device.type} in {precision}"
        if strict:
            raise FallbackRefused(f"{problem} (strict: not falling back to running {fallback})") from exc
        message = f"{problem}; running {fallback}"
        log.warning(message)
        engine = create("torch", model, device=device, precision=precision, input_size=input_size,
                        weights_sha256=weights_sha256, options={})
        return engine, (message,)
