"""The one interface every inference backend implements, and the map from name to backend.

Backends are named by module path in runtime/choices.ENGINES, not imported here, so that choosing
``torch`` never imports TensorRT, ONNX Runtime or OpenVINO (large, and absent on most machines).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import ClassVar, Mapping

import torch

from hydranet_ros.errors import HydraNetError
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.runtime.choices import ENGINES, problems

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


class EngineError(HydraNetError, RuntimeError):
    """The engine cannot be built or run as asked; the message says why."""


class Engine(ABC):
    """Runs the network on a normalised (N,3,H,W) batch already on ``device`` in ``dtype``.

    Returns the network's named outputs ({'segm', 'depth'[, 'normals']}) at 1/4 resolution, with
    the same batch dimension N.
    """

    name: ClassVar[str]
    # Built for one input shape (TensorRT): another size needs a new build, not just other input.
    fixed_input_size: ClassVar[bool] = False
    # The most frames one call takes (N): None = any. An engine that does not say runs one frame
    # at a time (the pipeline splits a batch of cameras into calls of at most this many).
    max_batch: int | None = 1
    # Frames the engine can run at the same time, each on its own core(s) (``run_in_lane``):
    # CPU engines built for several cameras. On a CPU one call on a batch of frames uses the cores
    # less well than one single-threaded forward per core; the pipeline then runs a batch's frames
    # in this many threads, each forward on ``lane_threads`` threads. 1: no lanes.
    lanes: int = 1
    lane_threads: int = 1

    def __init__(self, *, device: torch.device, precision: str, channels_last: bool) -> None:
        self.device = indexed(device)
        self.precision = precision
        self.channels_last = channels_last

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the engine wants its input in."""
        return DTYPES.get(self.precision, torch.float32)

    @classmethod
    @abstractmethod
    def build(
        cls, model: HydraNet, *, device: torch.device, precision: str, input_size: tuple[int, int] | None,
        weights_sha256: str,
    ) -> "Engine":
        """Make the engine from an eval-mode model (which it may copy, fold and move)."""

    @abstractmethod
    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def run_in_lane(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """One frame (1,3,H,W) on the calling thread's lane; safe to call from ``lanes`` threads at
        once. The outputs stay valid until the same thread's next call."""
        raise EngineError(f"the {self.name} engine has no lanes")

    def describe(self) -> dict[str, str]:
        lanes = {"lanes": f"{self.lanes} x {self.lane_threads} thread(s)"} if self.lanes > 1 else {}
        return {"backend": self.name, "precision": self.precision, "device": str(self.device), **lanes}


def cpu_threads(threads: int) -> int:
    """A CPU engine's threads: 0 = as many as torch uses (the CLI's --threads and the node set that)."""
    return threads if threads > 0 else torch.get_num_threads()


def cpu_lanes(max_batch: int, threads: int) -> tuple[int, int]:
    """(lanes, threads per lane) for a CPU engine built for ``max_batch`` cameras on ``threads``
    threads: one lane per thread, never more lanes than frames in a batch, the threads shared out
    among the lanes (2 cameras on 8 threads: 2 lanes of 4, not 2 lanes of 1 and 6 cores idle).
    (1, threads) = no lanes (one camera, or one thread).

    Why lanes: a single-thread forward per core spends nothing on splitting each operator between
    threads. On the 2-core development machine 4 frames at 640x480 through OpenVINO took 606 ms in
    2 lanes against 662 ms one 2-thread call after another (one interleaved run, 2026-11-29)."""
    lanes = max(1, min(int(max_batch), int(threads)))
    return lanes, max(1, int(threads) // lanes)


def indexed(device: torch.device) -> torch.device:
    """'cuda' -> 'cuda:N' (the current device). Tensors always carry the index, and
    torch.device('cuda') != torch.device('cuda:0'), so comparisons need the indexed form."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def engine_class(name: str) -> type[Engine]:
    try:
        module_name, class_name = ENGINES[name].module.split(":")
    except KeyError:
        raise EngineError(f"unknown backend {name!r}; known backends: {', '.join(ENGINES)}") from None
    return getattr(importlib.import_module(module_name), class_name)


def create_engine(
    name: str, model: HydraNet, *, device: torch.device, precision: str,
    input_size: tuple[int, int] | None = None, weights_sha256: str = "",
    options: Mapping[str, object] | None = None,
) -> Engine:
    """``options``: backend-specific keyword arguments of its ``build`` (e.g. torch's ``compile``,
    tensorrt's ``calibration``), as listed in choices.ENGINES; any other is an EngineError."""
    device = indexed(device)
    options = dict(options or {})
    if name not in ENGINES:
        raise EngineError(f"unknown backend {name!r}; known backends: {', '.join(ENGINES)}")
    if found := problems(backend=name, device=device.type, precision=precision, options=options):
        raise EngineError("; ".join(found))
    return engine_class(name).build(
        model, device=device, precision=precision, input_size=input_size, weights_sha256=weights_sha256, **options
    )
