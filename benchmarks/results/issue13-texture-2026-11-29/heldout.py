"""Held-out synthetic figures of several weights files on the same frames, through the pipeline.

    python benchmarks/results/issue13-texture-2026-11-29/heldout.py W1 [W2 ...]

64 frames at 384x128 (the trained size), KITTI-like camera, seed 1000003 (never drawn from in
training), depth capped at 80 m: what tools/ship_default_model.py measures on 200 frames, small
enough to compare candidates. The generator changed in this run (hedges, garden trees, grey
sidewalks), so figures from before it are not comparable: compare weights here, side by side.
"""
import sys
from pathlib import Path

import torch

from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from hydranet_ros.train.evaluate import evaluate_pipeline
from hydranet_ros.train.synthetic import SyntheticStreets

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
from ship_default_model import DEPTH_MAX_M, HELD_OUT_SEED  # noqa: E402  the shipped figures' frames and cap

torch.set_num_threads(2)
for weights in sys.argv[1:]:
    pipe = Pipeline.create(PipelineConfig(weights=weights, backend="torch", device="cpu", input_size=(384, 128), output_size="input"))
    result = evaluate_pipeline(pipe, SyntheticStreets(size=(384, 128), length=64, seed=HELD_OUT_SEED), depth_max_m=DEPTH_MAX_M)
    print(f"{weights}: mIoU {result.segm['miou']:.3f}  abs rel {result.depth['abs_rel']:.3f}")
