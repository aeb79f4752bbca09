"""`hydranet eval` measures what `hydranet infer` ships: on the real KITTI frame, at the same size,
the mIoU of infer's written labels equals eval's."""

import json

import cv2
import numpy as np
import pytest

from hydranet_ros.cli import main
from hydranet_ros.presets import palettes
from hydranet_ros.train.datasets import read_colour_labels
from hydranet_ros.train.metrics import SegmentationMetrics
from support import KITTI_FRAME

pytestmark = pytest.mark.skipif(not KITTI_FRAME.is_file(), reason="needs ../shared/data")


@pytest.mark.parametrize("size", ["320x96", "640x480"])
def test_eval_and_infer_agree_on_the_kitti_frame(tmp_path, size):
    # the shipped default model, as a user runs both commands
    assert main(["infer", str(KITTI_FRAME), "-o", str(tmp_path / "infer"), "--size", size, "--output-size", "input"]) == 0
    labels = cv2.imread(str(tmp_path / "infer" / "000099_labels.png"), cv2.IMREAD_UNCHANGED)
    truth = read_colour_labels(KITTI_FRAME.with_name("000099_segm_gt.png"), palettes.KITTI6)
    metrics = SegmentationMetrics(num_classes=6)
    metrics.update(labels, truth)
    from_infer = metrics.compute()["miou"]

    assert main(["eval", "--data", "kitti", "--data-arg", f"root={KITTI_FRAME.parent}", "--data-arg", "layout=examples",
                 "--size", size, "--out-dir", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["frames"] == 1 and report["size"] == size
    assert report["segmentation"]["miou"] == pytest.approx(from_infer, abs=1e-9)
    assert np.isfinite(from_infer)
