import numpy as np
import pytest
import torch

from hydranet_ros.model import get_preset
from hydranet_ros.model.random_init import realistic_model
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig, in_order
from hydranet_ros.runtime.sizes import parse_size
from support import KITTI_FRAME, normalised, read_rgb


@pytest.fixture(scope="module")
def kitti_model():
    return realistic_model(get_preset("kitti"), seed=7, calibration=[read_rgb(KITTI_FRAME)])


def make(model, preset="kitti", **cfg):
    # The pipeline's own work (pre/post-processing) against the torch engine's outputs; the other
    # engines are compared with torch in test_cpu_engines.py.
    cfg.setdefault("backend", "torch")
    return Pipeline.from_model(model, get_preset(preset), PipelineConfig(**cfg))


def test_result_types_shapes_and_ranges(kitti_model):
    frame = read_rgb(KITTI_FRAME)
    result = make(kitti_model, input_size=(320, 96)).process(frame)
    # output_size 'network': the frame as scaled for the network, aspect kept (1226x370 -> 318x96)
    assert result.labels.dtype == np.uint8 and result.labels.shape == (96, 318)
    assert result.depth_m.dtype == np.float32 and result.depth_m.shape == (96, 318)
    assert result.geometry.network_size == (320, 96) and result.geometry.offset == (1, 0)
    assert result.labels.max() < 6
    assert np.all(np.isnan(result.depth_m) | (result.depth_m >= 0))
    assert result.normals is None
    assert set(result.timings_ms) == {"preprocess", "inference", "postprocess", "total"}
    assert result.timings_ms["total"] >= result.timings_ms["inference"] > 0


def test_matches_notebook_style_computation(kitti_model):
    """Same labels and depth as normalising in numpy and upsampling logits by hand."""
    import cv2

    size = (256, 96)  # a multiple of the stride: no resize and no padding inside
    frame = cv2.resize(read_rgb(KITTI_FRAME), size, interpolation=cv2.INTER_AREA)
    # On the CPU, like the reference: on a GPU the pipeline's fp32 convolutions run in TF32
    # (0.997 of labels agreed on an H200); test_cuda_matches_cpu covers the GPU against the CPU.
    result = make(kitti_model, input_size=size, output_size="input", device="cpu").process(frame)
    with torch.inference_mode():
        raw = kitti_model(normalised(frame, size))
    logits = torch.nn.functional.interpolate(raw["segm"], size=(96, 256), mode="bilinear", align_corners=False)
    depth = torch.nn.functional.interpolate(raw["depth"], size=(96, 256), mode="bilinear", align_corners=False).abs()
    agree = (logits.argmax(1)[0].numpy() == result.labels).mean()
    assert agree > 0.999  # only near-ties may flip between folded and unfolded arithmetic
    np.testing.assert_allclose(result.depth_m, depth[0, 0].numpy(), rtol=1e-3, atol=1e-3)


def test_bgr_frame_gives_the_same_result(kitti_model):
    frame = read_rgb(KITTI_FRAME)
    pipe = make(kitti_model, input_size=(160, 64))
    a = pipe.process(frame, color_order="rgb")
    b = pipe.process(np.ascontiguousarray(frame[..., ::-1]), color_order="bgr")
    c = pipe.process(frame[..., ::-1], color_order="bgr")  # a negative-stride view is fine too
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.labels, c.labels)
    np.testing.assert_array_equal(a.depth_m, b.depth_m)


