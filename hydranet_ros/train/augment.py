"""Augmentation that keeps image, labels and depth of a frame aligned, and class balancing.

Frames are the dicts of ``datasets`` and ``synthetic``: image uint8 HxWx3, labels uint8 HxW (255
ignore), depth_m float32 HxW (0 or NaN invalid), camera_k 3x3 or None. Every geometric step maps
all three with the same pixel-centre convention (a pixel's centre is at index + 0.5); the image
is interpolated, labels and depth are sampled at the nearest source pixel, never averaged, so a
label is never a blend of classes and a depth never a blend of a car and the wall behind it or
of a measurement and a hole.

Scale and depth. Scaling the image by s with the focal length held fixed is what the network
sees when the scene is s times nearer: an object of width X metres at depth z spans f*X/z pixels,
and after the zoom s*f*X/z = f*X/(z/s). So depth is divided by s and fx, fy stay as they are
(only the principal point moves with the zoom and the crop). Each point keeps its X and Y and
only its z shrinks, so the ground stays 1.65 m (or whatever) below the camera and the row-to-depth
relation of the ground plane still holds in the new frame (test_augment checks it on a synthetic
street). The other reading -- depth kept, focal length multiplied by s -- is also a true camera,
but HydraNet is not told the focal length: it learns metric depth from apparent size for the one
camera it will run on, and frames from cameras with other focal lengths at the same depths would
teach it that one apparent size means several distances. Eigen et al. (NIPS 2014) scale the same
way.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hydranet_ros.train.datasets import IGNORE


def _with(frame: dict, **changes) -> dict:
    out = dict(frame)
    out.update(changes)
    return out


def _nearest_index(n_out: int, n_in: int) -> np.ndarray:
    """Source index whose pixel contains each output pixel centre (exact, no half-pixel shift)."""
    return np.minimum(((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp), n_in - 1)


def hflip(frame: dict) -> dict:
    """Mirror left-right; the principal point mirrors too."""
    k = frame.get("camera_k")
    if k is not None:
        k = k.copy()
        k[0, 2] = frame["image"].shape[1] - 1 - k[0, 2]
    return _with(frame, image=np.ascontiguousarray(frame["image"][:, ::-1]),
                 labels=np.ascontiguousarray(frame["labels"][:, ::-1]),
                 depth_m=np.ascontiguousarray(frame["depth_m"][:, ::-1]), camera_k=k)


def rescale(frame: dict, scale: float) -> dict:
    """Zoom by ``scale`` as if the scene were ``scale`` times nearer (see the module docstring)."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    h, w = frame["labels"].shape
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    sx, sy = new_w / w, new_h / h
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR  # area averaging: no aliasing
    image = cv2.resize(frame["image"], (new_w, new_h), interpolation=interp)
    rows, cols = _nearest_index(new_h, h)[:, None], _nearest_index(new_w, w)[None, :]
    labels = frame["labels"][rows, cols]
    depth = frame["depth_m"][rows, cols] / np.float32((sx + sy) / 2)  # 0 and NaN stay invalid
    k = frame.get("camera_k")
    if k is not None:
        k = k.copy()
        k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
        k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
    return _with(frame, image=image, labels=labels, depth_m=depth.astype(np.float32), camera_k=k)


def crop(frame: dict, x0: int, y0: int, width: int, height: int) -> dict:
    """The window [x0, x0+width) x [y0, y0+height); parts outside the frame are padding:
    black image, ignored labels, invalid depth."""
    h, w = frame["labels"].shape
    image = np.zeros((height, width, 3), np.uint8)
    labels = np.full((height, width), IGNORE, np.uint8)
    depth = np.zeros((height, width), np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + width, w), min(y0 + height, h)
    if sx0 < sx1 and sy0 < sy1:
        dst = (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0))
        src = (slice(sy0, sy1), slice(sx0, sx1))
        image[dst] = frame["image"][src]
        labels[dst] = frame["labels"][src]
        depth[dst] = frame["depth_m"][src]
    k = frame.get("camera_k")
    if k is not None:
        k = k.copy()
        k[0, 2] -= x0
        k[1, 2] -= y0
    return _with(frame, image=image, labels=labels, depth_m=depth, camera_k=k)


def random_crop(frame: dict, size: tuple[int, int], rng: np.random.Generator) -> dict:
    """A random window of ``size`` = (width, height), padded where the frame is smaller."""
    width, height = size
    h, w = frame["labels"].shape
    x0 = int(rng.integers(0, w - width + 1)) if w >= width else -int(rng.integers(0, width - w + 1))
    y0 = int(rng.integers(0, h - height + 1)) if h >= height else -int(rng.integers(0, height - h + 1))
    return crop(frame, x0, y0, width, height)


