"""A second, deliberately plain implementation of the published network, written against the
published key names with functional ops only.

It shares no module with hydranet.py, so agreement between the two checks the key mapping and the
architecture; benchmarks use it as the straightforward eager baseline (no BN folding, planar
memory layout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hydranet_ros.model.mobilenetv2 import STAGES

Tensor = torch.Tensor


def _conv(state: dict[str, Tensor], name: str, x: Tensor, *, stride: int = 1, groups: int = 1) -> Tensor:
    weight = state[name + ".weight"]
    return F.conv2d(x, weight, state.get(name + ".bias"), stride=stride, padding=weight.shape[-1] // 2, groups=groups)


def _bn(state: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    return F.batch_norm(x, state[name + ".running_mean"], state[name + ".running_var"],
                        state[name + ".weight"], state[name + ".bias"], training=False, eps=1e-5)


def _conv_bn(state, name, x, *, stride=1, groups=1, act=True):
    x = _bn(state, name + ".1", _conv(state, name + ".0", x, stride=stride, groups=groups))
    return F.relu6(x) if act else x


def _inverted_residual(state, name, x, *, stride: int) -> Tensor:
    hidden = state[name + ".output.0.0.weight"].shape[0]
    out = _conv_bn(state, name + ".output.0", x)
    out = _conv_bn(state, name + ".output.1", out, stride=stride, groups=hidden)
    out = _conv_bn(state, name + ".output.2", out, act=False)
    return out + x if stride == 1 and out.shape == x.shape else out


def _crp(state, name, x, *, depthwise: bool) -> Tensor:
    top = x
    for i in range(1, 5):
        top = F.max_pool2d(top, 5, stride=1, padding=2)
        top = _conv(state, f"{name}.0.{i}_outvar_dimred", top, groups=top.shape[1] if depthwise else 1)
        x = top + x
    return x


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def reference_forward(state: dict[str, Tensor], image: Tensor) -> dict[str, Tensor]:
    """The published HydraNet on a normalised (N,3,H,W) batch, from a published state dict."""
    x = _conv_bn(state, "layer1", image, stride=2)
    feats = []
    for layer, (_, _, n, s) in enumerate(STAGES, start=2):
        for j in range(n):
            x = _inverted_residual(state, f"layer{layer}.{j}", x, stride=s if j == 0 else 1)
        feats.append(x)
    _, l3, l4, l5, l6, l7, l8 = feats
    x = F.relu6(_conv(state, "conv8", l8) + _conv(state, "conv7", l7))
    x = _up(_conv(state, "conv_adapt4", _crp(state, "crp4", x, depthwise=False)), l6)
    x = F.relu6(_conv(state, "conv5", l5) + _conv(state, "conv6", l6) + x)
    x = _up(_conv(state, "conv_adapt3", _crp(state, "crp3", x, depthwise=False)), l4)
    x = F.relu6(x + _conv(state, "conv4", l4))
    x = _up(_conv(state, "conv_adapt2", _crp(state, "crp2", x, depthwise=False)), l3)
    x = F.relu6(_conv(state, "conv3", l3) + x)
    x = _crp(state, "crp1", x, depthwise=True)
    out = {}
    for task, pre, head in (("segm", "pre_segm", "segm"), ("depth", "pre_depth", "depth"), ("normals", "pre_normal", "normal")):
        if head + ".weight" in state:
            out[task] = _conv(state, head, F.relu6(_conv(state, pre, x, groups=x.shape[1])))
    return out