@pytest.mark.parametrize("frame_size", [(1226, 370), (641, 479), (32, 32)])
def test_output_size_input_and_native_network_size(kitti_model, frame_size):
    w, h = frame_size
    frame = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    pipe = make(kitti_model, input_size=None, output_size="input")
    result = pipe.process(frame)
    assert result.labels.shape == (h, w) == result.depth_m.shape
    assert pipe.output_size_for(w, h) == (w, h)
    net = make(kitti_model, input_size=(64, 32), output_size="network")
    scaled = net.geometry_for(w, h).scaled_size  # fits inside 64x32 with the frame's aspect ratio
    assert net.process(frame).labels.shape == scaled[::-1]
    assert net.output_size_for(w, h) == scaled and (scaled[0] == 64 or scaled[1] == 32)
    assert net.network_size_for(w, h) == tuple(-(-v // 32) * 32 for v in scaled)


def test_labels_come_from_upsampled_logits_not_blocks(kitti_model):
    """Upsampled 4x, label boundaries are not confined to the network's 4x4 output grid."""
    frame = read_rgb(KITTI_FRAME)
    labels = make(kitti_model, input_size=(320, 96)).process(frame).labels
    edges_x = np.nonzero(labels[:, 1:] != labels[:, :-1])[1] + 1
    assert edges_x.size and np.any(edges_x % 4 != 0)


def test_normals_are_unit_vectors():
    preset = get_preset("nyud_three")
    model = realistic_model(preset, seed=8)
    result = make(model, "nyud_three", input_size=(64, 48)).process(np.full((48, 64, 3), 100, np.uint8))
    assert result.normals.shape == (48, 64, 3) and result.normals.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.normals, axis=2), 1.0, atol=1e-4)
    assert result.labels.max() < 40


def test_non_finite_depth_becomes_nan(kitti_model):
    pipe = make(kitti_model, input_size=(64, 32))
    original = pipe.engine.model.heads["depth"].out.bias.clone()
    with torch.no_grad():
        pipe.engine.model.heads["depth"].out.bias.fill_(float("inf"))
    try:
        depth = pipe.process(np.zeros((32, 64, 3), np.uint8)).depth_m
    finally:
        with torch.no_grad():
            pipe.engine.model.heads["depth"].out.bias.copy_(original)
    assert np.isnan(depth).all()


def test_skipped_outputs_are_not_computed(kitti_model):
    result = make(kitti_model, input_size=(64, 32)).process(np.zeros((32, 64, 3), np.uint8), outputs=frozenset({"depth"}))
    assert result.labels is None and result.depth_m is not None


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8)])
def test_bad_frames_are_refused(kitti_model, bad):
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        make(kitti_model, input_size=(64, 32)).process(bad)


@pytest.mark.parametrize("cfg,message", [
    ({"input_size": (0, 480)}, "impossible"),
    ({"input_size": (100000, 480)}, "impossible"),
    ({"output_size": "huge"}, "output_size"),
    ({"backend": "magic"}, "backend"),
    ({"precision": "fp8"}, "precision"),
    ({"device": "tpu"}, "device"),
])
def test_config_is_validated(cfg, message):
    with pytest.raises(ValueError, match=message):
        PipelineConfig(**cfg)


def test_parse_size():
    assert parse_size("640x480") == (640, 480)
    assert parse_size("input") is None
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size("640by480")