def colour_jitter(image: np.ndarray, rng: np.random.Generator, *, brightness: float = 0.2,
                  contrast: float = 0.2, saturation: float = 0.2, white_balance: float = 0.05) -> np.ndarray:
    """Random brightness, contrast, saturation and per-channel gain; the image only."""
    x = image.astype(np.float32)
    x *= np.float32(1.0 + rng.uniform(-brightness, brightness))
    mean = x.mean()
    x = (x - mean) * np.float32(1.0 + rng.uniform(-contrast, contrast)) + mean
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = grey[..., None] + (x - grey[..., None]) * np.float32(1.0 + rng.uniform(-saturation, saturation))
    x *= (1.0 + rng.uniform(-white_balance, white_balance, 3)).astype(np.float32)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def camera_artefacts(image: np.ndarray, rng: np.random.Generator, *, blur_sigma: float = 0.0,
                     noise_std: float = 0.0, jpeg_quality: tuple[int, int] | None = None) -> np.ndarray:
    """What real cameras add to a picture: lens and motion blur (Gaussian, sigma up to
    ``blur_sigma`` px), sensor noise (up to ``noise_std`` grey levels) and JPEG compression
    (quality drawn from ``jpeg_quality``, as CompressedImage topics carry). The image only."""
    out = image
    if blur_sigma > 0:
        sigma = rng.uniform(0.0, blur_sigma)
        if sigma > 0.2:
            out = cv2.GaussianBlur(out, (0, 0), sigma)
    if noise_std > 0:
        noise = rng.normal(0.0, rng.uniform(0.0, noise_std), out.shape).astype(np.float32)
        out = np.clip(out.astype(np.float32) + noise + 0.5, 0, 255).astype(np.uint8)
    if jpeg_quality is not None:
        quality = int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1))
        ok, data = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
    return out


