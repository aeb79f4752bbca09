"""CUDA engines: CUDA graph == eager, fp16 vs fp32 agreement on the shared frames with
trained-scale random weights, the CUDA frame path (pinned staging, stream), TensorRT when present.
Everything here needs CUDA and skips cleanly without it."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest
import torch

from gpu_support import SHARED_FRAMES, needs_cuda, realistic_model, shared_frame, small_frame
from hydranet_ros.runtime.engines.base import EngineError, create_engine
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig, in_order

pytestmark = needs_cuda
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def ieee_fp32(monkeypatch):
    """fp32 means IEEE fp32 here: on Ampere and newer (H100, Orin) PyTorch runs fp32 convolutions
    in TF32 by default, whose 10-bit mantissa is fp16's, and the references would carry the very
    error the fp16 tests measure (emulated on CPU: depth off by 2e-3, labels 99.75 % vs CPU)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


@pytest.fixture(scope="module")
def kitti_model():
    return realistic_model("kitti")


def run(pipe, frame):
    res = pipe.process(frame)
    return res.labels, res.depth_m


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graph_matches_eager(kitti_model, precision):
    eager = create_engine("torch", kitti_model, device=CUDA, precision=precision, input_size=(320, 240))
    graph = create_engine("cuda-graph", kitti_model, device=CUDA, precision=precision, input_size=(320, 240))
    assert graph.captured_shapes == ((1, 3, 240, 320),)
    for name in SHARED_FRAMES:
        pipe = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(device="cuda", precision=precision, input_size=(320, 240)))
        image = pipe._preprocess(small_frame(name, (320, 240)), "rgb", pipe.geometry_for(320, 240))
        want = {k: v.float().clone() for k, v in eager(image).items()}
        got = {k: v.float().clone() for k, v in graph(image).items()}
        for key in want:
            # The graph replays the very kernels eager launches: equal up to cuDNN's run-to-run noise.
            torch.testing.assert_close(got[key], want[key], rtol=1e-3 if precision == "fp16" else 1e-5, atol=1e-3 if precision == "fp16" else 1e-5)


def test_cuda_graph_pipeline_equals_torch_pipeline(kitti_model):
    frame = shared_frame("nyud/000464.png")
    a = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(device="cuda", backend="torch", input_size=(640, 480)))
    b = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(device="cuda", backend="cuda-graph", input_size=(640, 480)))
    assert b.info["backend"] == "cuda-graph"
    la, da = run(a, frame)
    lb, db = run(b, frame)
    assert (la == lb).mean() >= 0.9999
    np.testing.assert_allclose(db, da, rtol=1e-4, atol=1e-4)


def test_cuda_graph_recaptures_on_a_new_size(kitti_model, caplog):
    graph = create_engine("cuda-graph", kitti_model, device=CUDA, precision="fp32", input_size=(64, 48))
    image = torch.zeros(1, 3, 96, 128, device=CUDA).contiguous(memory_format=torch.channels_last)
    with caplog.at_level(logging.WARNING):
        out = graph(image)
    assert out["segm"].shape[-2:] == (24, 32) and "re-capturing" in caplog.text
    with pytest.raises(EngineError, match="expects"):
        graph(image.half())


@pytest.mark.parametrize("backend", ["torch", "cuda-graph"])
def test_fp16_agrees_with_fp32_on_the_shared_frames(kitti_model, backend):
    """Labels agree on >= 99.5 % of pixels, depth within 1 % relative (99.9th percentile)."""
    fp32 = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(device="cuda", precision="fp32", input_size=None))
    fp16 = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(device="cuda", precision="fp16", backend=backend, input_size=None))
    assert fp16.info["precision"] == "fp16"
    for name in SHARED_FRAMES:
        frame = shared_frame(name)
        l32, d32 = run(fp32, frame)
        l16, d16 = run(fp16, frame)
        agreement = float((l32 == l16).mean())
        relative = np.abs(d16 - d32) / np.abs(d32)
        assert agreement >= 0.995, f"{name}: labels agree on {agreement:.4%}"
        assert float(np.quantile(relative, 0.999)) <= 0.01, f"{name}: depth p99.9 relative error {np.quantile(relative, 0.999):.3%}"
        assert np.all(np.isfinite(d16))


