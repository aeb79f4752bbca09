"""HydraNet: one shared encoder-decoder, one small head per task."""

from __future__ import annotations

import torch
from torch import nn

from hydranet_ros.model.mobilenetv2 import MobileNetV2Encoder
from hydranet_ros.presets import Preset
from hydranet_ros.model.refinenet import DECODER_CHANNELS, RefineNetDecoder

class TaskHead(nn.Module):
    """Depthwise 1x1 conv, ReLU6, 3x3 conv with bias: the published per-task head."""

    def __init__(self, out_channels: int, in_channels: int = DECODER_CHANNELS) -> None:
        super().__init__()
        self.pre = nn.Conv2d(in_channels, in_channels, 1, groups=in_channels, bias=False)
        self.act = nn.ReLU6(inplace=False)
        self.out = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.pre(x)))


class HydraNet(nn.Module):
    """Image (N,3,H,W), normalised -> {'segm': (N,C,H/4,W/4) logits, 'depth': (N,1,H/4,W/4) raw,
    'normals': (N,3,H/4,W/4) when the preset has them}.

    Depth comes out signed and in metres; callers take its absolute value, as the authors do.
    """

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset
        self.encoder = MobileNetV2Encoder()
        self.decoder = RefineNetDecoder(self.encoder.features)
        heads = {"segm": TaskHead(preset.num_classes), "depth": TaskHead(1)}
        if preset.with_normals:
            heads["normals"] = TaskHead(3)
        self.heads = nn.ModuleDict(heads)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.decoder(self.encoder(image))
        return {name: head(shared) for name, head in self.heads.items()}
