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


# Invalid depth (NaN, non-positive: no estimate) is drawn as a grey checkerboard, which no depth
# colour is: the turbo map's far end is a dark blue-violet that black would be mistaken for.
INVALID_LIGHT, INVALID_DARK = (150, 150, 150), (90, 90, 90)
_CHECK = 4  # pixels per checkerboard square


def _checkerboard(height: int, width: int) -> np.ndarray:
    squares = ((np.arange(height)[:, None] // _CHECK + np.arange(width)[None, :] // _CHECK) % 2).astype(bool)
    return np.where(squares[..., None], np.uint8(INVALID_LIGHT), np.uint8(INVALID_DARK))


def colorize_depth(depth_m: np.ndarray, depth_range_m: tuple[float, float]) -> np.ndarray:
    """Metric depth -> RGB over a FIXED range (so colours mean the same metres in every frame);
    near is warm, far is cool, beyond the range as far; no estimate (NaN, non-positive) is a grey
    checkerboard, never a depth colour."""
    lo, hi = depth_range_m
    scaled = (np.clip(depth_m, lo, hi) - lo) * (255.0 / (hi - lo))
    index = (255 - np.nan_to_num(scaled, nan=0.0)).astype(np.uint8)
    rgb = cv2.applyColorMap(index, cv2.COLORMAP_TURBO)[..., ::-1]
    invalid = ~(depth_m > 0)  # NaN compares false
    if invalid.any():
        rgb[invalid] = _checkerboard(*depth_m.shape)[invalid]
    return np.ascontiguousarray(rgb)


_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(image: np.ndarray, text: str, x: int, y: int, scale: float, colour=(255, 255, 255)) -> None:
    cv2.putText(image, text, (x, y), _FONT, scale, (0, 0, 0), max(2, round(3 * scale)), cv2.LINE_AA)  # outline
    cv2.putText(image, text, (x, y), _FONT, scale, colour, max(1, round(scale)), cv2.LINE_AA)


def legend(labels: np.ndarray, class_names, palette, *, height: int, width: int = 170) -> np.ndarray:
    """A panel naming the classes present in ``labels`` in their colours, most pixels first
    (as many as fit ``height``)."""
    panel = np.full((height, width, 3), 32, np.uint8)
    counts = np.bincount(labels.ravel(), minlength=len(class_names))[: len(class_names)]
    present = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] > 0]
    row = max(12, min(24, height // max(len(present), 1)))
    scale = row / 40
    for i, cls in enumerate(present[: height // row]):
        y0 = i * row
        cv2.rectangle(panel, (4, y0 + 2), (4 + row - 4, y0 + row - 2), tuple(int(v) for v in palette[cls]), -1)
        _text(panel, str(class_names[cls])[:18], row + 6, y0 + row - 5, scale)
    return panel


def depth_bar(depth_range_m: tuple[float, float], *, height: int, width: int = 90) -> np.ndarray:
    """A vertical colour bar for colorize_depth, near at the bottom, with ticks in metres and a
    swatch of how 'no estimate' looks."""
    lo, hi = depth_range_m
    panel = np.full((height, width, 3), 32, np.uint8)
    swatch = max(14, height // 10)
    bar_top, bar_bottom = 8, max(9, height - swatch - 12)
    metres = np.linspace(hi, lo, max(bar_bottom - bar_top, 1))[:, None].repeat(18, axis=1)
    panel[bar_top:bar_bottom, 6:24] = colorize_depth(metres.astype(np.float32), depth_range_m)
    scale = max(0.3, min(0.5, height / 600))
    step = _nice_step((hi - lo) / 4)
    tick = lo
    while tick <= hi + 1e-9:
        y = int(round(bar_bottom - 1 - (tick - lo) / (hi - lo) * (bar_bottom - bar_top - 1)))
        cv2.line(panel, (24, y), (30, y), (255, 255, 255), 1)
        _text(panel, f"{tick:g} m", 33, min(max(y + 4, 10), height - 2), scale)
        tick += step
    panel[height - swatch - 4:height - 4, 6:24] = _checkerboard(swatch, 18)
    _text(panel, "none", 28, height - 6, scale)
    return panel


def _nice_step(raw: float) -> float:
    magnitude = 10 ** np.floor(np.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw))


def preview(frame_rgb: np.ndarray, labels: np.ndarray, colour_rgb: np.ndarray, depth_m: np.ndarray, preset, *,
            alpha: float = 0.5) -> np.ndarray:
    """What `hydranet infer` shows people: overlay, depth, and a panel with the class legend and
    the depth colour bar in metres."""
    overlay_rgb = blend(frame_rgb, colour_rgb, alpha=alpha)
    height = max(overlay_rgb.shape[0], 160)  # small outputs are enlarged so the text stays legible
    depth_rgb = colorize_depth(depth_m, preset.depth_range_m)
    images = side_by_side(overlay_rgb, depth_rgb, height=height)
    legend_h = height // 2
    panel = np.concatenate([legend(labels, preset.class_names, preset.palette, height=legend_h),
                            _pad_width(depth_bar(preset.depth_range_m, height=height - legend_h), 170)], axis=0)
    return np.concatenate([images, panel], axis=1)


def _pad_width(image: np.ndarray, width: int) -> np.ndarray:
    if image.shape[1] >= width:
        return image
    pad = np.full((image.shape[0], width - image.shape[1], 3), 32, np.uint8)
    return np.concatenate([image, pad], axis=1)


def side_by_side(*images_rgb: np.ndarray, height: int | None = None) -> np.ndarray:
    """Images placed left to right at one height (the first image's, unless given)."""
    height = height or images_rgb[0].shape[0]
    resized = [
        img if img.shape[0] == height else cv2.resize(img, (max(1, round(img.shape[1] * height / img.shape[0])), height),
                                                      interpolation=cv2.INTER_AREA if img.shape[0] > height else cv2.INTER_NEAREST)
        for img in images_rgb
    ]
    return np.concatenate(resized, axis=1)
