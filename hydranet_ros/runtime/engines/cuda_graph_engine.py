"""The folded channels-last model captured in a CUDA graph: one launch per frame instead of ~150.

At 640x480 HydraNet's kernels are small; on a fast GPU the time goes into launching them from
Python, not into running them. A CUDA graph records the whole forward once and replays it with a
single call. Graphs work on fixed addresses, so the engine owns a static input buffer (each frame
is copied into it) and static outputs (overwritten by every replay).

One graph per input shape in use: a frame size, and with several cameras each batch size that
occurs (a batch of four when all cameras delivered, fewer when one timed out). A new frame size
(with ``input_size=None`` and a camera that changes resolution) is captured with a warning, a new
batch size with an info line; both cost a few warm-up runs and the memory of a graph (its own
memory pool, about the activations of one forward at that shape). At most MAX_GRAPHS are kept;
the least recently used goes first. The outputs returned by ``__call__`` are views of the graph's
static buffers: valid until that graph's next replay, which is how the pipeline uses them
(post-processing is queued on the same stream before the next frame).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import torch

from hydranet_ros.errors import first_line
from hydranet_ros.runtime.engines.base import DTYPES, Engine, EngineError
from hydranet_ros.runtime.engines.torch_engine import TorchEngine

log = logging.getLogger(__name__)

WARMUP_RUNS = 3  # cuDNN picks its algorithms and the allocator settles before capture
MAX_GRAPHS = 16  # e.g. batch sizes 1..8 for two frame sizes; beyond that the least recently used goes


@dataclass
class _Captured:
    graph: "torch.cuda.CUDAGraph"
    static_input: torch.Tensor
    static_outputs: dict[str, torch.Tensor]


class CudaGraphEngine(Engine):
    name = "cuda-graph"
    max_batch = None  # one graph per batch size in use

    def __init__(self, model: torch.nn.Module, *, device: torch.device, precision: str, input_size: tuple[int, int] | None) -> None:
        super().__init__(device=device, precision=precision, channels_last=True)
        self.model = model
        # input shape (N, 3, H, W) -> its graph, least recently used first.
        self._graphs: OrderedDict[tuple[int, ...], _Captured] = OrderedDict()
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
    def captured_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The input shapes (N, 3, H, W) with a graph, least recently used first."""
        return tuple(self._graphs)

    def _capture(self, shape: tuple[int, ...]) -> None:
        """Warm up and capture at ``shape``; a failure (out of memory, an op that cannot be
        captured) is an EngineError, so the pipeline falls back to eager torch or says why. The
        graphs of other shapes stay."""
        try:
            # On our device even when another is current: kernels launched on a device other than
            # the capture stream's are not captured, and the graph would replay nothing.
            with torch.cuda.device(self.device):
                self._capture_on_device(shape)
        except torch.cuda.OutOfMemoryError as exc:
            self._graphs.pop(shape, None)
            torch.cuda.empty_cache()
            raise EngineError(f"CUDA graph capture at {_size(shape)} ran out of GPU memory: {first_line(exc)}") from exc
        except RuntimeError as exc:
            self._graphs.pop(shape, None)
            raise EngineError(f"CUDA graph capture at {_size(shape)} failed: {first_line(exc)}") from exc

    def _capture_on_device(self, shape: tuple[int, ...]) -> None:
        # Frames queued on the pipeline's stream may still read a graph's static buffers: wait for
        # them before one is dropped or memory is rearranged (a capture is rare and costs several
        # forwards anyway).
        torch.cuda.synchronize(self.device)
        self._graphs.pop(shape, None)
        while len(self._graphs) >= MAX_GRAPHS:
            evicted, _ = self._graphs.popitem(last=False)
            log.info("cuda-graph: dropping the graph for %s (least recently used of %d)", evicted, MAX_GRAPHS)
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
            # Each graph keeps its own memory pool: graphs of different batch sizes replay in any
            # order, which a shared pool does not allow.
            with torch.cuda.graph(graph, stream=self._capture_stream, capture_error_mode="thread_local"):
                outputs = self.model(static_input)
        self._graphs[shape] = _Captured(graph, static_input, dict(outputs))

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if image.device != self.device or image.dtype != self.dtype:
            raise EngineError(f"cuda-graph engine expects {self.dtype} on {self.device}, got {image.dtype} on {image.device}")
        shape = tuple(image.shape)
        captured = self._graphs.get(shape)
        if captured is None:
            if any(other[1:] != shape[1:] for other in self._graphs):
                log.warning("cuda-graph: input %s differs from the captured %s; capturing it too (slow, once per size)",
                            shape, ", ".join(str(s) for s in self._graphs))
            elif self._graphs:
                log.info("cuda-graph: capturing a graph for a batch of %d at %s", shape[0], _size(shape))
            self._capture(shape)
            captured = self._graphs[shape]
        self._graphs.move_to_end(shape)
        captured.static_input.copy_(image)
        captured.graph.replay()
        return captured.static_outputs


def _size(shape: tuple[int, ...]) -> str:
    size = f"{shape[-1]}x{shape[-2]}"
    return size if shape[0] == 1 else f"{size} (batch {shape[0]})"
