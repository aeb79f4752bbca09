"""Random weights at the scale of trained ones, for tests and benchmarks without real checkpoints.

PyTorch's default init leaves BN at identity statistics, so activations drift far from what a
trained network produces and numerical comparisons (fp16 vs fp32, folded vs not) become either
trivially easy or meaningless. Here convs get He-normal weights, BN gets spread affine parameters,
and BN running statistics are measured on real-looking images, as training would leave them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import Preset


@torch.no_grad()
def realistic_model(preset: Preset, *, seed: int = 0, calibration: list[np.ndarray] | None = None, size: tuple[int, int] = (160, 128)) -> HydraNet:
    """An eval-mode HydraNet with trained-scale random weights.

    calibration: RGB uint8 frames used to set BN running statistics (random smooth images if None).
    """
    gen = torch.Generator().manual_seed(seed)
    model = HydraNet(preset)
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            # He gain where BN follows; unit gain in the BN-free decoder and heads, whose residual
            # sums would otherwise grow the activations ~10x per level (trained ones do not).
            gain = 2.0 if name.startswith("encoder.") else 0.5
            module.weight.normal_(0.0, (gain / fan_in) ** 0.5, generator=gen)
            if module.bias is not None:
                module.bias.normal_(0.0, 0.1, generator=gen)
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.uniform_(0.5, 1.5, generator=gen)
            module.bias.normal_(0.0, 0.2, generator=gen)
            module.momentum = None  # cumulative average over the calibration batches
            module.reset_running_stats()
    depth_bias = model.heads["depth"].out.bias
    depth_bias.add_(sum(preset.depth_range_m) / 4)  # depths mostly positive and in range, as trained
    batches = _calibration_batches(preset, calibration, size, gen)
    model.train()
    for batch in batches:
        model(batch)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            # Channels dead on a few calibration images would get ~0 variance and a 300x gain;
            # trained networks do not keep such channels, and they make fp32 comparisons noise.
            module.running_var.clamp_(min=0.05)
            module.momentum = 0.1
    return model.eval()


def _calibration_batches(preset: Preset, frames, size, gen) -> list[torch.Tensor]:
    mean = torch.tensor(preset.mean).view(1, 3, 1, 1)
    std = torch.tensor(preset.std).view(1, 3, 1, 1)
    if frames:
        import cv2

        images = [torch.from_numpy(cv2.resize(f, size)).permute(2, 0, 1).float() / 255 for f in frames]
        batch = torch.stack(images)
    else:
        # Smooth random images: upsampled noise has image-like spatial correlation.
        w, h = size
        coarse = torch.rand(4, 3, max(2, h // 16), max(2, w // 16), generator=gen)
        batch = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return [(batch - mean) / std]
