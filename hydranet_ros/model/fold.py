"""Fold BatchNorm into the preceding convolution for inference.

In eval mode BN is a per-channel affine map, so conv followed by BN equals one conv with scaled
weights and a bias. Folding removes a full pass over every feature map (about a third of the
encoder's memory traffic) and lets the conv kernels fuse bias and activation.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv equal to ``bn(conv(x))`` with BN's running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, bias=True,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every Conv2d directly followed by a BatchNorm2d inside an nn.Sequential, in place.

    The BN slot becomes nn.Identity so indices (and so the state-dict layout) keep their meaning.
    Only valid for inference: call on a model in eval mode.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode: training BN uses batch statistics")
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, bn = module[index], module[index + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module[index] = fold_conv_bn(conv, bn)
                module[index + 1] = nn.Identity()
    return model
