"""Shared helpers for the engine tests: real frames and HydraNets with trained-scale random weights.

PyTorch's default init leaves BatchNorm at identity statistics and tiny activations (outputs
around 1e-8), which makes precision comparisons (fp16 vs fp32, ONNX vs eager) pass trivially. Here
convs get He-normal weights and BN running statistics are measured on real frames in train mode,
as training would leave them.

A random network is also chaotic where a trained one is not, and then fp16 rounding errors
(~5e-4 per layer) grow layer after layer until fp16 and fp32 labels agree on only ~70 % of pixels.
Three things put it in the ordered regime, as training does: BN affine parameters that keep ReLU6
units mostly in their linear range and residual branches small; the BN-free decoder's convs scaled
to unit output variance in execution order (LSUV), since raw He-normal weights pin its ReLU6s at
0 or 6; and heads that read the dominant feature directions. Measured on CPU by rounding every
weight and activation to fp16 (an emulation of a GPU fp16 run) at full resolution on the shared
frames: labels agree on 99.8 % (kitti preset) / 99.5 % (nyud, 40 classes), depth within 0.2 %
relative at the 99th percentile; ONNX Runtime vs eager differ by ~2e-5 on logits of magnitude ~10.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not DATA.is_dir():  # helpers' worktrees sit one level deeper than the main checkout
    DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SHARED_FRAMES = ("kitti/000099.png", "nyud/000464.png", "nyud/000433.png")

cuda = torch.cuda.is_available()
needs_cuda = __import__("pytest").mark.skipif(not cuda, reason="needs CUDA (none on this machine)")


@functools.lru_cache(maxsize=None)
def shared_frame(name: str) -> np.ndarray:
    """RGB uint8 frame from ../shared/data."""
    bgr = cv2.imread(str(DATA / name), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(DATA / name)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def small_frame(name: str = "nyud/000464.png", size: tuple[int, int] = (64, 48)) -> np.ndarray:
    return cv2.resize(shared_frame(name), size, interpolation=cv2.INTER_AREA)


def normalised(frame: np.ndarray, preset) -> torch.Tensor:
    x = torch.from_numpy(frame).permute(2, 0, 1).float().unsqueeze(0) / 255.0
    mean = torch.tensor(preset.mean).view(1, 3, 1, 1)
    std = torch.tensor(preset.std).view(1, 3, 1, 1)
    return (x - mean) / std


def realistic_model(preset_name: str = "kitti", *, seed: int = 0, calib_size: tuple[int, int] = (128, 96)) -> HydraNet:
    """An eval-mode HydraNet with trained-scale random weights (a fresh copy on every call)."""
    return copy.deepcopy(_realistic_model(preset_name, seed=seed, calib_size=calib_size))


@functools.lru_cache(maxsize=None)
@torch.no_grad()
def _realistic_model(preset_name: str = "kitti", *, seed: int = 0, calib_size: tuple[int, int] = (128, 96)) -> HydraNet:
    preset = get_preset(preset_name)
    gen = torch.Generator().manual_seed(seed)
    model = HydraNet(preset)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1, generator=gen)
    for m in model.modules():
        # conv_bn blocks are Sequential(conv, bn[, relu6]): the BN's role depends on what follows.
        if isinstance(m, nn.Sequential) and len(m) >= 2 and isinstance(m[1], nn.BatchNorm2d):
            bn, activated = m[1], len(m) == 3
            if activated:  # mostly in ReLU6's linear range
                bn.weight.uniform_(0.5, 1.0, generator=gen)
                bn.bias.normal_(1.0, 0.3, generator=gen)
            else:  # projection: residual branches add small updates to the identity path
                bn.weight.uniform_(0.15, 0.45, generator=gen)
                bn.bias.normal_(0.0, 0.1, generator=gen)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
    frames = [cv2.resize(shared_frame(n), calib_size, interpolation=cv2.INTER_AREA) for n in SHARED_FRAMES]
    batch = torch.cat([normalised(f, preset) for f in frames + [f[:, ::-1].copy() for f in frames]])
    model.train()
    for _ in range(2):
        model(batch)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.clamp_(min=0.05)  # channels dead on 6 images would get a huge gain
            m.momentum = 0.1
    model.eval()
    _unit_variance_decoder(model, batch)
    _scale_heads(model, batch, depth_mid=sum(preset.depth_range_m) / 2, gen=gen)
    return model


def _unit_variance_decoder(model: HydraNet, batch: torch.Tensor) -> None:
    """The decoder has no BN: scale each of its convs, in execution order, to unit output std
    (LSUV), so its ReLU6s are not pinned at 0 or 6 as they would be with raw He-normal weights.
    One pass: each hook rescales its conv and hands the rescaled output on downstream."""

    def unit(conv: nn.Conv2d, inputs, output: torch.Tensor) -> torch.Tensor:
        std = output.std().clamp_min(1e-6)
        conv.weight.div_(std)
        return output / std

    hooks = [m.register_forward_hook(unit) for m in model.decoder.modules() if isinstance(m, nn.Conv2d)]
    try:
        model.decoder(model.encoder(batch))
    finally:
        for h in hooks:
            h.remove()


def _scale_heads(model: HydraNet, batch: torch.Tensor, *, depth_mid: float, gen: torch.Generator) -> None:
    """Heads as training leaves them, set from the data (as LSUV-style inits do).

    The depthwise 'pre' conv brings each decoder channel to std ~2, so ReLU6 works in its range
    instead of saturating. The output conv reads the few dominant directions of the features
    (their top principal components), as a trained classifier does: its outputs then have the
    large, spatially smooth margins of trained heads, rather than random projections of every
    direction whose class scores cross everywhere. Logits get std ~4; depth mid-range +- 25 %.
    """
    shared = model.decoder(model.encoder(batch))
    channel_std = shared.std(dim=(0, 2, 3))
    channel_std = channel_std.clamp_min(0.1 * float(channel_std.median()))  # no huge gains on flat channels
    for name, head in model.heads.items():
        head.pre.weight.copy_(head.pre.weight.sign() * (2.0 / channel_std).view(-1, 1, 1, 1))
        features = head.act(head.pre(shared)).permute(0, 2, 3, 1).reshape(-1, shared.shape[1])
        centred = features - features.mean(dim=0)
        _, _, basis = torch.linalg.svd(centred, full_matrices=False)
        out_ch = head.out.out_channels
        top = basis[: max(4, out_ch)]  # (k, C) dominant feature directions
        mix = torch.randn(out_ch, top.shape[0], generator=gen)
        head.out.weight.zero_()
        head.out.weight[:, :, 1, 1] = mix @ top
        head.out.bias.zero_()
        out = head(shared)
        if name == "depth":
            head.out.weight.mul_(0.25 * depth_mid / out.std().clamp_min(1e-6))
            head.out.bias.fill_(depth_mid - float(head(shared).mean()))
        else:
            head.out.weight.mul_(4.0 / out.std().clamp_min(1e-6))
            head.out.bias.sub_(head(shared).mean(dim=(0, 2, 3)))