def test_cuda_frame_path_reuses_pinned_staging_and_returns_owned_arrays(kitti_model):
    pipe = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(device="cuda", input_size=(64, 48)))
    a, b = small_frame("nyud/000464.png", (64, 48)), small_frame("kitti/000099.png", (64, 48))
    first = pipe.process(a)
    second = pipe.process(b)
    slots = lambda: [slot for half in pipe._staging for slot in half.slots]  # noqa: E731
    staging = [slot.tensor.data_ptr() for slot in slots()]
    assert len(staging) == 2 and all(slot.tensor.is_pinned() for slot in slots())
    again = pipe.process(a)
    pipe.process(b)
    assert [slot.tensor.data_ptr() for slot in slots()] == staging  # not re-pinned per frame
    np.testing.assert_array_equal(first.labels, again.labels)  # results own their memory
    assert not np.array_equal(first.depth_m, second.depth_m)
    # BGR input and strided views go through the same staging buffer.
    bgr = pipe.process(np.ascontiguousarray(a[..., ::-1]), color_order="bgr")
    np.testing.assert_array_equal(bgr.labels, first.labels)
    rgba = np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])
    strided = pipe.process(rgba[..., :3])  # like an rgba8 message viewed without its alpha
    np.testing.assert_array_equal(strided.labels, first.labels)


def test_cuda_pipeline_matches_cpu_pipeline(kitti_model):
    frame = small_frame("nyud/000433.png", (128, 96))
    cpu = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(device="cpu", input_size=(96, 64), output_size="input"))
    gpu = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(device="cuda", input_size=(96, 64), output_size="input"))
    lc, dc = run(cpu, frame)
    lg, dg = run(gpu, frame)
    assert (lc == lg).mean() >= 0.999
    np.testing.assert_allclose(dg, dc, rtol=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("torch_tensorrt") is None, reason="torch-tensorrt is not installed")
def test_tensorrt_fp16_engine_is_built_cached_and_agrees(kitti_model, tmp_path):
    options = {"cache_dir": str(tmp_path)}
    config = PipelineConfig(device="cuda", backend="tensorrt", precision="fp16", input_size=(320, 240), strict=True, engine_options=options)
    trt = Pipeline.from_model(kitti_model, kitti_model.preset, config)
    assert trt.info["backend"] == "tensorrt"
    reference = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(device="cuda", precision="fp32", input_size=(320, 240)))
    frame = small_frame("nyud/000464.png", (320, 240))
    l16, d16 = run(trt, frame)
    l32, d32 = run(reference, frame)
    assert (l16 == l32).mean() >= 0.995
    assert np.quantile(np.abs(d16 - d32) / d32, 0.999) <= 0.01
    again = Pipeline.from_model(kitti_model, kitti_model.preset, config)  # from the cache this time
    assert again.info["engine"] == trt.info["engine"]
    np.testing.assert_array_equal(run(again, frame)[0], l16)


