"""The shipped default model: present, small, self-describing, and as good as the README says."""

import json

import numpy as np
import pytest

from hydranet_ros.model.checkpoints import load_safetensors, load_weights
from hydranet_ros.model.locate import shipped_default_path
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from support import KITTI_FRAME, REPO, read_rgb

HELD_OUT_SEED = 1000003  # never drawn from in training (seeds 0, 13 and 29)
TRAINED_SIZE = (384, 128)


@pytest.fixture(scope="module")
def shipped():
    path = shipped_default_path()
    assert path.is_file(), f"{path} is missing: the package ships a default model"
    return load_safetensors(path)


def test_file_is_small_fp16_and_describes_itself(shipped):
    path = shipped_default_path()
    assert path.stat().st_size <= 8 * 1024 * 1024
    assert shipped.preset.name == "kitti" and shipped.preset.class_names[2] == "road"
    assert shipped.trained_input_size == TRAINED_SIZE
    # the camera its metric depth was learned for (runtime/focal.py)
    assert float(shipped.metadata["focal_px"]) == pytest.approx(721.5377 * TRAINED_SIZE[0] / 1242, rel=1e-5)
    import torch

    # Weights in half precision; BN running statistics stay fp32 (tiny variances underflow in fp16).
    halves = {k for k, t in shipped.state_dict.items() if t.dtype == torch.float16}
    floats = {k for k, t in shipped.state_dict.items() if t.is_floating_point()}
    assert floats - halves == {k for k in floats if k.endswith(("running_mean", "running_var"))}


def test_default_weights_resolve_to_it_when_nothing_is_cached():
    assert load_weights("default").source == str(shipped_default_path())


def test_reaches_its_stated_metrics_on_held_out_synthetic_frames():
    """A small fixed set in CI, through the pipeline that ships; the README's figures are from 200
    frames (the JSON beside the file)."""
    from hydranet_ros.train.evaluate import evaluate_pipeline
    from hydranet_ros.train.synthetic import SyntheticStreets

    stated = json.loads(shipped_default_path().with_suffix(".json").read_text())
    pipe = Pipeline.create(PipelineConfig(weights="default", device="cpu", input_size="auto", output_size="input"))
    frames = SyntheticStreets(size=TRAINED_SIZE, length=24, seed=HELD_OUT_SEED)
    result = evaluate_pipeline(pipe, frames, depth_max_m=80.0)
    assert result.segm["miou"] >= 0.90
    # Issue 13 asks for abs rel <= 0.10; this model has 0.129 on 200 frames (README): a guard
    # against getting worse, not the target.
    assert result.depth["abs_rel"] <= 0.15
    # The small set agrees with the stated (200-frame) figures.
    assert abs(result.segm["miou"] - stated["segm"]["miou"]) < 0.03
    assert abs(result.depth["abs_rel"] - stated["depth"]["abs_rel"]) < 0.03


def test_depth_follows_the_cameras_focal_length():
    """Held-out streets seen by cameras of 150 to 707 px focal length at the network input (the
    sizes users launch put a KITTI camera at 185, 370 and 707 px), each frame's focal length given
    as CameraInfo gives it. Up to 370 px the error stays near the training camera's; at 707 px
    it is nearly twice as large (abs rel 0.21 on 50 frames, README; 0.20 on these 8, against 0.11
    at 223 px), a limit of this model, not of the correction (test_focal checks the correction
    with an ideal network)."""
    from hydranet_ros.train.evaluate import evaluate_pipeline
    from hydranet_ros.train.synthetic import CameraVariation, SyntheticStreets

    pipe = Pipeline.create(PipelineConfig(weights="default", device="cpu", input_size="auto", output_size="input"))
    errors = {}
    for focal in (150.0, 223.0824, 370.0, 707.0):
        cameras = CameraVariation(focal_px=(focal, focal), height_m=(1.65, 1.65), pitch_deg=0.0)
        frames = SyntheticStreets(size=TRAINED_SIZE, length=8, seed=HELD_OUT_SEED, cameras=cameras)
        errors[focal] = evaluate_pipeline(pipe, frames, tasks=("depth",), depth_max_m=80.0).depth["abs_rel"]
    assert max(errors[150.0], errors[370.0]) <= 1.6 * errors[223.0824] + 0.03, errors
    assert errors[707.0] <= 0.35, errors  # a guard against worse, not a target


