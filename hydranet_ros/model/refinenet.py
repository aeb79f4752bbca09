"""Light-Weight RefineNet decoder (Nekrasov et al., BMVC 2018) over the MobileNetV2 features."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from hydranet_ros.model.mobilenetv2 import FeatureInfo

DECODER_CHANNELS = 256
# The published fusion, coarse to fine: the encoder maps summed at each level (one stride per
# level, each level twice as fine as the one before), then refined and upsampled into the next.
FUSION_LEVELS: tuple[tuple[str, ...], ...] = (("layer8", "layer7"), ("layer6", "layer5"), ("layer4",), ("layer3",))


def conv1x1(in_ch: int, out_ch: int, *, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, bias=False, groups=groups)


def max_pool_5x5(x: torch.Tensor) -> torch.Tensor:
    """5x5 max-pool, stride 1, same size: the chained residual pooling's pool.

    On CUDA it is done as what it is, separable: the maximum of five shifted views along the
    rows, then five along the columns, of a map padded with -inf. Ten small elementwise kernels
    that a CUDA graph replays without launch cost, in whatever layout the map has. PyTorch's
    max-pool kernels were the largest item in a GPU frame: on an H200 (fp16, 640x480, cuda-graph,
    one interleaved run, 2026-11-28, benchmarks/bench_crp_pool.py) the frame took 3.23 ms with the
    channels-last kernel, 2.96 ms pooling in planar layout and 2.49 ms this way. On the CPU, and
    for exporters and compilers (ONNX, TensorRT, inductor), which map the plain operator onto a
    pooling layer of their own, it stays F.max_pool2d. The result is the same either way: max
    is exact."""
    if not x.is_cuda or _exporting():
        return F.max_pool2d(x, 5, stride=1, padding=2)
    return shifted_max_pool_5x5(x)


def shifted_max_pool_5x5(x: torch.Tensor) -> torch.Tensor:
    """F.max_pool2d(x, 5, stride=1, padding=2) from elementwise maxima of shifted views (any device)."""
    height, width = x.shape[-2:]
    p = F.pad(x, (2, 2, 0, 0), value=float("-inf"))
    rows = torch.maximum(torch.maximum(p[..., :width], p[..., 1:width + 1]), torch.maximum(p[..., 2:width + 2], p[..., 3:width + 3]))
    rows = torch.maximum(rows, p[..., 4:])
    p = F.pad(rows, (0, 0, 2, 2), value=float("-inf"))
    out = torch.maximum(torch.maximum(p[..., :height, :], p[..., 1:height + 1, :]), torch.maximum(p[..., 2:height + 2, :], p[..., 3:height + 3, :]))
    out = torch.maximum(out, p[..., 4:, :])
    return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(memory_format=torch.channels_last) else out


def _exporting() -> bool:
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)
    return compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


class MaxPool5x5(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool_5x5(x)


class ChainedResidualPooling(nn.Module):
    """Four chained stages of 5x5 max-pool (stride 1) then 1x1 conv, each summed into the input.

    The pooled context grows with every stage while the sum keeps the fine detail.
    """

    def __init__(self, channels: int = DECODER_CHANNELS, *, stages: int = 4, depthwise: bool = False) -> None:
        super().__init__()
        self.pool = MaxPool5x5()
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
    """Fuse the encoder's named feature maps coarse to fine into one 256-channel map at stride 4.

    Attribute names follow the published checkpoints: ``convN`` reduces the output of encoder
    ``layerN`` to 256 channels, ``crpK`` and ``conv_adaptK`` refine fusion level K (4 = coarsest).
    Each ``convN`` takes its input channels from ``features`` (the encoder's contract), and the
    strides there must fit FUSION_LEVELS.
    """

    def __init__(self, features: Mapping[str, FeatureInfo]) -> None:
        super().__init__()
        check_fusion(features)
        c = DECODER_CHANNELS
        channels = {name: info.channels for name, info in features.items()}
        self.conv8 = conv1x1(channels["layer8"], c)
        self.conv7 = conv1x1(channels["layer7"], c)
        self.conv6 = conv1x1(channels["layer6"], c)
        self.conv5 = conv1x1(channels["layer5"], c)
        self.conv4 = conv1x1(channels["layer4"], c)
        self.conv3 = conv1x1(channels["layer3"], c)
        self.crp4 = ChainedResidualPooling(c)
        self.crp3 = ChainedResidualPooling(c)
        self.crp2 = ChainedResidualPooling(c)
        # The finest level works at stride 4, the largest map: depthwise convs keep it cheap.
        self.crp1 = ChainedResidualPooling(c, depthwise=True)
        self.conv_adapt4 = conv1x1(c, c)
        self.conv_adapt3 = conv1x1(c, c)
        self.conv_adapt2 = conv1x1(c, c)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        f = features
        x = self.act(self.conv8(f["layer8"]) + self.conv7(f["layer7"]))  # stride 32
        x = self.conv_adapt4(self.crp4(x))
        x = _upsample_to(x, f["layer6"])
        x = self.act(self.conv6(f["layer6"]) + self.conv5(f["layer5"]) + x)  # stride 16
        x = self.conv_adapt3(self.crp3(x))
        x = _upsample_to(x, f["layer4"])
        x = self.act(self.conv4(f["layer4"]) + x)  # stride 8
        x = self.conv_adapt2(self.crp2(x))
        x = _upsample_to(x, f["layer3"])
        x = self.act(self.conv3(f["layer3"]) + x)  # stride 4
        return self.crp1(x)


def check_fusion(features: Mapping[str, FeatureInfo]) -> None:
    """Refuse an encoder whose maps do not fit FUSION_LEVELS: a missing or extra map, maps of
    different strides summed at one level, or levels that are not each twice as fine."""
    wanted = {name for level in FUSION_LEVELS for name in level}
    if set(features) != wanted:
        raise ValueError(f"the decoder fuses {sorted(wanted)}; the encoder returns {sorted(features)}")
    strides = []
    for level in FUSION_LEVELS:
        level_strides = {features[name].stride for name in level}
        if len(level_strides) != 1:
            raise ValueError(f"maps {level} are summed but have strides {sorted(level_strides)}")
        strides.append(level_strides.pop())
    if any(coarse != 2 * fine for coarse, fine in zip(strides, strides[1:])):
        raise ValueError(f"fusion levels must halve the stride each time, got strides {strides}")