@pytest.mark.parametrize("backend", ["torch", "cuda-graph"])
def test_frames_submitted_ahead_on_cuda_equal_one_at_a_time(kitti_model, backend):
    """Up to three frames queued on the upload, compute and download streams at once give each
    frame exactly what process() gives it, even when the caller overwrites its frame buffer right
    after submitting (the staging ring holds the copy) and the graph's static outputs are reused."""
    pipe = Pipeline.from_model(kitti_model, kitti_model.preset,
                               PipelineConfig(device="cuda", backend=backend, precision="fp16", input_size=(320, 240)))
    frames = [small_frame(name, (320, 240)) for name in SHARED_FRAMES] * 3
    want = [pipe.process(f) for f in frames]
    for in_flight in (2, 3):
        buffer = np.empty_like(frames[0])

        def camera():
            for i, f in enumerate(frames):
                np.copyto(buffer, f)  # one buffer refilled per frame, like a driver's
                yield i, buffer, "rgb"

        got = list(in_order(pipe, camera(), in_flight=in_flight))
        assert [i for i, _ in got] == list(range(len(frames)))
        for i, result in got:
            # Same kernels on the same data; a tolerance only for cuDNN's run-to-run noise (a race
            # on the staging ring or static outputs would give another frame's outputs).
            assert (result.labels == want[i].labels).mean() >= 0.9999
            np.testing.assert_allclose(result.depth_m, want[i].depth_m, rtol=1e-3, atol=1e-3)
            t = result.timings_ms
            assert t["preprocess"] > 0 and t["inference"] > 0 and t["postprocess"] > 0 and t["total"] > 0


def test_staging_buffer_is_not_refilled_while_its_upload_waits(kitti_model):
    """Hold the upload stream up with a long kernel, then queue three frames: the third reuses
    the first one's pinned buffer and must wait for that upload, or the first frame would come
    back with the third one's outputs."""
    pipe = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(device="cuda", input_size=(160, 120)))
    frames = [small_frame(name, (160, 120)) for name in SHARED_FRAMES]
    want = [pipe.process(f) for f in frames]
    with torch.cuda.stream(pipe._upload_stream):
        torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU clock cycles before any upload can start
    pending = [pipe.submit(f) for f in frames]
    for got, expected in zip((p.result() for p in pending), want):
        assert (got.labels == expected.labels).mean() >= 0.9999
        np.testing.assert_allclose(got.depth_m, expected.depth_m, rtol=1e-3, atol=1e-3)


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_crp_pool_on_cuda_equals_max_pool_and_keeps_channels_last(dtype):
    from hydranet_ros.model.refinenet import max_pool_5x5

    x = torch.randn(1, 256, 30, 40, device="cuda", dtype=dtype).contiguous(memory_format=torch.channels_last)
    out = max_pool_5x5(x)
    assert torch.equal(out, torch.nn.functional.max_pool2d(x.contiguous(), 5, 1, 2))
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("backend", ["torch", "cuda-graph"])
def test_cameras_batched_on_cuda_equal_one_at_a_time(kitti_model, backend):
    """Four cameras (two sizes) through submit_batch, two batches in flight: each frame gets what
    process() gives it alone; the cuda-graph engine keeps a graph per batch size; the staging
    buffers are reused batch after batch (one per camera and half, never re-pinned)."""
    from hydranet_ros.runtime.pipeline import FrameRequest

    pipe = Pipeline.from_model(kitti_model, kitti_model.preset,
                               PipelineConfig(device="cuda", backend=backend, precision="fp16", input_size=(320, 240)))
    frames = [small_frame(name, (320, 240)) for name in SHARED_FRAMES] + [small_frame("kitti/000099.png", (320, 97))]
    want = [pipe.process(f) for f in frames]
    batches = [pipe.submit_batch([FrameRequest(f) for f in frames]) for _ in range(2)]
    slots = [slot.tensor.data_ptr() for half in pipe._staging for slot in half.slots]
    batches.append(pipe.submit_batch([FrameRequest(f) for f in frames]))
    assert [slot.tensor.data_ptr() for half in pipe._staging for slot in half.slots] == slots
    for pending in batches:
        for got, expected in zip((p.result() for p in pending), want):
            assert got.batch_size == (1 if got.geometry.network_size != (320, 256) else 3)
            assert (got.labels == expected.labels).mean() >= 0.999
            np.testing.assert_allclose(got.depth_m, expected.depth_m, rtol=2e-3, atol=2e-3)
    if backend == "cuda-graph":
        assert {shape[0] for shape in pipe.engine.captured_shapes} == {1, 3}
