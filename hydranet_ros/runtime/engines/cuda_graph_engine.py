"""The folded channels-last model captured in a CUDA graph: one launch per frame instead of ~150.

At 640x480 HydraNet's kernels are small; on a fast GPU the time goes into launching them from
Python, not into running them. A CUDA graph records the whole forward once and replays it with a
single call. Graphs work on fixed addresses, so the engine owns a static input buffer (each frame
is copied into it) and static outputs (overwritten by every replay).

A frame of another size than the captured one is re-captured (with a warning: capture costs a few
warm-up runs and memory for a new graph); the pipeline resizes every frame to the configured
``input_size``, so this happens only with ``input_size=None`` and changing camera resolutions.
The outputs returned by ``__call__`` are views of the static buffers: valid until the next call,
which is how the pipeline uses them (postprocess before the next frame).
"""

from __future__ import annotations

import logging

import torch

from hydranet_ros.runtime.engines.base import DTYPES, Engine, EngineError
from hydranet_ros.runtime.engines.torch_engine import TorchEngine

log = logging.getLogger(__name__)

WARMUP_RUNS = 3  # cuDNN picks its algorithms and the allocator settles before capture


class CudaGraphEngine(Engine):
    name = "cuda-graph"

    def __init__(self, model: torch.nn.Module, *, device: torch.device, precision: str, input_size: tuple[int, int] | None) -> None:
        super().__init__(device=device, precision=precision, channels_last=True)
        self.model = model
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_input: torch.Tensor | None = None
        self._static_outputs: dict[str, torch.Tensor] = {}
        if input_size is not None:
            width, height = input_size
            self._capture((1, 3, height, width))

    @classmethod
    def build(cls, model, *, device, precision, input_size=None, weights_sha256=""):
        if device.type != "cuda" or not torch.cuda.is_available():
            raise EngineError("the cuda-graph backend needs a CUDA device")
        if precision not in DTYPES:
            raise EngineError(f"the cuda-graph backend runs fp32 or fp16, not {precision}")
        # Same folding, layout and dtype as the eager engine: the graph only changes how it launches.
        eager = TorchEngine.build(model, device=device, precision=precision, input_size=input_size)
        return cls(eager.model, device=device, precision=precision, input_size=input_size)

    @property
    def captured_shape(self) -> tuple[int, ...] | None:
        return None if self._static_input is None else tuple(self._static_input.shape)

    def _capture(self, shape: tuple[int, ...]) -> None:
        # Drop the old graph first so its memory pool can be reused by the new one.
        self._graph, self._static_outputs, self._static_input = None, {}, None
        static_input = torch.zeros(shape, device=self.device, dtype=self.dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            # Warm-up on a side stream, as capture requires: the first runs allocate workspaces and
            # autotune, which must not end up inside the graph.
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(WARMUP_RUNS):
                    self.model(static_input)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self.model(static_input)
        self._graph, self._static_input, self._static_outputs = graph, static_input, dict(outputs)

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if image.device != self.device or image.dtype != self.dtype:
            raise EngineError(f"cuda-graph engine expects {self.dtype} on {self.device}, got {image.dtype} on {image.device}")
        if tuple(image.shape) != self.captured_shape:
            if self.captured_shape is not None:
                log.warning("cuda-graph: input %s differs from the captured %s; re-capturing (slow, once per size change)",
                            tuple(image.shape), self.captured_shape)
            self._capture(tuple(image.shape))
        self._static_input.copy_(image)
        self._graph.replay()
        return self._static_outputs
