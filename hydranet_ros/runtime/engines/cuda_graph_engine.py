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

from hydranet_ros.errors import first_line
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
        # Our own capture stream, on our device: torch.cuda.graph's default is one stream per
        # process, made on whichever device was current at the first capture.
        self._capture_stream = torch.cuda.Stream(self.device)
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
        """Warm up and capture at ``shape``; a failure (out of memory, an op that cannot be
        captured) is an EngineError, so the pipeline falls back to eager torch or says why."""
        try:
            # On our device even when another is current: kernels launched on a device other than
            # the capture stream's are not captured, and the graph would replay nothing.
            with torch.cuda.device(self.device):
                self._capture_on_device(shape)
        except torch.cuda.OutOfMemoryError as exc:
            self._graph, self._static_outputs, self._static_input = None, {}, None
            torch.cuda.empty_cache()
            raise EngineError(f"CUDA graph capture at {_size(shape)} ran out of GPU memory: {first_line(exc)}") from exc
        except RuntimeError as exc:
            self._graph, self._static_outputs, self._static_input = None, {}, None
            raise EngineError(f"CUDA graph capture at {_size(shape)} failed: {first_line(exc)}") from exc

    def _capture_on_device(self, shape: tuple[int, ...]) -> None:
        # Frames queued on the pipeline's stream may still read the old static input; wait for
        # them before it is freed (a re-capture is rare and costs several forwards anyway).
        torch.cuda.synchronize(self.device)
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
            # thread_local: CUDA work in other threads (a second camera's pipeline, the node
            # freeing cached memory) does not break a re-capture in the frame worker's thread.
            with torch.cuda.graph(graph, stream=self._capture_stream, capture_error_mode="thread_local"):
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


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[-1]}x{shape[-2]}"

