"""Eager PyTorch on CPU or CUDA: BN folded, channels-last where it pays, inference mode."""

from __future__ import annotations

import copy

import torch

from hydranet_ros.model.fold import fold_batchnorm
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.runtime.engines.base import DTYPES, Engine, EngineError


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, model: HydraNet, *, device: torch.device, precision: str, channels_last: bool) -> None:
        super().__init__(device=device, precision=precision, channels_last=channels_last)
        self.model = model

    @classmethod
    def build(cls, model, *, device, precision, input_size=None, weights_sha256=""):
        if precision not in DTYPES:
            raise EngineError(f"the torch backend runs fp32 or fp16, not {precision} (int8 needs tensorrt)")
        if precision == "fp16" and device.type != "cuda":
            raise EngineError("fp16 needs CUDA: CPU convolutions in half precision are slower than fp32")
        # Copy so that folding never alters a model the caller keeps training or comparing with.
        folded = fold_batchnorm(copy.deepcopy(model).eval())
        # Channels-last (NHWC) suits depthwise convs on both oneDNN (CPU) and cuDNN (tensor cores).
        channels_last = True
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        folded = folded.to(device=device, dtype=DTYPES[precision], memory_format=memory_format)
        for p in folded.parameters():
            p.requires_grad_(False)
        return cls(folded, device=device, precision=precision, channels_last=channels_last)

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            return self.model(image)
