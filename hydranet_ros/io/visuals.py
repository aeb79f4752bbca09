"""Pictures for people: class colours, overlays, depth colour maps, a side-by-side preview."""

from __future__ import annotations

import cv2
import numpy as np

from hydranet_ros.presets.palettes import Palette, as_lut


def colorize_labels(labels: np.ndarray, palette: Palette) -> np.ndarray:
    """uint8 HxW class ids -> uint8 HxWx3 RGB; ids outside the palette are black."""
    return as_lut(palette)[labels]


def overlay(frame_rgb: np.ndarray, labels: np.ndarray, palette: Palette, *, alpha: float = 0.5) -> np.ndarray:
    """Class colours blended over the camera frame (resized to the labels' size if needed)."""
    return blend(frame_rgb, colorize_labels(labels, palette), alpha=alpha)


def blend(frame_rgb: np.ndarray, colour_rgb: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """Already drawn class colours blended over the camera frame (resized to their size if needed);
    for callers that publish the colour image too and should not draw it twice."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be within [0, 1], got {alpha}")
    if frame_rgb.shape[:2] != colour_rgb.shape[:2]:
        frame_rgb = cv2.resize(frame_rgb, (colour_rgb.shape[1], colour_rgb.shape[0]), interpolation=cv2.INTER_AREA)
    return cv2.addWeighted(colour_rgb, alpha, np.ascontiguousarray(frame_rgb), 1.0 - alpha, 0.0)


def colorize_depth(depth_m: np.ndarray, depth_range_m: tuple[float, float]) -> np.ndarray:
    """Metric depth -> RGB over a FIXED range (so colours mean the same metres in every frame);
    near is warm, far is cool; NaN and non-positive depth are black."""
    lo, hi = depth_range_m
    scaled = (np.clip(depth_m, lo, hi) - lo) * (255.0 / (hi - lo))
    index = (255 - np.nan_to_num(scaled, nan=0.0)).astype(np.uint8)
    rgb = cv2.applyColorMap(index, cv2.COLORMAP_TURBO)[..., ::-1]
    rgb[~(depth_m > 0)] = 0  # NaN compares false: invalid and missing depth drawn black
    return np.ascontiguousarray(rgb)


def side_by_side(*images_rgb: np.ndarray, height: int | None = None) -> np.ndarray:
    """Images placed left to right at one height (the first image's, unless given)."""
    height = height or images_rgb[0].shape[0]
    resized = [
        img if img.shape[0] == height else cv2.resize(img, (max(1, round(img.shape[1] * height / img.shape[0])), height), interpolation=cv2.INTER_AREA)
        for img in images_rgb
    ]
    return np.concatenate(resized, axis=1)
