"""Light-Weight RefineNet decoder (Nekrasov et al., BMVC 2018) over the MobileNetV2 features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DECODER_CHANNELS = 256


def conv1x1(in_ch: int, out_ch: int, *, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, bias=False, groups=groups)


class ChainedResidualPooling(nn.Module):
    """Four chained stages of 5x5 max-pool (stride 1) then 1x1 conv, each summed into the input.

    The pooled context grows with every stage while the sum keeps the fine detail.
    """

    def __init__(self, channels: int = DECODER_CHANNELS, *, stages: int = 4, depthwise: bool = False) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)
        groups = channels if depthwise else 1
        self.convs = nn.ModuleList(conv1x1(channels, channels, groups=groups) for _ in range(stages))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = x
        for conv in self.convs:
            branch = conv(self.pool(branch))
            x = x + branch
        return x


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class RefineNetDecoder(nn.Module):
    """Fuse the six encoder outputs coarse to fine into one 256-channel map at stride 4.

    Attribute names follow the published checkpoints: ``convN`` reduces the output of encoder
    ``layerN`` to 256 channels, ``crpK`` and ``conv_adaptK`` refine fusion level K.
    """

    def __init__(self, in_channels: tuple[int, ...] = (24, 32, 64, 96, 160, 320)) -> None:
        super().__init__()
        c = DECODER_CHANNELS
        c3, c4, c5, c6, c7, c8 = in_channels
        self.conv8 = conv1x1(c8, c)
        self.conv7 = conv1x1(c7, c)
        self.conv6 = conv1x1(c6, c)
        self.conv5 = conv1x1(c5, c)
        self.conv4 = conv1x1(c4, c)
        self.conv3 = conv1x1(c3, c)
        self.crp4 = ChainedResidualPooling(c)
        self.crp3 = ChainedResidualPooling(c)
        self.crp2 = ChainedResidualPooling(c)
        # The finest level works at stride 4, the largest map: depthwise convs keep it cheap.
        self.crp1 = ChainedResidualPooling(c, depthwise=True)
        self.conv_adapt4 = conv1x1(c, c)
        self.conv_adapt3 = conv1x1(c, c)
        self.conv_adapt2 = conv1x1(c, c)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        l3, l4, l5, l6, l7, l8 = features
        x = self.act(self.conv8(l8) + self.conv7(l7))  # stride 32
        x = self.conv_adapt4(self.crp4(x))
        x = _upsample_to(x, l6)
        x = self.act(self.conv6(l6) + self.conv5(l5) + x)  # stride 16
        x = self.conv_adapt3(self.crp3(x))
        x = _upsample_to(x, l4)
        x = self.act(self.conv4(l4) + x)  # stride 8
        x = self.conv_adapt2(self.crp2(x))
        x = _upsample_to(x, l3)
        x = self.act(self.conv3(l3) + x)  # stride 4
        return self.crp1(x)
