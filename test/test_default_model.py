"""The shipped default model: present, small, self-describing, and as good as the README says."""

import json

import numpy as np
import pytest

from hydranet_ros.model.checkpoints import load_safetensors, load_weights
from hydranet_ros.model.locate import shipped_default_path
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from support import KITTI_FRAME, read_rgb

HELD_OUT_SEED = 1000003  # never drawn from in training (seed 0)


@pytest.fixture(scope="module")
def shipped():
    path = shipped_default_path()
    assert path.is_file(), f"{path} is missing: the package ships a default model"
    return load_safetensors(path)


def test_file_is_small_fp16_and_describes_itself(shipped):
    path = shipped_default_path()
    assert path.stat().st_size <= 8 * 1024 * 1024
    assert shipped.preset.name == "kitti" and shipped.preset.class_names[2] == "road"
    assert shipped.trained_input_size == (320, 96)
    import torch

    # Weights in half precision; BN running statistics stay fp32 (tiny variances underflow in fp16).
    halves = {k for k, t in shipped.state_dict.items() if t.dtype == torch.float16}
    floats = {k for k, t in shipped.state_dict.items() if t.is_floating_point()}
    assert floats - halves == {k for k in floats if k.endswith(("running_mean", "running_var"))}


def test_default_weights_resolve_to_it_when_nothing_is_cached():
    assert load_weights("default").source == str(shipped_default_path())


def test_reaches_its_stated_metrics_on_held_out_synthetic_frames(shipped):
    """A small fixed set in CI; the README's figures are from 200 frames (the JSON beside the file)."""
    from hydranet_ros.train.evaluate import evaluate_model
    from hydranet_ros.train.synthetic import SyntheticStreets

    stated = json.loads(shipped_default_path().with_suffix(".json").read_text())
    frames = SyntheticStreets(size=(320, 96), length=24, seed=HELD_OUT_SEED)
    result = evaluate_model(shipped.build_model(), frames, preset=shipped.preset, depth_max_m=80.0)
    assert result.segm["miou"] >= 0.80
    assert result.depth["abs_rel"] <= 0.10
    # The small set agrees with the stated (200-frame) figures.
    assert abs(result.segm["miou"] - stated["segm"]["miou"]) < 0.03
    assert abs(result.depth["abs_rel"] - stated["depth"]["abs_rel"]) < 0.02


def test_runs_through_the_pipeline_at_its_training_size():
    pipe = Pipeline.create(PipelineConfig(weights="default", input_size="auto", output_size="input"))
    frame = read_rgb(KITTI_FRAME)
    result = pipe.process(frame)
    assert pipe.network_size_for(*frame.shape[1::-1]) == (320, 96)
    assert result.labels.shape == frame.shape[:2]
    # A real street: road at the bottom centre, sky or building at the top.
    h, w = result.labels.shape
    assert np.bincount(result.labels[int(h * 0.85):, w // 3: 2 * w // 3].ravel(), minlength=6).argmax() == 2
    assert np.nanmedian(result.depth_m[int(h * 0.85):]) < np.nanmedian(result.depth_m[h // 2: int(h * 0.6)])
