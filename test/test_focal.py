"""Camera-aware metric depth (runtime/focal.py): the training camera the weights carry, the
correction f_net / f_train, the CLI's --focal / --camera-info, and synthetic scenes rendered at
several focal lengths whose depth error does not grow with the focal-length ratio."""

import argparse

import numpy as np
import pytest
import torch

from hydranet_ros.commands.common import camera_focal_from_args
from hydranet_ros.errors import UsageError
from hydranet_ros.presets import get_preset
from hydranet_ros.runtime.engines.base import Engine
from hydranet_ros.runtime.focal import (
    PUBLISHED_CAMERAS, TrainingCamera, assumption_note, depth_scale, training_camera,
)
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from hydranet_ros.train.synthetic import render_scene
from hydranet_ros.train.street_raycast import PinholeCamera

CALIBRATION_YAML = """\
image_width: 1280
image_height: 720
camera_name: front
camera_matrix:
  rows: 3
  cols: 3
  data: [900.0, 0.0, 640.0, 0.0, 910.0, 360.0, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.0, 0.0, 0.0, 0.0, 0.0]
"""


def test_training_camera_from_metadata_published_presets_and_older_files():
    ours = training_camera({"focal_px": "223.0824", "input_size": "384x128"}, "kitti")
    assert ours == TrainingCamera(223.0824, 384, "weights metadata")
    assert training_camera({}, "kitti") == PUBLISHED_CAMERAS["kitti"]  # the authors' KITTI weights: full resolution
    assert training_camera({}, "nyud").focal_px == pytest.approx(518.8579)
    # our files from before focal lengths were recorded: the KITTI-like camera at their training width
    older = training_camera({"input_size": "320x96"}, "kitti")
    assert older.width_px == 320 and older.focal_px == pytest.approx(721.5377 * 320 / 1242)
    assert training_camera({}, "nyud_kitti") is None  # two cameras learned: no correction


def test_depth_scale_is_the_focal_ratio_at_the_network_input():
    train = TrainingCamera(200.0, 400)
    # a camera with focal 800 px, frame scaled by 0.5 into the network: 400 px there, twice the training's
    s = depth_scale(train, frame_width=1600, scale=0.5, focal_frame_px=800.0)
    assert (s.factor, s.focal_network_px, s.source) == (pytest.approx(2.0), pytest.approx(400.0), "camera")
    # no focal length: the training camera's field of view, so only the network width matters
    s = depth_scale(train, frame_width=1600, scale=0.25, focal_frame_px=None)
    assert s.source == "assumed" and s.factor == pytest.approx(1.0)  # 1600 * 0.25 = 400 px wide, as trained
    assert depth_scale(None, frame_width=640, scale=1.0, focal_frame_px=500.0).factor == 1.0
    with pytest.raises(ValueError, match="> 0"):
        depth_scale(train, frame_width=640, scale=1.0, focal_frame_px=0.0)
    assert "field of view" in assumption_note(train) and "record no" in assumption_note(None)


def test_camera_calibration_yaml_and_cli_options(tmp_path):
    path = tmp_path / "front.yaml"
    path.write_text(CALIBRATION_YAML)
    focal = camera_focal_from_args(argparse.Namespace(focal=None, camera_info=str(path)))
    assert focal.focal_px == pytest.approx(np.sqrt(900.0 * 910.0)) and focal.width_px == 1280  # no P: K's
    assert focal.for_width(640) == pytest.approx(focal.focal_px / 2)  # frames resized from the calibrated size
    # A rectified camera's P is what the point cloud projects with (image_geometry's rule): depth
    # takes its focal length from P too, so that the two agree; K is the raw lens's.
    path.write_text(CALIBRATION_YAML + "projection_matrix:\n  rows: 3\n  cols: 4\n"
                    "  data: [850.0, 0.0, 630.0, 0.0, 0.0, 860.0, 355.0, 0.0, 0.0, 0.0, 1.0, 0.0]\n")
    assert camera_focal_from_args(argparse.Namespace(focal=None, camera_info=str(path))).focal_px == pytest.approx(np.sqrt(850.0 * 860.0))
    head = "image_width: 640\nimage_height: 480\n"
    for text, reason in (("[1, 2]", "mapping"), (head + "camera_matrix: {rows: 3, cols: 3, data: [1, 2]}", "9 values"),
                         (head + "camera_matrix: {rows: 3, cols: 3, data: [0, 0, 0, 0, 0, 0, 0, 0, 1]}", "not calibrated"),
                         (": : :", "YAML"), ("camera_matrix: {rows: 3, cols: 3, data: [1, 0, 1, 0, 1, 1, 0, 0, 1]}", "image_width"),
                         # review: .inf made every depth NaN, 1e-300 underflowed to a focal of 0
                         (head + "camera_matrix: {rows: 3, cols: 3, data: [.inf, 0, 1, 0, .inf, 1, 0, 0, 1]}", "not finite"),
                         (head + "camera_matrix: {rows: 3, cols: 3, data: [1.0e-300, 0, 1, 0, 1.0e-300, 1, 0, 0, 1]}", "no usable focal")):
        path.write_text(text)
        with pytest.raises(UsageError, match=reason) as error:
            camera_focal_from_args(argparse.Namespace(focal=None, camera_info=str(path)))
        assert str(path) in str(error.value)  # the one line names the file
    assert camera_focal_from_args(argparse.Namespace(focal=700.0, camera_info=None)).for_width(99) == 700.0
    assert camera_focal_from_args(argparse.Namespace(focal=None, camera_info=None)) is None
    with pytest.raises(UsageError, match="missing.yaml"):
        camera_focal_from_args(argparse.Namespace(focal=None, camera_info=str(tmp_path / "missing.yaml")))
    for bad in (-3.0, 0.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="--focal"):
            camera_focal_from_args(argparse.Namespace(focal=bad, camera_info=None))


