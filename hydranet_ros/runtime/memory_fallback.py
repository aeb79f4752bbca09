"""What to do when the GPU runs out of memory on the first frame.

Building the engine allocates the weights; the first frame allocates the activations, and on a
shared Jetson that is where memory runs out. Until one frame has gone through, an out-of-memory
error means "this configuration does not fit here", so the policy is decided once, per `strict`:

- strict: fail with a message naming the size, precision and device, and what to change;
- otherwise: free the cached blocks, step the network input down (3/4 per side, multiples of 32,
  never below 32) and try the same frame again, a few times, with a warning saying what was
  given up. The smaller size is then kept for every later frame.

After the first good frame an out-of-memory error is an ordinary processing error (counted,
reported), not a reason to reconfigure behind the operator's back.

A wrapper rather than a change inside Pipeline: Pipeline.process stays one straight path, and
the wrapper offers the same surface (process, preset, info, config, output_size_for).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
import torch

from hydranet_ros.errors import first_line
from hydranet_ros.runtime.choices import MIN_INPUT_SIDE
from hydranet_ros.runtime.engines.base import EngineError
from hydranet_ros.runtime.geometry import STRIDE
from hydranet_ros.runtime.pipeline import PendingResult, Pipeline
from hydranet_ros.runtime.result import FrameRequest, Result

__all__ = ["FirstFrameOutOfMemory", "MemoryFallbackPipeline", "smaller_input_size", "same_engine_at"]

log = logging.getLogger(__name__)

MIN_SIDE = MIN_INPUT_SIDE  # the pipeline's own lower bound on an input side
_STEP = STRIDE  # the geometry pads to the stride: a box between two multiples would not shrink the network


class FirstFrameOutOfMemory(EngineError):
    """The first frame did not fit in GPU memory and no (further) fallback is allowed."""


def smaller_input_size(size: tuple[int, int]) -> tuple[int, int] | None:
    """The next size to try after running out of memory at ``size`` (width, height), or None.

    3/4 per side (about half the activations), rounded down to a multiple of the stride (32):
    frames are padded to it (runtime/geometry.py), so a smaller box that is not a multiple
    could leave the network's input as large as before. None when both sides are at the minimum.
    """
    smaller = tuple(max(MIN_SIDE, int(side * 3 / 4) // _STEP * _STEP) for side in size)
    return None if smaller == tuple(size) else smaller  # type: ignore[return-value]


def same_engine_at(pipeline: Pipeline, size: tuple[int, int]) -> Pipeline:
    """``pipeline`` with another network input size and the same engine.

    Right for engines that take any input shape (torch eager; a CUDA graph re-captures at the new
    size). A TensorRT engine is built for one shape: stepping it down would fail on every later
    frame, so it is refused here with the reason instead.
    """
    if pipeline.engine.fixed_input_size:
        raise FirstFrameOutOfMemory(
            f"out of GPU memory on the first frame at {pipeline.config.input_size}; a TensorRT engine is built for "
            "one input size: rebuild it smaller (hydranet build-engine --size WxH) or set a smaller input size")
    return Pipeline(
        engine=pipeline.engine, preset=pipeline.preset, config=replace(pipeline.config, input_size=size),
        weights_source=pipeline.info.get("weights", ""), weights_sha256=pipeline.info.get("weights_sha256", ""),
        warnings=pipeline.warnings, training_camera=pipeline.training_camera,
    )


class MemoryFallbackPipeline:
    """A Pipeline whose first frame follows the out-of-memory policy above."""

    def __init__(self, pipeline: Pipeline, *, strict: bool, max_attempts: int = 3,
                 resize: Callable[[Pipeline, tuple[int, int]], Pipeline] = same_engine_at) -> None:
        if max_attempts < 0:
            raise ValueError(f"max_attempts must be >= 0, got {max_attempts}")
        self._pipeline = pipeline
        self._strict = strict
        self._max_attempts = max_attempts
        self._resize = resize
        self._proven = False  # set after the first frame that went through
        self.fallbacks: list[str] = []  # "640x480 -> 480x352", one per step taken

    # -- the Pipeline surface the node and the bag replay use ------------------------------------

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    @property
    def preset(self) -> Any:
        return self._pipeline.preset

    @property
    def config(self) -> Any:
        return self._pipeline.config

    @property
    def engine(self) -> Any:
        return self._pipeline.engine

    @property
    def training_camera(self) -> Any:
        return self._pipeline.training_camera

    def geometry_for(self, width: int, height: int) -> Any:
        return self._pipeline.geometry_for(width, height)

    @property
    def info(self) -> dict[str, Any]:
        info = dict(self._pipeline.info)
        if self.fallbacks:
            info["memory_fallback"] = ", ".join(self.fallbacks)
        return info

    def network_size_for(self, width: int, height: int) -> tuple[int, int]:
        return self._pipeline.network_size_for(width, height)

    def output_size_for(self, width: int, height: int) -> tuple[int, int]:
        return self._pipeline.output_size_for(width, height)

    def submit_batch(self, requests: Sequence[FrameRequest]) -> list[PendingResult]:
        """Pipeline.submit_batch; the first batch runs to the end here, as the first frame does."""
        if self._proven:
            return self._pipeline.submit_batch(requests)
        return [PendingResult(result=result) for result in self.process_batch(requests)]

    def process_batch(self, requests: Sequence[FrameRequest]) -> list[Result]:
        """Pipeline.process_batch under the policy above: out of memory on the first batch (all
        the cameras' frames at once) steps the size down and runs the whole batch again."""
        if not requests:
            return []
        return self._first_or_proven(lambda pipeline: pipeline.process_batch(requests), requests[0].pixels)

    def submit(self, frame: np.ndarray, **kwargs: Any) -> PendingResult:
        """Pipeline.submit, except that the first frame runs to the end here, so that an
        out-of-memory on it is caught and stepped down before anything else is queued."""
        if self._proven:
            return self._pipeline.submit(frame, **kwargs)
        return PendingResult(result=self.process(frame, **kwargs))

    def process(self, frame: np.ndarray, **kwargs: Any) -> Result:
        return self._first_or_proven(lambda pipeline: pipeline.process(frame, **kwargs), frame)

    def _first_or_proven(self, run: Callable[[Pipeline], Any], frame: np.ndarray) -> Any:
        if self._proven:
            return run(self._pipeline)
        attempts = 0
        while True:
            try:
                result = run(self._pipeline)
            except torch.cuda.OutOfMemoryError as exc:
                # Only the message is kept: the exception (gone when this block ends) holds the
                # failed attempt's tensors, which must be freed before the cache is released.
                cause = first_line(exc)
            else:
                self._proven = True
                return result
            size = self._pipeline.network_size_for(frame.shape[1], frame.shape[0])
            self._release_cached_memory()
            self._step_down(size, attempts, cause)
            attempts += 1

    # -- policy ------------------------------------------------------------------------------------

    def _step_down(self, size: tuple[int, int], attempts: int, cause: str) -> None:
        info = self._pipeline.info
        where = f"at {size[0]}x{size[1]} ({info.get('precision', '?')}, {info.get('device', '?')})"
        if self._strict:
            raise FirstFrameOutOfMemory(
                f"GPU out of memory on the first frame {where}: {cause}. strict is set, so no smaller input "
                "size is tried: lower input_width/input_height, use fp16, or free GPU memory") from None
        smaller = smaller_input_size(size)
        if smaller is None or attempts >= self._max_attempts:
            raise FirstFrameOutOfMemory(
                f"GPU out of memory on the first frame {where} after {attempts} smaller size(s) "
                f"({', '.join(self.fallbacks) or 'none possible'}): {cause}") from None
        step = f"{size[0]}x{size[1]} -> {smaller[0]}x{smaller[1]}"
        log.warning("GPU out of memory on the first frame %s; retrying at %dx%d (%s)", where, *smaller, cause)
        self.fallbacks.append(step)
        self._pipeline = self._resize(self._pipeline, smaller)

    @staticmethod
    def _release_cached_memory() -> None:
        # The failed attempt's blocks stay in torch's caching allocator; give them back before the
        # retry so it sees the memory the smaller size actually needs.
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
