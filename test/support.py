"""Shared helpers for the tests: sample data, published-format checkpoints made on the spot."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from hydranet_ros.model.checkpoints import ours_to_published
from hydranet_ros.model.hydranet import HydraNet

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; from a git worktree further down, the nearest one above.
SHARED_DATA = next((p / "shared" / "data" for p in REPO.parents if (p / "shared" / "data").is_dir()), REPO.parent / "shared" / "data")
KITTI_FRAME = SHARED_DATA / "kitti" / "000099.png"
NYU_FRAME = SHARED_DATA / "nyud" / "000464.png"


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return np.ascontiguousarray(image[..., ::-1])


def published_state(model: HydraNet, *, batch_counters: bool = True) -> dict[str, torch.Tensor]:
    """The model's weights under the authors' key names, as their checkpoints hold them."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and not batch_counters:
            continue
        state[ours_to_published(key)] = value.clone()
    return state


def save_published(path: Path, model: HydraNet, *, batch_counters: bool = True) -> Path:
    torch.save({"state_dict": published_state(model, batch_counters=batch_counters), "epoch": 100}, path)
    return path


def normalised(frame_rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """The authors' preprocessing in numpy: /255, ImageNet mean/std, NCHW float32."""
    x = cv2.resize(frame_rgb, size, interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1)[None].copy())
