"""MobileNetV2 encoder as HydraNet uses it: no final 1280-channel conv, named feature maps out.

Module names follow the published checkpoints (``layer1`` .. ``layer8``, ``output``) so that
their keys map onto ours with a fixed prefix (see checkpoints.py).

The encoder's contract with a decoder is ``features``: the name, channels and stride of every map
it returns, derived from the ``t, c, n, s`` table below, so a decoder sizes itself from it
instead of from a list of channel counts that could drift from the table.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

# [expansion t, output channels c, repeats n, first stride s] (Sandler et al. 2018, table 2),
# after a 3x3 stride-2 stem of 32 channels.
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
STEM_STRIDE = 2
# The decoder takes every stage output at stride 4 or coarser (layer3 .. layer8); layer2 (stride
# 2, 16 channels) only feeds layer3.
MIN_FEATURE_STRIDE = 4


@dataclass(frozen=True)
class FeatureInfo:
    """One feature map the encoder returns: its channels and its stride (input pixels per map pixel)."""

    channels: int
    stride: int


def feature_table(stages: tuple[tuple[int, int, int, int], ...] = STAGES, *,
                  min_stride: int = MIN_FEATURE_STRIDE) -> dict[str, FeatureInfo]:
    """layer name -> FeatureInfo for each stage output the encoder returns, from the table alone."""
    features, stride = {}, STEM_STRIDE
    for index, (_, channels, _, first_stride) in enumerate(stages, start=2):
        stride *= first_stride
        if stride >= min_stride:
            features[f"layer{index}"] = FeatureInfo(channels, stride)
    return features


def conv_bn(in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv (no bias), BatchNorm, optional ReLU6: indices 0, 1, 2 as in the published keys."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, project (1x1, linear); identity shortcut when shapes allow.

    Unlike torchvision, the published network keeps the 1x1 expansion also where t = 1.
    """

    def __init__(self, in_ch: int, out_ch: int, *, expansion: int, stride: int) -> None:
        super().__init__()
        mid = in_ch * expansion
        self.use_shortcut = stride == 1 and in_ch == out_ch
        self.output = nn.Sequential(
            conv_bn(in_ch, mid, 1),
            conv_bn(mid, mid, 3, stride=stride, groups=mid),
            conv_bn(mid, out_ch, 1, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.output(x)
        return out + x if self.use_shortcut else out


class MobileNetV2Encoder(nn.Module):
    """Image (N,3,H,W) -> {layer name: feature map} for the maps ``features`` describes
    (layer3 .. layer8: 24, 32, 64, 96, 160, 320 channels at strides 4, 8, 16, 16, 32, 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.features: dict[str, FeatureInfo] = feature_table()
        stages: OrderedDict[str, nn.Module] = OrderedDict(layer1=conv_bn(3, STEM_CHANNELS, 3, stride=STEM_STRIDE))
        in_ch = STEM_CHANNELS
        for index, (t, c, n, s) in enumerate(STAGES, start=2):
            blocks = []
            for repeat in range(n):
                blocks.append(InvertedResidual(in_ch, c, expansion=t, stride=s if repeat == 0 else 1))
                in_ch = c
            stages[f"layer{index}"] = nn.Sequential(*blocks)
        self.stages = nn.Sequential(stages)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = {}
        for name, stage in self.stages.named_children():
            x = stage(x)
            if name in self.features:
                features[name] = x
        return features
