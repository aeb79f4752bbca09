"""Training losses against hand-computed values: masking, weighting, berHu threshold, SI-log."""

import math

import numpy as np
import pytest
import torch

from hydranet_ros.train.losses import (
    FixedWeighting,
    MultiTaskLoss,
    UncertaintyWeighting,
    berhu_loss,
    depth_l1_loss,
    make_weighting,
    normals_cosine_loss,
    segmentation_loss,
    silog_loss,
)

torch.set_num_threads(1)


def _logits(*pixels):
    """pixels: per-pixel class-score lists -> (1, C, 1, P)."""
    return torch.tensor(pixels, dtype=torch.float32).T.reshape(1, len(pixels[0]), 1, len(pixels)).requires_grad_()


def test_cross_entropy_ignores_255():
    logits = _logits([0.0, 0.0], [2.0, 0.0])
    labels = torch.tensor([[[0, 255]]])
    loss = segmentation_loss(logits, labels)
    assert loss.item() == pytest.approx(math.log(2))
    loss.backward()
    assert torch.all(logits.grad[..., 1] == 0)  # the ignored pixel gets no gradient


def test_cross_entropy_class_weights_are_a_weighted_mean():
    logits = _logits([0.0, 0.0], [math.log(3), 0.0])  # pixel 1: p = (3/4, 1/4)
    labels = torch.tensor([[[0, 1]]])
    loss = segmentation_loss(logits, labels, class_weights=torch.tensor([2.0, 1.0]))
    # (2 * ln 2 + 1 * ln 4) / (2 + 1)
    assert loss.item() == pytest.approx(4 * math.log(2) / 3, rel=1e-6)


def test_cross_entropy_all_ignored_is_zero_and_backpropagates():
    logits = _logits([0.3, -1.0], [2.0, 0.0])
    loss = segmentation_loss(logits, torch.full((1, 1, 2), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(torch.isfinite(logits.grad)) and torch.all(logits.grad == 0)


def test_cross_entropy_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match="outside"):
        segmentation_loss(_logits([0.0, 0.0]), torch.tensor([[[7]]]))


def test_l1_masks_zero_nan_and_inf_targets():
    pred = torch.tensor([[2.0, 5.0, 7.0, 9.0, 1.5]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0, float("nan"), float("inf"), 1.0]])
    loss = depth_l1_loss(pred, target)
    assert loss.item() == pytest.approx((1.0 + 0.5) / 2)
    loss.backward()
    assert pred.grad.tolist() == [[0.5, 0.0, 0.0, 0.0, 0.5]]


