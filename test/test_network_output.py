"""The host (numpy + OpenCV) post-processing the pipeline runs on CPU equals the torch arithmetic
that evaluation runs and the pipeline runs on CUDA: same labels, same metres, same normals, with
and without padding to cut off, at the sizes users launch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from support import KITTI_FRAME, read_rgb
from hydranet_ros.runtime.geometry import plan_input
from hydranet_ros.runtime.network_output import (
    class_scores, depth_in_metres, depth_in_metres_host, labels_and_confidence, labels_and_confidence_host,
    labels_from_logits, labels_from_logits_host, unit_normals, unit_normals_host,
)

# (frame size, requested network size, output size: 'network' = the scaled frame, 'input' = the frame)
CASES = [
    ((640, 480), (640, 480), "network"),  # no padding
    ((1226, 370), (1226, 370), "network"),  # padded to 1248x384 and cut back
    ((1226, 370), (640, 480), "input"),  # KITTI at 640x480: 640x193 in 640x224, resized to the frame
    ((640, 480), (320, 96), "input"),  # 4:3 in a wide request: 128x96, upscaled to the frame
    ((500, 370), (1226, 370), "network"),  # padding on both axes
]


def smooth(rng, channels, height, width, scale=3.0):
    """Logit-like maps: smooth fields, so that class boundaries cross between pixels as in a real
    network's output (white noise would make near-ties everywhere)."""
    coarse = torch.from_numpy(rng.normal(0, scale, (1, channels, max(2, height // 6), max(2, width // 6))).astype(np.float32))
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)


@pytest.mark.parametrize("frame_size, wanted, output", CASES)
def test_host_post_processing_equals_torch(frame_size, wanted, output):
    rng = np.random.default_rng(sum(frame_size) + sum(wanted))
    geometry = plan_input(frame_size, wanted)
    net_w, net_h = geometry.network_size
    size = (frame_size[1], frame_size[0]) if output == "input" else (geometry.scaled_size[1], geometry.scaled_size[0])
    segm = smooth(rng, 6, net_h // 4, net_w // 4)
    depth = smooth(rng, 1, net_h // 4, net_w // 4, scale=20.0)
    mid_y, mid_x = net_h // 8, net_w // 8  # inside the frame's area, never in the padding cut off
    depth[0, 0, mid_y, mid_x:mid_x + 3] = torch.tensor([float("inf"), float("-inf"), float("nan")])
    normals = smooth(rng, 3, net_h // 4, net_w // 4)

    want = labels_from_logits(segm, size, geometry)[0].numpy()
    # Planar (ONNX Runtime, OpenVINO) and channels-last (torch) engine outputs alike.
    for layout in (segm, segm.contiguous(memory_format=torch.channels_last)):
        got = labels_from_logits_host(layout[0].numpy(), size, geometry)
        assert got.shape == size and got.dtype == np.uint8
        # Float rounding may only flip a pixel where two classes' scores are within ~1e-6.
        assert (got == want).mean() > 0.9999, (got != want).sum()
        # With the confidence (semantic/confidence, min_confidence): the same labels, and the same
        # top-class softmax probability as the torch definition.
        got_ids, got_conf = labels_and_confidence_host(layout[0].numpy(), size, geometry)
        want_ids, want_conf = labels_and_confidence(class_scores(segm, size, geometry))
        assert (got_ids == want_ids[0].numpy()).mean() > 0.9999
        assert got_conf.dtype == np.float32 and got_conf.shape == size
        assert got_conf.min() >= 1 / 6 - 1e-6 and got_conf.max() <= 1 + 1e-6
        np.testing.assert_allclose(got_conf, want_conf[0].numpy(), atol=1e-4)
        only, conf = labels_and_confidence_host(layout[0].numpy(), size, geometry, labels=False)
        assert only is None and np.array_equal(conf, got_conf)

    want_depth = depth_in_metres(depth, size, geometry, 1.3)[0].numpy()
    got_depth = depth_in_metres_host(depth[0].numpy(), size, geometry, 1.3)
    assert got_depth.dtype == np.float32 and got_depth.shape == size
    np.testing.assert_array_equal(np.isnan(got_depth), np.isnan(want_depth))
    assert np.isnan(got_depth).any()  # the inf, -inf and NaN pixels were marked, not left as inf
    # OpenCV places samples in double precision, torch in float: positions differ by ~1e-7 of the
    # width, values by that times the slope: float rounding, ~1e-5 of the depth range at most.
    scale = float(np.nanmax(np.abs(want_depth)))
    np.testing.assert_allclose(got_depth, want_depth, rtol=1e-5, atol=2e-5 * scale, equal_nan=True)

    want_normals = unit_normals(normals, size, geometry)[0].permute(1, 2, 0).numpy()
    got_normals = unit_normals_host(normals[0].numpy(), size, geometry)
    assert got_normals.shape == (*size, 3)
    np.testing.assert_allclose(got_normals, want_normals, atol=1e-4)


def test_host_labels_do_not_write_the_engine_output():
    segm = smooth(np.random.default_rng(0), 4, 24, 32)[0].numpy()
    before = segm.copy()
    labels_from_logits_host(segm, (24, 32))  # already at size: no resize, the maximum must copy
    np.testing.assert_array_equal(segm, before)


def test_pipeline_on_cpu_equals_the_torch_post_processing():
    """The whole CPU pipeline (host post-processing) against its own torch post-processing on the
    same engine outputs, for the real KITTI frame at 640x480 (padded, cut back) and as it is."""
    from gpu_support import realistic_model

    from hydranet_ros.runtime.pipeline import KNOWN_OUTPUTS, Pipeline, PipelineConfig

    model = realistic_model("kitti")
    frame = read_rgb(KITTI_FRAME)
    for request, output in (((640, 480), "input"), ((1226, 370), "network")):
        pipe = Pipeline.from_model(model, model.preset, PipelineConfig(backend="torch", device="cpu", input_size=request,
                                                                       output_size=output))
        geometry = pipe.geometry_for(frame.shape[1], frame.shape[0])
        out_w, out_h = pipe.output_size_for(frame.shape[1], frame.shape[0])
        raw = pipe.engine(pipe._preprocess(frame, "rgb", geometry))
        host = pipe._postprocess_on_host(raw, geometry, 1.1, (out_h, out_w), KNOWN_OUTPUTS)
        reference = pipe._postprocess(raw, geometry, 1.1, (out_h, out_w), KNOWN_OUTPUTS)
        assert (host["labels"] == reference["labels"].numpy()).mean() > 0.9999
        np.testing.assert_allclose(host["confidence"], reference["confidence"].numpy(), atol=1e-4)
        want = reference["depth_m"].numpy()
        np.testing.assert_allclose(host["depth_m"], want, rtol=1e-5, atol=2e-5 * float(np.nanmax(want)), equal_nan=True)
        result = pipe.process(frame, focal_px=None)
        assert result.labels.shape == (out_h, out_w) and result.depth_m.shape == (out_h, out_w)


# (frame size, requested network size): no resize, shrinking with padding, enlarging, padded both ways
INPUT_CASES = [((640, 480), (640, 480)), ((1226, 370), (640, 480)), ((160, 120), (640, 480)), ((500, 370), (1226, 370)),
               ((1226, 370), None)]


@pytest.mark.parametrize("frame_size, wanted", INPUT_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_host_pre_processing_equals_torch(frame_size, wanted, channels_last):
    from hydranet_ros.presets import get_preset
    from hydranet_ros.runtime.network_input import fit_and_normalise, fit_and_normalise_host, normalisation

    preset = get_preset("kitti")
    scale, shift = normalisation(preset.mean, preset.std)
    frame = np.ascontiguousarray(cv2_resize(read_rgb(KITTI_FRAME), frame_size))
    geometry = plan_input(frame_size, wanted)
    for pixels, bgr in ((frame, False), (frame[..., ::-1], True), (frame[::-1], False)):  # BGR, a flipped view
        rgb = pixels[..., ::-1] if bgr else pixels
        want = fit_and_normalise(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float(),
                                 geometry, scale, shift)
        got = fit_and_normalise_host(pixels, geometry, scale, shift, bgr=bgr, channels_last=channels_last)
        assert got.shape == (1, 3, geometry.network_size[1], geometry.network_size[0]) and got.dtype == torch.float32
        assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def cv2_resize(frame, size):
    import cv2

    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
