"""The baseline every speed-up is measured against: the authors' way of running HydraNet.

The published architecture run eagerly in fp32 from its state dict (the functional reference in
hydranet_ros/model/reference.py: no BN folding, planar layout), with notebook-style host work
around it: numpy normalise, upload, forward, download, cv2 cubic resize of the logits and depth
to the frame size, argmax and abs in numpy. bench_pipeline (CPU) and bench_gpu use this one copy.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from hydranet_ros.model.checkpoints import ours_to_published
from hydranet_ros.model.reference import reference_forward


class NotebookBaseline:
    """The authors' way: host pre/post-processing around an eager fp32 forward."""

    def __init__(self, model, preset, device: torch.device) -> None:
        self.state = {ours_to_published(k): v.to(device) for k, v in model.state_dict().items()}
        self.mean, self.std, self.device = np.array(preset.mean), np.array(preset.std), device

    def __call__(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = frame_rgb.shape[:2]
        x = (frame_rgb / 255.0 - self.mean) / self.std
        image = torch.tensor(x.transpose(2, 0, 1)[None], dtype=torch.float32).to(self.device)
        with torch.no_grad():
            out = reference_forward(self.state, image)
        segm = out["segm"][0].cpu().numpy().transpose(1, 2, 0)
        depth = out["depth"][0, 0].cpu().numpy()
        segm = cv2.resize(segm, (width, height), interpolation=cv2.INTER_CUBIC)
        depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_CUBIC)
        return segm.argmax(axis=2).astype(np.uint8), np.abs(depth)