def dappled_shadows(image: np.ndarray, rng: np.random.Generator, *, strength: float,
                    surfaces: np.ndarray | None = None) -> np.ndarray:
    """Soft-edged patches of shade, as a tree canopy throws on a sunny street: the picture times
    a field that is 1 in the light and 1 - s in the shade, s drawn up to ``strength``. The
    generator's cast shadows come from boxes only (houses, cars, trunks), while real streets are
    full of blotchy shade: the default model called a shaded real road car or sidewalk at full
    resolution. The image only; patches 4-32 px across, covering 20-60 % of the frame, only
    where ``surfaces`` (a boolean mask) is true when given: shade never falls on the sky."""
    height, width = image.shape[:2]
    cell = float(rng.uniform(4.0, 32.0))  # patch size in pixels
    grid = rng.random((max(2, round(height / cell) + 2), max(2, round(width / cell) + 2))).astype(np.float32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    threshold = np.quantile(field, 1.0 - rng.uniform(0.2, 0.6))
    softness = np.float32(rng.uniform(0.01, 0.08))  # edge width in field units: crisp to soft
    # The logistic 1 / (1 + exp((threshold - field) / softness)), 0 in the light and 1 in the
    # shade, written with tanh: the same values, but a crisp edge (softness 0.01) far from the
    # threshold no longer overflows exp in float32 (a RuntimeWarning in training logs).
    shade = np.float32(0.5) + np.float32(0.5) * np.tanh((field - threshold) / (2 * softness))
    if surfaces is not None:
        shade = shade * surfaces
    gain = 1.0 - np.float32(rng.uniform(0.3, 1.0) * strength) * shade
    return np.clip(image.astype(np.float32) * gain[..., None] + 0.5, 0, 255).astype(np.uint8)


def edge_padding(frame: dict, rng: np.random.Generator, *, max_fraction: float) -> dict:
    """Bands at two opposite edges with the edge row (or column) of the frame repeated, as the
    pipeline pads a scaled frame to the network's stride (runtime/geometry.py: centred, edge
    pixels repeated). At 640x480 the KITTI frame becomes 640x193 in a 640x224 input: a network
    that never saw such streaks mislabelled the rows beside them. Top and bottom (the common case)
    or left and right, in all up to ``max_fraction`` of the frame; the bands are labelled ignore
    and have no depth, as the pipeline cuts them off its outputs."""
    labels = frame["labels"]
    height, width = labels.shape
    rows = rng.random() < 0.75
    size = height if rows else width
    total = int(rng.integers(2, max(3, int(size * max_fraction) + 1)))
    first, second = total // 2, total - total // 2
    image, labels, depth = frame["image"].copy(), labels.copy(), frame["depth_m"].copy()
    # Work on rows; for columns, on transposed views of the same arrays.
    across = (lambda a: a) if rows else (lambda a: a.swapaxes(0, 1))
    for a in (across(image), across(labels), across(depth)):
        a[:first] = a[first]
        a[size - second:] = a[size - second - 1]
    bands = np.r_[0:first, size - second:size]
    across(labels)[bands] = IGNORE
    across(depth)[bands] = 0.0
    return _with(frame, image=image, labels=labels, depth_m=depth)


@dataclass(frozen=True)
class Augmenter:
    """Scale, crop, flip, colour jitter: ``Augmenter(...)(frame, rng) -> frame``.

    crop_size: (width, height) of the output, or None to keep the scaled size.
    scale_range: zoom factor drawn uniformly (1, 1 = off).
    """

    crop_size: tuple[int, int] | None = None
    scale_range: tuple[float, float] = (1.0, 1.0)
    flip_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    white_balance: float = 0.05
    blur_sigma: float = 0.0
    noise_std: float = 0.0
    jpeg_quality: tuple[int, int] | None = None
    shadow_prob: float = 0.0  # chance of dappled_shadows per frame
    shadow_strength: float = 0.6
    pad_prob: float = 0.0  # chance of edge_padding per frame, after the camera: what the pipeline does
    pad_max_fraction: float = 0.15

    def __post_init__(self) -> None:
        if not 0.0 <= self.pad_prob <= 1.0:
            raise ValueError(f"pad_prob must be in [0, 1], got {self.pad_prob}")
        if not 0.0 < self.pad_max_fraction <= 0.5:
            raise ValueError(f"pad_max_fraction must be in (0, 0.5], got {self.pad_max_fraction}")
        if not 0.0 <= self.shadow_prob <= 1.0:
            raise ValueError(f"shadow_prob must be in [0, 1], got {self.shadow_prob}")
        if not 0.0 <= self.shadow_strength < 1.0:
            raise ValueError(f"shadow_strength must be in [0, 1), got {self.shadow_strength}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")

    def __call__(self, frame: dict, rng: np.random.Generator) -> dict:
        lo, hi = self.scale_range
        if hi > lo or lo != 1.0:
            frame = rescale(frame, float(rng.uniform(lo, hi)))
        if self.crop_size is not None:
            frame = random_crop(frame, self.crop_size, rng)
        if rng.random() < self.flip_prob:
            frame = hflip(frame)
        image = frame["image"]
        if self.shadow_prob > 0 and rng.random() < self.shadow_prob:  # before the camera sees it
            depth = frame.get("depth_m")  # 0 or NaN: no surface (sky) or no measurement
            surfaces = None if depth is None else np.nan_to_num(depth, nan=0.0) > 0
            image = dappled_shadows(image, rng, strength=self.shadow_strength, surfaces=surfaces)
        image = colour_jitter(image, rng, brightness=self.brightness, contrast=self.contrast,
                              saturation=self.saturation, white_balance=self.white_balance)
        image = camera_artefacts(image, rng, blur_sigma=self.blur_sigma, noise_std=self.noise_std,
                                 jpeg_quality=self.jpeg_quality)
        frame = _with(frame, image=image)
        if self.pad_prob > 0 and rng.random() < self.pad_prob:
            frame = edge_padding(frame, rng, max_fraction=self.pad_max_fraction)
        return frame


# -- class balance ----------------------------------------------------------------------------

def label_histogram(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel count per class (ids >= num_classes, such as 255, are not counted)."""
    flat = labels.ravel()
    return np.bincount(flat[flat < num_classes], minlength=num_classes).astype(np.int64)


def median_frequency_weights(histograms: np.ndarray) -> np.ndarray:
    """Median-frequency balancing (Eigen & Fergus, ICCV 2015): weight_c = median(freq) / freq_c.

    freq_c = pixels of class c / pixels of the images in which c appears; the median is over the
    classes that appear. A class that never appears gets weight 0 (it cannot be in the loss).
    """
    hist = np.asarray(histograms, np.float64)
    if hist.ndim != 2:
        raise ValueError(f"histograms must be N x C, got shape {hist.shape}")
    present = hist > 0
    image_pixels = hist.sum(axis=1, keepdims=True)
    class_pixels = hist.sum(axis=0)
    seen_pixels = (present * image_pixels).sum(axis=0)
    seen = class_pixels > 0
    if not seen.any():
        raise ValueError("no labelled pixels in any histogram")
    freq = np.zeros(hist.shape[1])
    freq[seen] = class_pixels[seen] / seen_pixels[seen]
    weights = np.zeros(hist.shape[1])
    weights[seen] = np.median(freq[seen]) / freq[seen]
    return weights


def balanced_sample_weights(histograms: np.ndarray, *, power: float = 0.5) -> np.ndarray:
    """Per-frame sampling weights that show frames with rare classes more often.

    A class's rarity is (1 / f_c) ** power with f_c the fraction of labelled frames containing
    it; a frame weighs as its rarest class (repeat-factor sampling, Gupta et al., LVIS 2019).
    Frames without labelled pixels (depth-only frames) weigh 1, as a frame of common classes
    does. The weights are scaled to mean 1, ready for a weighted random sampler.
    """
    hist = np.asarray(histograms, np.float64)
    if hist.ndim != 2 or hist.shape[0] == 0:
        raise ValueError(f"histograms must be N x C with N > 0, got shape {hist.shape}")
    present = hist > 0
    labelled = present.any(axis=1)
    weights = np.ones(hist.shape[0])
    if labelled.any():
        frac = present[labelled].mean(axis=0)
        rarity = np.where(frac > 0, (1.0 / np.where(frac > 0, frac, 1.0)) ** power, 0.0)
        weights[labelled] = np.max(np.where(present[labelled], rarity, 0.0), axis=1)
    return weights / weights.mean()
