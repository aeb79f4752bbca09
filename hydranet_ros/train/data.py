"""From dataset frames (dicts of numpy arrays) to batches of tensors, resumable mid-epoch.

Every dataset returns dict(image=uint8 HxWx3 RGB, labels=uint8 HxW (255 ignore),
depth_m=float32 HxW (0/NaN invalid), camera_k=3x3[, normals=float32 HxWx3]). A frame may lack
an annotation (None): it becomes "all ignored" so the loss masks it out.
"""

from __future__ import annotations

import collections
import importlib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from hydranet_ros.errors import UsageError
from hydranet_ros.train.config import ConfigError, DatasetSpec
from hydranet_ros.train.losses import IGNORE_INDEX

# kind -> (module, class). Imported lazily: loaders may pull in optional dependencies.
DATASET_KINDS: dict[str, tuple[str, str]] = {
    "synthetic": ("hydranet_ros.train.synthetic", "SyntheticStreets"),
    "kitti": ("hydranet_ros.train.datasets", "KITTI"),
    "nyud": ("hydranet_ros.train.datasets", "NYUDepthV2"),
    "cityscapes": ("hydranet_ros.train.datasets", "Cityscapes"),
    "folder": ("hydranet_ros.train.datasets", "FolderDataset"),
}


def build_dataset(spec: DatasetSpec) -> Dataset:
    """Instantiate the loader that ``spec.kind`` names with ``spec.args``."""
    if spec.kind not in DATASET_KINDS:
        raise ConfigError(f"unknown dataset kind {spec.kind!r}; known: {', '.join(DATASET_KINDS)}", reason="bad_dataset")
    module_name, class_name = DATASET_KINDS[spec.kind]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"dataset kind {spec.kind!r} is not available: {error}", reason="bad_dataset") from None
    args = dict(spec.args)
    if "size" in args and isinstance(args["size"], list):
        args["size"] = tuple(args["size"])
    try:
        return cls(**args)
    except TypeError as error:
        raise ConfigError(f"dataset {spec.kind!r}: bad arguments {args}: {error}", reason="bad_dataset") from None
    except ValueError as error:  # the loaders' DatasetError (missing folder, no frames, ...)
        raise ConfigError(f"dataset {spec.kind!r}: {error}", reason=getattr(error, "reason", "bad_dataset")) from None


def build_augmenter(options: Mapping[str, Any]) -> Any:
    """The Augmenter of ``augment.py`` from config options (YAML lists become tuples)."""
    from hydranet_ros.train.augment import Augmenter

    args = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    try:
        return Augmenter(**args)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"data.augment: {error}", reason="bad_augment") from None


class AugmentedDataset(Dataset):
    """Applies ``augment(frame, rng)`` to every frame, with a generator seeded per call so a
    worker process and the main process draw independent but reproducible randomness."""

    def __init__(self, base: Dataset, *, augment: Any, seed: int) -> None:
        self.base = base
        self.augment = augment
        self.seed = seed
        self._draws = 0  # per process: successive epochs draw new augmentations of a frame

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        # torch seeds each worker differently; mixing it in keeps workers from repeating each other.
        worker_seed = torch.initial_seed() % (2**32)
        self._draws += 1
        rng = np.random.default_rng([self.seed, index, worker_seed, self._draws])
        return self.augment(self.base[index], rng)


class CanonicalDepth(Dataset):
    """Depth in the canonical camera's terms (config.DataConfig.canonical_focal_px): each frame's
    depth times canonical_focal_px / its own focal length (sqrt(fx * fy) of camera_k). A frame
    without camera_k is refused: its depth cannot be put in those terms."""

    def __init__(self, base: Dataset, *, focal_px: float) -> None:
        if not focal_px > 0:
            raise ValueError(f"canonical focal length must be > 0 px, got {focal_px}")
        self.base = base
        self.focal_px = float(focal_px)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        frame = self.base[index]
        depth, k = frame.get("depth_m"), frame.get("camera_k")
        if depth is None:
            return frame
        if k is None:
            raise ValueError(f"frame {index} has depth but no camera_k: canonical depth needs its focal length")
        k = np.asarray(k, np.float64)
        factor = np.float32(self.focal_px / np.sqrt(k[0, 0] * k[1, 1]))
        return {**frame, "depth_m": np.asarray(depth, np.float32) * factor}


