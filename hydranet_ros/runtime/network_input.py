"""The arithmetic that turns camera pixels into the network's input, in one place: the pipeline
runs it on every frame; int8 calibration must run exactly the same on its frames, or the
activation ranges it measures are not the ones the camera produces; training and evaluation run
it on their batches, so the network learns and is measured on what the camera path feeds it."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def normalisation(mean: Sequence[float], std: Sequence[float], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with (x/255 - mean)/std == x * scale + shift: one multiply-add per channel."""
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return 1.0 / (255.0 * std_t), -mean_t / std_t


def resize_pixels(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float (N,3,H,W) -> (N,3,height,width) for ``size`` (width, height): bilinear, antialiased
    when shrinking (plain bilinear would alias fine texture); unchanged when already there."""
    width, height = size
    if (height, width) == tuple(x.shape[-2:]):
        return x
    shrinking = height < x.shape[-2] or width < x.shape[-1]
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)


def resize_and_normalise(x: torch.Tensor, size: tuple[int, int], scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Float (1,3,H,W) pixel values 0..255 -> normalised input at ``size`` (width, height)."""
    return torch.addcmul(shift, resize_pixels(x, size), scale)


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


def fit_and_normalise_host(frame: np.ndarray, geometry, scale: torch.Tensor, shift: torch.Tensor, *, bgr: bool = False,
                           channels_last: bool = False) -> torch.Tensor:
    """``fit_and_normalise`` of one uint8 HxWx3 frame on the CPU, written straight into the
    engine's layout: (1,3,h,w) float32, NCHW or channels-last (NHWC memory).

    numpy does the multiply-add and the edge padding one channel plane at a time, from the uint8
    frame (or the resized float frame) into its place in the padded input: at 640x480 it took
    ~1.6 ms where torch's float conversion, multiply-add, padding and layout change took ~36 ms of
    a loaded 2-core machine's time. The resize, when the frame is not at its scaled size, stays
    torch's (antialiased bilinear: OpenCV has no equal)."""
    (net_w, net_h), (left, top), (width, height) = geometry.network_size, geometry.offset, geometry.scaled_size
    pixels = frame
    if (width, height) != (frame.shape[1], frame.shape[0]):
        if any(step < 0 for step in frame.strides):  # a flipped view: torch takes no negative strides
            frame = np.ascontiguousarray(frame)
        x = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float()  # channels-last float
        pixels = resize_pixels(x, (width, height)).permute(0, 2, 3, 1)[0].numpy()  # (h,w,3) float32
    scale_c, shift_c = scale.detach().cpu().flatten().numpy(), shift.detach().cpu().flatten().numpy()
    buffer = np.empty((1, net_h, net_w, 3) if channels_last else (1, 3, net_h, net_w), np.float32)
    planes = buffer[0].transpose(2, 0, 1) if channels_last else buffer[0]  # (3, net_h, net_w) views
    right, bottom = left + width, top + height
    for c in range(3):
        plane = planes[c]
        inner = plane[top:bottom, left:right]
        np.multiply(pixels[..., 2 - c if bgr else c], scale_c[c], out=inner)
        inner += shift_c[c]
        # Edge pixels repeated (as F.pad's replicate): columns beside the frame, then whole rows.
        if left:
            plane[top:bottom, :left] = inner[:, :1]
        if right < net_w:
            plane[top:bottom, right:] = inner[:, -1:]
        if top:
            plane[:top] = plane[top]
        if bottom < net_h:
            plane[bottom:] = plane[bottom - 1]
    tensor = torch.from_numpy(buffer)
    return tensor.permute(0, 3, 1, 2) if channels_last else tensor


def normalise_images(images_u8: torch.Tensor, *, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (N,3,H,W) already at the network's size -> normalised float input, as the pipeline
    prepares a camera frame (training and evaluation batches)."""
    x = images_u8.float()
    return resize_and_normalise(x, (x.shape[-1], x.shape[-2]), *normalisation(mean, std, images_u8.device))
