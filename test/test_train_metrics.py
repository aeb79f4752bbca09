"""Metrics against hand-computed confusion matrices and depth errors, accumulated over batches."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hydranet_ros.train.metrics import DepthMetrics, NormalsMetrics, SegmentationMetrics


def test_confusion_matrix_by_hand():
    metrics = SegmentationMetrics(num_classes=4)
    target = np.array([0, 0, 1, 1, 2, 255])
    pred = np.array([0, 1, 1, 1, 0, 2])
    metrics.update(pred, target)
    expected = np.zeros((4, 4), np.int64)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[2, 0] = 1, 1, 2, 1
    np.testing.assert_array_equal(metrics.confusion, expected)
    result = metrics.compute()
    # IoU0 = 1/(2+2-1), IoU1 = 2/(2+3-2), IoU2 = 0/1, class 3 absent from GT and prediction
    assert result["iou_per_class"][0] == pytest.approx(1 / 3)
    assert result["iou_per_class"][1] == pytest.approx(2 / 3)
    assert result["iou_per_class"][2] == 0.0
    assert result["iou_per_class"][3] is None
    assert result["miou"] == pytest.approx(1 / 3)  # mean over the three defined classes
    assert result["classes_evaluated"] == 3
    assert result["pixel_accuracy"] == pytest.approx(3 / 5)


def test_class_only_in_prediction_counts_with_iou_zero():
    metrics = SegmentationMetrics(num_classes=3)
    metrics.update(torch.tensor([[0, 2]]), torch.tensor([[0, 0]]))
    result = metrics.compute()
    assert result["iou_per_class"] == [0.5, None, 0.0]
    assert result["miou"] == pytest.approx(0.25)


def test_segmentation_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="outside"):
        SegmentationMetrics(num_classes=2).update(np.array([0, 5]), np.array([0, 1]))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_streaming_confusion_equals_all_at_once(data):
    n = data.draw(st.integers(1, 5))
    size = data.draw(st.integers(1, 40))
    target = np.array(data.draw(st.lists(st.sampled_from(list(range(n)) + [255]), min_size=size, max_size=size)))
    pred = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=size, max_size=size)))
    cut = data.draw(st.integers(0, size))
    whole, parts = SegmentationMetrics(num_classes=n), SegmentationMetrics(num_classes=n)
    whole.update(pred, target)
    parts.update(pred[:cut], target[:cut])
    parts.update(pred[cut:], target[cut:])
    np.testing.assert_array_equal(whole.confusion, parts.confusion)
    assert whole.confusion.sum() == (target != 255).sum()


def test_depth_metrics_by_hand():
    metrics = DepthMetrics()
    metrics.update(np.array([2.0, 1.0, 4.0, 3.0]), np.array([1.0, 1.0, 0.0, np.nan]))  # last two invalid
    r = metrics.compute()
    assert r["pixels"] == 2
    assert r["rmse"] == pytest.approx(math.sqrt(0.5))
    assert r["abs_rel"] == pytest.approx(0.5)
    assert r["sq_rel"] == pytest.approx(0.5)
    assert r["rmse_log"] == pytest.approx(math.sqrt(math.log(2) ** 2 / 2))
    # ratios 2 and 1: only the second is within 1.25, 1.5625 and 1.953
    assert (r["delta1"], r["delta2"], r["delta3"]) == (0.5, 0.5, 0.5)


def test_depth_metrics_sum_over_batches_not_average_means():
    metrics = DepthMetrics()
    metrics.update(np.array([2.0]), np.array([1.0]))  # batch 1: one pixel, error 1
    metrics.update(np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0]))  # batch 2: three exact pixels
    r = metrics.compute()
    assert r["abs_rel"] == pytest.approx(1 / 4)  # a mean of batch means would say 0.5
    assert r["rmse"] == pytest.approx(math.sqrt(1 / 4))
    assert r["delta1"] == pytest.approx(3 / 4)


def test_depth_metrics_cap_and_empty():
    metrics = DepthMetrics(max_depth_m=80.0)
    metrics.update(np.array([10.0, 50.0]), np.array([100.0, 50.0]))
    assert metrics.compute()["pixels"] == 1 and metrics.compute()["rmse"] == 0.0
    empty = DepthMetrics().compute()
    assert empty["pixels"] == 0 and math.isnan(empty["rmse"])


def test_depth_histogram_counts_every_valid_pixel():
    metrics = DepthMetrics()
    metrics.update(np.array([1.0, 10.0, 0.5]), np.array([1.0, 1.0, 1.0]))  # rel errors 0, +9, -0.5
    assert metrics.histogram.sum() == 3
    assert metrics.histogram[-1] == 1 and metrics.histogram[0] == 1


def test_normals_metrics_by_hand():
    metrics = NormalsMetrics()
    pred = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    target = np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)  # 0 deg and 90 deg
    metrics.update(pred, target)
    metrics.update(pred, np.zeros_like(target))  # no valid target: nothing added
    r = metrics.compute()
    assert r["pixels"] == 2
    assert r["mean_deg"] == pytest.approx(45.0)
    assert r["within_11_25"] == 0.5 and r["within_30"] == 0.5