def frame_to_tensors(frame: Mapping[str, Any], *, with_normals: bool) -> dict[str, torch.Tensor]:
    image = np.asarray(frame["image"])
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise UsageError(f"frame image must be uint8 HxWx3, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    labels = frame.get("labels")
    labels = np.full((height, width), IGNORE_INDEX, np.uint8) if labels is None else np.asarray(labels)
    depth = frame.get("depth_m")
    depth = np.zeros((height, width), np.float32) if depth is None else np.asarray(depth, dtype=np.float32)
    if labels.shape != (height, width) or depth.shape != (height, width):
        raise UsageError(f"labels {labels.shape} / depth {depth.shape} do not match the image {image.shape[:2]}")
    # NaN becomes 0 here so that no NaN ever sits in a tensor that a loss might touch.
    depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    out = {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        "labels": torch.from_numpy(labels.astype(np.int64)),
        "depth_m": torch.from_numpy(depth),
    }
    if with_normals:
        normals = frame.get("normals")
        normals = np.zeros((height, width, 3), np.float32) if normals is None else np.asarray(normals, np.float32)
        normals = np.where(np.isfinite(normals), normals, 0.0)
        out["normals"] = torch.from_numpy(np.ascontiguousarray(normals.transpose(2, 0, 1)))
    return out


class Collate:
    """Stack frames into a batch (a class, not a lambda, so DataLoader workers can pickle it)."""

    def __init__(self, *, with_normals: bool) -> None:
        self.with_normals = with_normals

    def __call__(self, frames: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        tensors = [frame_to_tensors(f, with_normals=self.with_normals) for f in frames]
        shapes = {t["image"].shape for t in tensors}
        if len(shapes) != 1:
            raise UsageError(f"frames in one batch differ in size: {sorted(shapes)}; crop or resize them")
        return {key: torch.stack([t[key] for t in tensors]) for key in tensors[0]}


class ShuffledSampler(Sampler[int]):
    """A fresh permutation per epoch from (seed, epoch): the same order after a resume."""

    def __init__(self, length: int, *, seed: int) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


class SkipFirst(Sampler[int]):
    """Drop the first ``skip`` indices of another sampler: resuming in the middle of an epoch
    continues with the next unseen frames instead of loading (and discarding) the seen ones."""

    def __init__(self, base: Sampler[int], *, skip: int = 0) -> None:
        self.base = base
        self.skip = skip

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)  # type: ignore[arg-type]


class SizeBuckets(Sampler[list[int]]):
    """Batches of one frame size each, from a dataset whose frames differ in size (synthetic
    ``sizes``). Frames are taken in the order of ``base``; each size collects its own batch and
    a batch is yielded when it holds ``batch_for[size]`` frames (frames left over at the end of
    an epoch are dropped, as with drop_last). The batches are a function of ``base``'s order, so
    ``skip_batches`` resumes mid-epoch at the same batch."""

    def __init__(self, base: Sampler[int], *, size_of: Callable[[int], tuple[int, int]],
                 batch_for: Mapping[tuple[int, int], int], skip_batches: int = 0) -> None:
        if any(b < 1 for b in batch_for.values()):
            raise ValueError(f"every size needs a batch of at least 1 frame, got {dict(batch_for)}")
        self.base = base
        self.size_of = size_of
        self.batch_for = dict(batch_for)
        self.skip_batches = skip_batches

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[list[int]]:
        buckets: dict[tuple[int, int], list[int]] = {size: [] for size in self.batch_for}
        made = 0
        for index in self.base:
            size = self.size_of(index)
            if size not in buckets:
                raise ValueError(f"frame {index} is {size[0]}x{size[1]}, a size without a batch size")
            bucket = buckets[size]
            bucket.append(index)
            if len(bucket) == self.batch_for[size]:
                if made >= self.skip_batches:
                    yield list(bucket)
                made += 1
                bucket.clear()

    def __len__(self) -> int:
        """Batches in an epoch: every full batch of each size, whatever the order."""
        counts = collections.Counter(self.size_of(index) for index in self.base)
        total = sum(count // self.batch_for[size] for size, count in counts.items())
        return max(0, total - self.skip_batches)


def pixel_budget_batches(sizes: Sequence[tuple[int, int]], batch_size: int) -> dict[tuple[int, int], int]:
    """Frames per batch for each size: ``batch_size`` of the first size, and of every other size
    as many as hold about the same pixels (at least 1), so a step costs about the same."""
    width, height = sizes[0]
    return {(w, h): max(1, round(batch_size * width * height / (w * h))) for w, h in sizes}


def label_histograms(dataset: Dataset, *, num_classes: int, frames: int | None = None) -> np.ndarray:
    """Pixels per class of each of the first ``frames`` frames (all when None): an N x C array,
    the input of median-frequency weights and class-balanced sampling."""
    from hydranet_ros.train.augment import label_histogram

    count = len(dataset) if frames is None else min(frames, len(dataset))
    rows = np.zeros((count, num_classes), np.int64)
    for index in range(count):
        labels = dataset[index].get("labels")
        if labels is not None:
            rows[index] = label_histogram(np.asarray(labels), num_classes)
    return rows


class WeightedEpochSampler(Sampler[int]):
    """Class-balanced sampling: ``len(weights)`` draws with replacement per epoch, seeded by
    (seed, epoch) so a resume repeats the order; under DDP each rank takes every world-th draw."""

    def __init__(self, weights: np.ndarray, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.weights = torch.as_tensor(np.asarray(weights, np.float64))
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        draws = torch.multinomial(self.weights, len(self.weights), replacement=True, generator=generator)
        # Equal shares per rank: a rank with one batch more would wait forever in DDP's all-reduce.
        return iter(draws[: len(self) * self.world_size][self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        return len(self.weights) // self.world_size
