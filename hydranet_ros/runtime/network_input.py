"""The arithmetic that turns camera pixels into the network's input, in one place: the pipeline
runs it on every frame; int8 calibration must run exactly the same on its frames, or the
activation ranges it measures are not the ones the camera produces; training and evaluation run
it on their batches, so the network learns and is measured on what the camera path feeds it."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def normalisation(mean: Sequence[float], std: Sequence[float], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with (x/255 - mean)/std == x * scale + shift: one multiply-add per channel."""
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return 1.0 / (255.0 * std_t), -mean_t / std_t


def resize_and_normalise(x: torch.Tensor, size: tuple[int, int], scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Float (1,3,H,W) pixel values 0..255 -> normalised input at ``size`` (width, height):
    bilinear, antialiased when shrinking (plain bilinear would alias fine texture)."""
    width, height = size
    if (height, width) != tuple(x.shape[-2:]):
        shrinking = height < x.shape[-2] or width < x.shape[-1]
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)
    return torch.addcmul(shift, x, scale)


def fit_and_normalise(x: torch.Tensor, geometry, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Float (1,3,H,W) pixel values 0..255 -> the network's input for ``geometry``
    (runtime/geometry.InputGeometry): resized to its scaled size (aspect kept) and normalised,
    then padded to its network size with the edge pixels repeated -- the border continues the
    scene, as a camera with a slightly wider view would see it, instead of a grey band whose
    edge the network would answer to."""
    x = resize_and_normalise(x, geometry.scaled_size, scale, shift)
    left, right, top, bottom = geometry.padding
    if left or right or top or bottom:
        x = F.pad(x, (left, right, top, bottom), mode="replicate")
    return x


def normalise_images(images_u8: torch.Tensor, *, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (N,3,H,W) already at the network's size -> normalised float input, as the pipeline
    prepares a camera frame (training and evaluation batches)."""
    x = images_u8.float()
    return resize_and_normalise(x, (x.shape[-1], x.shape[-2]), *normalisation(mean, std, images_u8.device))