def test_fp16_on_cpu_falls_back_with_warning_or_refuses_when_strict(kitti_model, caplog):
    from hydranet_ros.runtime.fallback import FallbackRefused

    pipe = make(kitti_model, input_size=(64, 32), device="cpu", precision="fp16")
    assert pipe.info["precision"] == "fp32" and any("fp16 needs CUDA" in w for w in pipe.warnings)
    assert "fp16 needs CUDA" in caplog.text
    with pytest.raises(FallbackRefused):
        make(kitti_model, input_size=(64, 32), device="cpu", precision="fp16", strict=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(kitti_model, monkeypatch):
    # IEEE fp32 on the GPU too: Ampere and newer run fp32 convolutions in TF32 by default.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    frame = read_rgb(KITTI_FRAME)
    cpu = make(kitti_model, input_size=(320, 96), device="cpu").process(frame)
    gpu = make(kitti_model, input_size=(320, 96), device="cuda").process(frame)
    assert (cpu.labels == gpu.labels).mean() > 0.995
    np.testing.assert_allclose(gpu.depth_m, cpu.depth_m, rtol=1e-3, atol=1e-3)


def test_auto_size_is_the_training_size_recorded_in_the_weights(tmp_path, kitti_model):
    from hydranet_ros.model.checkpoints import save_safetensors

    path = tmp_path / "trained.safetensors"
    save_safetensors(path, kitti_model.state_dict(), get_preset("kitti"), extra={"input_size": "96x64"})
    # backend auto (OpenVINO with the test extras): every engine on the CPU gets the same geometry.
    pipe = Pipeline.create(PipelineConfig(weights=str(path), input_size="auto", device="cpu"))
    assert pipe.config.input_size == (96, 64)
    assert pipe.geometry_for(1226, 370).scaled_size == (96, 29) and pipe.network_size_for(1226, 370) == (96, 32)
    save_safetensors(path, kitti_model.state_dict(), get_preset("kitti"))  # nothing recorded
    assert Pipeline.create(PipelineConfig(weights=str(path), input_size="auto", device="cpu")).network_size_for(1226, 370) == (1248, 384)
    assert parse_size("auto") == "auto"
    with pytest.raises(ValueError, match="auto"):
        PipelineConfig(input_size="huge")


def test_frames_submitted_ahead_come_back_in_order_and_equal_one_at_a_time(kitti_model):
    """in_order (bags, videos, folders) gives each frame exactly what process() gives it, with its
    own tag, in submission order, across colour orders and frame sizes."""
    import cv2

    pipe = make(kitti_model, input_size=None)
    base = read_rgb(KITTI_FRAME)
    frames = [(f"f{i}", np.ascontiguousarray(cv2.resize(base, size)), order)
              for i, (size, order) in enumerate([((96, 64), "rgb"), ((96, 64), "bgr"), ((128, 40), "rgb"),
                                                 ((64, 64), "rgb"), ((96, 64), "rgb")])]
    frames[3] = ("f3", frames[3][1][::-1], "rgb")  # a flipped (negative-stride) view
    want = {tag: pipe.process(frame, color_order=order) for tag, frame, order in frames}
    for in_flight in (1, 2, 3):
        got = list(in_order(pipe, iter(frames), in_flight=in_flight, outputs=frozenset({"labels", "depth"})))
        assert [tag for tag, _ in got] == [tag for tag, _, _ in frames]
        for tag, result in got:
            np.testing.assert_array_equal(result.labels, want[tag].labels)
            np.testing.assert_array_equal(result.depth_m, want[tag].depth_m)
            assert result.normals is None and result.timings_ms["total"] > 0


def test_on_cpu_a_submitted_frame_is_done_at_once_and_its_result_kept(kitti_model):
    """On CPU there is nothing to overlap: submit runs the frame (the CUDA test covers a caller
    refilling its buffer while the frame is still queued)."""
    pipe = make(kitti_model, input_size=(96, 64))
    frame = np.ascontiguousarray(read_rgb(KITTI_FRAME)[:128, :384])
    want = pipe.process(frame.copy())
    pending = pipe.submit(frame)
    assert pending.done()
    got = pending.result()
    assert got is pending.result()  # asking twice gives the same Result
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_array_equal(got.depth_m, want.depth_m)


def test_in_order_refuses_nothing_in_flight_and_bad_frames(kitti_model):
    pipe = make(kitti_model, input_size=(64, 32))
    frame = np.zeros((32, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="in_flight"):
        next(in_order(pipe, [("a", frame, "rgb")], in_flight=0))
    with pytest.raises(ValueError, match="uint8"):
        list(in_order(pipe, [("ok", frame, "rgb"), ("bad", frame.astype(np.float32), "rgb")]))


def test_frames_queued_before_a_source_error_are_still_delivered(kitti_model):
    """An unreadable image in a folder must not lose the frame queued before it."""
    pipe = make(kitti_model, input_size=(64, 32))
    frame = np.zeros((32, 64, 3), np.uint8)

    def source():
        yield "a0", frame, "rgb"
        yield "a1", frame, "rgb"
        raise OSError("a2.png: cannot read")

    delivered = []
    with pytest.raises(OSError, match="a2.png"):
        for tag, _ in in_order(pipe, source(), in_flight=3):
            delivered.append(tag)
    assert delivered == ["a0", "a1"]


def test_joint_weights_can_label_from_one_datasets_classes():
    model = realistic_model(get_preset("nyud_kitti"), seed=3)
    frame = np.random.default_rng(1).integers(0, 255, (48, 96, 3), dtype=np.uint8)
    joint = make(model, "nyud_kitti", input_size=None).process(frame).labels
    kitti = make(model, "nyud_kitti", input_size=None, classes="kitti").process(frame).labels
    nyud = make(model, "nyud_kitti", input_size=None, classes="nyud").process(frame).labels
    assert kitti.min() >= 40 and kitti.max() <= 45 and nyud.max() <= 39
    # where the joint argmax already picked a KITTI class, restricting to KITTI agrees with it
    assert np.array_equal(kitti[joint >= 40], joint[joint >= 40])
    with pytest.raises(ValueError, match="known: all, nyud, kitti"):
        make(model, "nyud_kitti", classes="cityscapes")
    with pytest.raises(ValueError, match="known: all"):
        make(realistic_model(get_preset("kitti"), seed=3), "kitti", classes="kitti")


def test_eval_of_joint_weights_on_one_datasets_classes_scores_in_that_datasets_ids():
    """`hydranet eval --classes kitti` with the joint weights: the labels are KITTI's ids 40-45 of
    the weights, the ground truth KITTI's own 0-5 (review: every pixel counted wrong)."""
    from hydranet_ros.train.evaluate import evaluate_pipeline

    model = realistic_model(get_preset("nyud_kitti"), seed=3)
    frame = np.random.default_rng(1).integers(0, 255, (48, 96, 3), dtype=np.uint8)
    pipe = make(model, "nyud_kitti", input_size=None, classes="kitti", output_size="input")
    truth = pipe.process(frame).labels.astype(np.uint8) - 40  # the ground truth this prediction matches
    report = evaluate_pipeline(pipe, [{"image": frame, "labels": truth, "depth_m": None, "camera_k": None}],
                               tasks=("segm",))
    assert report.segm["miou"] == pytest.approx(1.0)
    assert report.class_names == tuple(get_preset("nyud_kitti").class_names[40:46])


@pytest.mark.parametrize("preset_name", ["kitti", "nyud_three"])
def test_evaluation_runs_the_pipelines_own_pre_and_post_processing(kitti_model, preset_name):
    """The metrics describe what ships: evaluation feeds the network exactly what the pipeline
    feeds it for the same frame, and turns the same raw outputs into the same labels, metres (NaN
    where the head gave inf) and unit normals."""
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.train.evaluate import predict

    preset = get_preset(preset_name)
    # a stride multiple: no padding, so the batch path and the frame path see the same pixels
    pipe = make(HydraNet(preset).eval(), preset_name, input_size=(64, 64), output_size="network", device="cpu")
    frame = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    raw = {"segm": torch.randn(1, preset.num_classes, 16, 16), "depth": torch.randn(1, 1, 16, 16)}
    raw["depth"][0, 0, 2, 3] = float("inf")
    if preset.with_normals:
        raw["normals"] = torch.randn(1, 3, 16, 16)
    seen = {}

    class RawOutputs(torch.nn.Module):
        def forward(self, image):
            seen["input"] = image
            return raw

    evaluated = predict(RawOutputs(), torch.from_numpy(frame).permute(2, 0, 1)[None], preset=preset)
    geometry = pipe.geometry_for(64, 64)
    # On CPU the pipeline normalises in numpy (multiply, then add: one rounding more than torch's
    # fused multiply-add), so the inputs agree to the last bit or two of values within +-2.7.
    torch.testing.assert_close(seen["input"], pipe._preprocess(frame, "rgb", geometry).contiguous(), rtol=0, atol=1e-6)
    shipped = pipe._postprocess(raw, geometry, 1.0, (64, 64), frozenset({"labels", "depth", "normals"}))
    # ... and post-processes on the host with OpenCV: the same labels but for float ties, the same metres.
    host = pipe._postprocess_on_host(raw, geometry, 1.0, (64, 64), frozenset({"labels", "depth", "normals"}))
    assert (host["labels"] == evaluated["labels"][0].numpy()).mean() > 0.999
    np.testing.assert_allclose(host["depth_m"], evaluated["depth_m"][0].numpy(), rtol=1e-5, atol=1e-5, equal_nan=True)
    assert torch.equal(evaluated["labels"][0], shipped["labels"])
    assert torch.allclose(evaluated["depth_m"][0], shipped["depth_m"], rtol=0, atol=0, equal_nan=True)
    assert torch.isnan(evaluated["depth_m"][0, 8:12, 12:16]).any()  # the inf cell, upsampled
    if preset.with_normals:
        assert torch.equal(evaluated["normals"][0].permute(1, 2, 0), shipped["normals"])