class IdealNetwork(Engine):
    """What a network that learned metric depth with the training camera answers: the true depth
    of what it sees, misjudged by f_train / f_net because it judges distance by apparent size.
    The test hands it the scene's true depth, sampled at its output cells."""

    name = "ideal"

    def __init__(self, perceived: torch.Tensor) -> None:
        super().__init__(device=torch.device("cpu"), precision="fp32", channels_last=False)
        self.perceived = perceived

    @classmethod
    def build(cls, model, **kwargs):
        raise NotImplementedError

    def __call__(self, image):
        assert tuple(image.shape[-2:]) == tuple(4 * s for s in self.perceived.shape[-2:])
        segm = torch.zeros((1, 6) + tuple(self.perceived.shape[-2:]))
        return {"segm": segm, "depth": self.perceived}


@pytest.mark.parametrize("request_size", [(320, 96), (640, 480)])
def test_depth_error_does_not_grow_with_the_focal_length_ratio(request_size):
    """Synthetic streets rendered by cameras of 0.5x to 4x the training focal length: after the
    correction every camera's depth is right; without it the error grows with the ratio."""
    train = TrainingCamera(185.9, 320)
    errors, uncorrected = [], []
    for ratio in (0.5, 1.0, 2.0, 4.0):
        width, height = 960, 288
        focal = train.focal_at_width(width) * ratio  # this camera's focal length at the frame's width
        camera = PinholeCamera(width=width, height=height, fx=focal, fy=focal, cx=width / 2 - 0.5, cy=height / 2 - 0.5)
        scene = render_scene(np.random.default_rng(5), size=(width, height), camera=camera)
        pipe = Pipeline(engine=IdealNetwork(torch.zeros(1)), preset=get_preset("kitti"),
                        config=PipelineConfig(input_size=request_size, output_size="input"),
                        weights_source="ideal", weights_sha256="", training_camera=train)
        g = pipe.geometry_for(width, height)
        (sx, sy), (ox, oy) = g.scale, g.offset
        # each output cell's centre in frame pixels, from first principles: network u = 4 j + 1.5
        cols = np.clip(np.round((4 * np.arange(g.network_size[0] // 4) + 1.5 - ox + 0.5) / sx - 0.5), 0, width - 1).astype(int)
        rows = np.clip(np.round((4 * np.arange(g.network_size[1] // 4) + 1.5 - oy + 0.5) / sy - 0.5), 0, height - 1).astype(int)
        truth_at_cells = scene["depth_m"][rows[:, None], cols[None, :]]
        f_net = focal * g.mean_scale
        pipe.engine.perceived = torch.from_numpy(truth_at_cells * np.float32(train.focal_px / f_net))[None, None]
        result = pipe.process(scene["image"], focal_px=focal)
        valid = (scene["depth_m"] > 0) & (scene["depth_m"] < 80)
        # compare away from depth edges, where upsampling a 4x coarser map blends near and far
        smooth = valid & (np.abs(np.gradient(scene["depth_m"], axis=0)) < 0.02 * scene["depth_m"])
        rel = np.abs(result.depth_m[smooth] - scene["depth_m"][smooth]) / scene["depth_m"][smooth]
        errors.append(float(np.median(rel)))
        assert result.depth_scale.source == "camera" and result.depth_scale.factor == pytest.approx(f_net / train.focal_px)
        raw = pipe.process(scene["image"], focal_px=train.focal_at_width(width)).depth_m  # pretending it is the training camera
        uncorrected.append(float(np.median(np.abs(raw[smooth] - scene["depth_m"][smooth]) / scene["depth_m"][smooth])))
    assert max(errors) < 0.05, errors
    assert max(errors) <= 1.5 * min(errors) + 0.01, errors  # no growth with the ratio
    assert uncorrected[-1] > 0.5 and uncorrected[0] > 0.4, uncorrected  # the correction is what fixes it
