"""Eager PyTorch on CPU or CUDA: BN folded, channels-last where it pays, inference mode.

``compile=True`` wraps the folded model in ``torch.compile`` (inductor), traced once at the fixed
input size. Off by default: on CPU (shared 2-core VM, 640x480, 1 thread, 2026-11-25) compiled
runs took 621-624 ms against 586-778 ms eager over three alternating rounds, i.e. no gain beyond
the noise, for ~50 s of compilation at start-up. On CUDA the cuda-graph backend removes the launch
overhead that compile would mostly target; its effect there is unmeasured (no GPU here). A compile
that fails falls back to eager with a warning.

On CUDA, ``cudnn_benchmark`` (on by default) lets cuDNN time its convolution algorithms once per
input shape and keep the fastest: a camera's frames all have one shape, so the cost is paid on the
first frame (or in the cuda-graph engine's warm-up) only. It is a process-wide torch setting: each CUDA build sets it.
Its gain on the H100 / Orin is unmeasured (no GPU here); ``cudnn_benchmark=False`` turns it off.
"""

from __future__ import annotations

import copy
import logging

import torch

from hydranet_ros.errors import first_line
from hydranet_ros.model.fold import fold_batchnorm
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.runtime.engines.base import DTYPES, Engine, EngineError

log = logging.getLogger(__name__)


class TorchEngine(Engine):
    name = "torch"
    max_batch = None  # eager PyTorch takes any batch: several cameras' frames in one call

    def __init__(self, model: HydraNet, *, device: torch.device, precision: str, channels_last: bool, compiled: bool = False) -> None:
        super().__init__(device=device, precision=precision, channels_last=channels_last)
        self.model = model
        self.compiled = compiled

    def describe(self) -> dict[str, str]:
        return {**super().describe(), **({"compiled": "torch.compile"} if self.compiled else {})}

    @classmethod
    def build(cls, model, *, device, precision, input_size=None, weights_sha256="", compile: bool = False,
              cudnn_benchmark: bool = True):
        if precision not in DTYPES:
            raise EngineError(f"the torch backend runs fp32 or fp16, not {precision} (int8 needs tensorrt)")
        if precision == "fp16" and device.type != "cuda":
            raise EngineError("fp16 needs CUDA: CPU convolutions in half precision are slower than fp32")
        if device.type == "cuda":  # set either way: the flag is process-wide and a build before may have set it
            torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
        # Copy so that folding never alters a model the caller keeps training or comparing with.
        folded = fold_batchnorm(copy.deepcopy(model).eval())
        # Channels-last (NHWC) suits depthwise convs on both oneDNN (CPU) and cuDNN (tensor cores).
        folded = folded.to(device=device, dtype=DTYPES[precision], memory_format=torch.channels_last)
        for p in folded.parameters():
            p.requires_grad_(False)
        if compile:
            compiled = compile_model(folded, device=device, dtype=DTYPES[precision], input_size=input_size)
            if compiled is not None:
                return cls(compiled, device=device, precision=precision, channels_last=True, compiled=True)
        return cls(folded, device=device, precision=precision, channels_last=True)

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            return self.model(image)


def compile_model(model: torch.nn.Module, *, device: torch.device, dtype: torch.dtype, input_size: tuple[int, int] | None):
    """torch.compile'd model, compiled now (one run at ``input_size``) so failures and the
    start-up cost surface here rather than on the first camera frame; None if it fails."""
    if not hasattr(torch, "compile"):
        log.warning("torch.compile is not available in torch %s; running eager", torch.__version__)
        return None
    try:
        compiled = torch.compile(model, dynamic=input_size is None)
        if input_size is not None:
            width, height = input_size
            example = torch.zeros(1, 3, height, width, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                compiled(example)
        return compiled
    except Exception as exc:  # inductor needs a C++ compiler (CPU) or Triton (CUDA); either may be missing
        log.warning("torch.compile failed (%s: %s); running eager", type(exc).__name__, first_line(exc))
        return None