def test_berhu_threshold_is_a_fifth_of_the_largest_residual():
    pred = torch.tensor([[1.0, 2.0, 3.0, 10.0]], requires_grad=True)
    target = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # residuals 0, 1, 2; last pixel invalid
    c = 0.4
    expected = (0.0 + (1 + c**2) / (2 * c) + (4 + c**2) / (2 * c)) / 3
    loss = berhu_loss(pred, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # d/dr: sign(r) below c, r / c above; divided by the 3 valid pixels; c itself is not trained
    np.testing.assert_allclose(pred.grad.numpy(), [[0.0, (1 / c) / 3, (2 / c) / 3, 0.0]], rtol=1e-6)


def test_berhu_is_l1_inside_the_threshold():
    pred = torch.tensor([[1.0, 1.1, 1.5]])
    target = torch.tensor([[1.0, 1.0, 1.0]])  # residuals 0, .1, .5; c = .1
    expected = (0.0 + 0.1 + (0.25 + 0.01) / 0.2) / 3
    assert berhu_loss(pred, target).item() == pytest.approx(expected, rel=1e-5)


def test_silog_by_hand_and_per_image():
    e = math.e
    pred = torch.tensor([[[e, 1.0]], [[3.0, 4.0]]])
    target = torch.tensor([[[1.0, 1.0]], [[0.0, float("nan")]]])  # image 2 has no valid pixel
    # image 1: d = (1, 0): mean d^2 = .5, mean d = .5 -> .5 - .5 * .25
    assert silog_loss(pred, target, variance_focus=0.5).item() == pytest.approx(0.375, rel=1e-6)
    assert silog_loss(pred, target, variance_focus=0.0).item() == pytest.approx(0.5, rel=1e-6)


def test_silog_with_lambda_one_ignores_global_scale():
    target = torch.tensor([[[2.0, 5.0, 9.0]]])
    assert silog_loss(3.0 * target, target, variance_focus=1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert silog_loss(3.0 * target, target, variance_focus=0.0).item() == pytest.approx(math.log(3) ** 2, rel=1e-5)


@pytest.mark.parametrize("loss_fn", [depth_l1_loss, berhu_loss, silog_loss])
def test_depth_losses_without_valid_pixels_are_zero_and_finite(loss_fn):
    pred = torch.rand(2, 4, 4, requires_grad=True)
    target = torch.zeros(2, 4, 4)
    target[0, 0, 0] = float("nan")
    loss = loss_fn(pred, target)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(pred.grad == 0)


def test_depth_gradients_match_finite_differences():
    torch.manual_seed(0)
    pred = (torch.rand(1, 3, 3, dtype=torch.float64) * 5 + 1).requires_grad_()
    target = torch.rand(1, 3, 3, dtype=torch.float64) * 5 + 1
    target[0, 0, 0] = 0.0
    assert torch.autograd.gradcheck(lambda p: silog_loss(p, target), (pred,))
    assert torch.autograd.gradcheck(lambda p: depth_l1_loss(p, target), (pred,))


def test_normals_cosine_loss_masks_zero_targets():
    pred = torch.tensor([[1.0, 2.0, 5.0], [0.0, 0.0, 5.0], [0.0, 0.0, 5.0]]).reshape(1, 3, 1, 3)
    target = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).reshape(1, 3, 1, 3)
    # pixel 0: (1,0,0) vs (0,1,0) -> 1; pixel 1: (2,0,0) vs (1,0,0) -> 0; pixel 2: target 0 -> ignored
    assert normals_cosine_loss(pred, target).item() == pytest.approx(0.5, abs=1e-6)
    p = torch.rand(1, 3, 2, 2, requires_grad=True)
    loss = normals_cosine_loss(p, torch.zeros(1, 3, 2, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(torch.isfinite(p.grad))


def test_fixed_weighting_is_alpha_segm_plus_beta_depth():
    weighting = FixedWeighting(weights={"segm": 0.5, "depth": 2.0})
    total = weighting({"segm": torch.tensor(3.0), "depth": torch.tensor(4.0)})
    assert total.item() == pytest.approx(0.5 * 3 + 2.0 * 4)


def test_uncertainty_weighting_forms():
    weighting = UncertaintyWeighting(tasks=["segm", "depth"])
    with torch.no_grad():
        weighting.log_variance["segm"].fill_(math.log(2.0))
        weighting.log_variance["depth"].fill_(math.log(4.0))
    total = weighting({"segm": torch.tensor(3.0), "depth": torch.tensor(8.0)})
    # classification: exp(-s) L + s/2 ; regression: exp(-s) L / 2 + s/2
    expected = 3.0 / 2 + 0.5 * math.log(2) + 8.0 / 8 + 0.5 * math.log(4)
    assert total.item() == pytest.approx(expected, rel=1e-6)
    total.backward()
    # dL/ds = -exp(-s) * scale * L + 1/2
    assert weighting.log_variance["segm"].grad.item() == pytest.approx(-1.5 + 0.5, rel=1e-6)
    assert weighting.log_variance["depth"].grad.item() == pytest.approx(-1.0 + 0.5, rel=1e-6)


def test_multitask_loss_upsamples_and_uses_abs_depth():
    criterion = MultiTaskLoss(tasks=["segm", "depth"], weighting=make_weighting(kind="fixed", tasks=["segm", "depth"]),
                              depth_kind="l1")
    outputs = {"segm": torch.zeros(1, 3, 2, 2, requires_grad=True),
               "depth": torch.full((1, 1, 2, 2), -4.0, requires_grad=True)}
    batch = {"labels": torch.zeros(1, 8, 8, dtype=torch.long), "depth_m": torch.full((1, 8, 8), 3.0)}
    total, parts = criterion(outputs, batch)
    assert parts["segm"].item() == pytest.approx(math.log(3), rel=1e-6)
    assert parts["depth"].item() == pytest.approx(1.0, rel=1e-6)  # |-4| - 3
    assert total.item() == pytest.approx(math.log(3) + 1.0, rel=1e-6)
    total.backward()
    assert outputs["depth"].grad is not None and torch.all(torch.isfinite(outputs["depth"].grad))
