"""Where a model's held-out depth error is: abs rel by ground-truth class and by distance, and the
floor the 1/4-resolution output alone costs.

    python benchmarks/results/issue13-sweep-2026-11-29/depth_error.py [WEIGHTS ...]   (default: the shipped file)

64 held-out frames at 384x128 (seed 1000003, the KITTI-like camera), depth capped at 80 m, as
heldout.py in ../issue13-texture-2026-11-29 measures them. The floor: the ground truth sampled at
every 4th pixel (sky as 200 m) and upsampled bilinearly to 384x128, scored the same way.
"""
import sys

import cv2
import numpy as np
import torch

from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from hydranet_ros.train.synthetic import SyntheticStreets

SIZE, FRAMES, SEED, CAP_M = (384, 128), 64, 1000003, 80.0
DISTANCES_M = (0, 5, 10, 20, 40, 80)
torch.set_num_threads(2)
for weights in sys.argv[1:] or ["default"]:
    pipe = Pipeline.create(PipelineConfig(weights=weights, backend="torch", device="cpu", input_size=SIZE, output_size="input"))
    names = pipe.preset.class_names
    errors, floors, classes, truths = [], [], [], []
    for frame in SyntheticStreets(size=SIZE, length=FRAMES, seed=SEED):
        truth = frame["depth_m"].astype(np.float32)
        valid = np.isfinite(truth) & (truth > 0) & (truth <= CAP_M)
        predicted = pipe.process(frame["image"]).depth_m
        coarse = np.where(np.isfinite(truth), truth, 200.0).astype(np.float32)[1::4, 1::4]
        floor = cv2.resize(coarse, SIZE, interpolation=cv2.INTER_LINEAR)
        errors.append(np.abs(predicted[valid] - truth[valid]) / truth[valid])
        floors.append(np.abs(floor[valid] - truth[valid]) / truth[valid])
        classes.append(frame["labels"][valid])
        truths.append(truth[valid])
    errors, floors, classes, truths = map(np.concatenate, (errors, floors, classes, truths))
    print(f"{weights}: abs rel {errors.mean():.3f} (floor {floors.mean():.3f}) over {errors.size} pixels of {FRAMES} frames")
    for index, name in enumerate(names):
        m = classes == index
        if m.any():
            print(f"  {name:>10}: {m.mean() * 100:5.1f} % of pixels, abs rel {errors[m].mean():.3f} (floor {floors[m].mean():.3f}), "
                  f"{errors[m].sum() / errors.sum() * 100:5.1f} % of the error")
    for near, far in zip(DISTANCES_M, DISTANCES_M[1:]):
        m = (truths > near) & (truths <= far)
        print(f"  {near:>3}-{far:<3} m: {m.mean() * 100:5.1f} % of pixels, abs rel {errors[m].mean():.3f} (floor {floors[m].mean():.3f}), "
              f"{errors[m].sum() / errors.sum() * 100:5.1f} % of the error")