@pytest.fixture(scope="module")
def real_frame_figures():
    """tools/real_frame_check.py on the real KITTI frame at the sizes users launch, as `hydranet
    infer --size SIZE --output-size input` runs them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("real_frame_check", REPO / "tools" / "real_frame_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    out = REPO / "benchmarks" / "results" / ".real_frame_test.json"
    try:
        check.main(["--frame", str(KITTI_FRAME), "--json", str(out)])
        return {row["size"]: row for row in json.loads(out.read_text())["sizes"]}
    finally:
        out.unlink(missing_ok=True)


STATED_REAL_FRAME = REPO / "benchmarks" / "results" / "real_frame_2026-11-29c.json"


@pytest.mark.skipif(not KITTI_FRAME.is_file(), reason="needs ../shared/data")
def test_real_kitti_frame_figures_are_as_stated(real_frame_figures):
    """The README's real-frame table (from that JSON) is what the shipped model does."""
    stated = {row["size"]: row for row in json.loads(STATED_REAL_FRAME.read_text())["sizes"]}
    assert set(real_frame_figures) == set(stated) == {"320x96", "640x192", "1226x370", "640x480"}
    for size, row in stated.items():
        for key in ("miou", "road_iou", "road_depth_median_rel_error"):
            assert real_frame_figures[size][key] == pytest.approx(row[key], abs=0.01), (size, key)


@pytest.mark.skipif(not KITTI_FRAME.is_file(), reason="needs ../shared/data")
def test_real_frame_check_judges_the_mirror_image_too(tmp_path):
    """--mirror: each size on the frame and on its mirror image (ground truth mirrored with it),
    and the means over all views; the frame's rows are unchanged by it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("real_frame_check", REPO / "tools" / "real_frame_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    out = tmp_path / "mirror.json"
    check.main(["--frame", str(KITTI_FRAME), "--sizes", "320x96", "--mirror", "--json", str(out)])
    report = json.loads(out.read_text())
    frame_row, mirror_row = report["sizes"]
    assert (frame_row["view"], mirror_row["view"]) == ("frame", "mirror")
    stated = {row["size"]: row for row in json.loads(STATED_REAL_FRAME.read_text())["sizes"]}["320x96"]
    assert frame_row["miou"] == pytest.approx(stated["miou"], abs=0.01)
    # A different view, not a copy of the first (the network sees other pixels everywhere), and
    # scored against mirrored ground truth: with the labels left unmirrored the mIoU collapses,
    # while the two views of a model differ by 0.01-0.04 (issue13-sweep results).
    assert mirror_row["miou"] != frame_row["miou"] and abs(mirror_row["miou"] - frame_row["miou"]) < 0.06
    assert report["means"]["road_iou"] == pytest.approx((frame_row["road_iou"] + mirror_row["road_iou"]) / 2)
    assert report["views_meeting_all_targets"] == frame_row["ok"] + mirror_row["ok"]
    # The road's two edges swap sides, the row where they meet stays (within a pixel).
    _, labels, horizon, _ = check.judged_frame(KITTI_FRAME)
    assert check.road_horizon_row(labels[:, ::-1]) == pytest.approx(horizon, abs=1.0)


@pytest.mark.skipif(not KITTI_FRAME.is_file(), reason="needs ../shared/data")
def test_real_kitti_frame_meets_the_issue_13_targets_at_every_size(real_frame_figures):
    """mIoU >= 0.50, road IoU >= 0.60, road depth within 15 % (median) of flat ground at every size."""
    assert all(row["ok"] for row in real_frame_figures.values()), real_frame_figures


def test_runs_through_the_pipeline_at_its_training_size():
    pipe = Pipeline.create(PipelineConfig(weights="default", input_size="auto", output_size="input"))
    frame = read_rgb(KITTI_FRAME)
    result = pipe.process(frame)
    assert pipe.network_size_for(*frame.shape[1::-1]) == (384, 128)  # 1226x370 fitted inside 384x128: 384x116
    assert result.labels.shape == frame.shape[:2]
    # A real street: road at the bottom centre, sky or building at the top.
    h, w = result.labels.shape
    assert np.bincount(result.labels[int(h * 0.85):, w // 3: 2 * w // 3].ravel(), minlength=6).argmax() == 2
    assert np.nanmedian(result.depth_m[int(h * 0.85):]) < np.nanmedian(result.depth_m[h // 2: int(h * 0.6)])


@pytest.mark.skipif(not KITTI_FRAME.is_file(), reason="needs ../shared/data")
def test_domain_gap_check_scores_what_real_frame_check_scores(tmp_path):
    """tools/domain_gap_check.py (issue 13's diagnosis): its unblurred full-resolution row is the
    real-frame figure the README states, and it scores synthetic frames at every size."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("domain_gap_check", REPO / "tools" / "domain_gap_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    out = tmp_path / "gap.json"
    assert check.main(["--frames", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [row["size"] for row in report["synthetic"]] == ["320x96", "640x192", "1226x370"]
    assert all(0.0 <= row["miou"] <= 1.0 for row in report["synthetic"])
    assert [row["blur_sigma_px"] for row in report["real_blurred"]] == [0.0, 1.0, 2.0, 3.0]
    stated = {row["size"]: row for row in json.loads(STATED_REAL_FRAME.read_text())["sizes"]}["1226x370"]
    for key in ("miou", "road_iou", "road_depth_median_rel_error"):
        assert report["real_blurred"][0][key] == pytest.approx(stated[key], abs=0.01), key
