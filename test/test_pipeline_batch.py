"""Several cameras through one network pass (Pipeline.process_batch): each frame gets exactly what
it would get alone, whatever it is batched with, cameras of different sizes included; the batch
is split where the engine says so; and the TensorRT batch decisions, tested without TensorRT."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import torch

from hydranet_ros.model import get_preset
from hydranet_ros.model.fold import fold_batchnorm
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.random_init import realistic_model
from hydranet_ros.runtime.engine_cache import make_key
from hydranet_ros.runtime.engines import tensorrt_engine
from hydranet_ros.runtime.engines.base import EngineError
from hydranet_ros.runtime.focal import TrainingCamera
from hydranet_ros.runtime.pipeline import FrameRequest, Pipeline, PipelineConfig
from support import KITTI_FRAME, NYU_FRAME, read_rgb


@pytest.fixture(scope="module")
def kitti_model():
    return realistic_model(get_preset("kitti"), seed=7, calibration=[read_rgb(KITTI_FRAME)])


@pytest.fixture(scope="module")
def cameras():
    """Four cameras' frames: two of one size (KITTI-shaped), one flipped, and two others."""
    kitti = cv2.resize(read_rgb(KITTI_FRAME), (320, 97), interpolation=cv2.INTER_AREA)
    nyu = cv2.resize(read_rgb(NYU_FRAME), (160, 120), interpolation=cv2.INTER_AREA)
    return [kitti, np.ascontiguousarray(kitti[:, ::-1]), nyu, np.ascontiguousarray(nyu[::2, :, ::-1])]


def one_thread(fn):
    """Bitwise comparisons on one CPU thread: with two, oneDNN may split a batch's arithmetic
    differently from a single frame's (float rounding, measured at most 2e-7 relative)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("output_size", ["network", "input"])
def test_each_frame_of_a_batch_equals_the_frame_alone(kitti_model, cameras, output_size):
    pipe = Pipeline.from_model(kitti_model, kitti_model.preset,
                               PipelineConfig(backend="torch", device="cpu", input_size=(160, 96), output_size=output_size),
                               training_camera=TrainingCamera(223.08, 384))  # depth scaled per camera's focal length
    everything = frozenset({"labels", "depth", "normals", "confidence"})
    requests = [FrameRequest(cameras[0], outputs=everything, focal_px=300.0), FrameRequest(cameras[1]),
                FrameRequest(cameras[2], outputs=frozenset({"depth"})),
                FrameRequest(cameras[3], color_order="bgr", outputs=frozenset({"labels"}))]
    alone = one_thread(lambda: [pipe.process(r.pixels, color_order=r.color_order, outputs=r.outputs, focal_px=r.focal_px)
                                for r in requests])
    # On a CPU every frame of a batch goes through the host (numpy/OpenCV) post-processing, as a
    # frame alone does: the torch one is for the GPU.
    pipe._postprocess = None
    together = one_thread(lambda: pipe.process_batch(requests))
    # Grouped by network size: 320x97 and 160x60 frames both fit 160x96 as 160x64 once padded
    # (each with its own padding), the 160x120 one is 128x96.
    assert [r.geometry.network_size for r in together] == [(160, 64), (160, 64), (128, 96), (160, 64)]
    assert [r.batch_size for r in together] == [3, 3, 1, 3]
    assert together[0].geometry.scaled_size != together[3].geometry.scaled_size
    for index, (a, b) in enumerate(zip(alone, together)):
        for name in ("labels", "depth_m", "confidence"):
            if getattr(a, name) is None:
                assert getattr(b, name) is None, (index, name)
            else:
                np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=f"frame {index} {name}")
        assert b.geometry == a.geometry and b.depth_scale == a.depth_scale
        assert set(b.timings_ms) == {"preprocess", "inference", "postprocess", "total"}
    assert together[0].depth_scale.source == "camera" and together[1].depth_scale.source == "assumed"
    # Confidence only where asked for (the softmax runs for that frame only), 0..1 at the labels' size.
    assert [r.confidence is not None for r in together] == [True, False, False, False]
    assert together[0].confidence.shape == together[0].labels.shape
    assert 0.0 < together[0].confidence.min() and together[0].confidence.max() <= 1.0
    assert together[0].depth_scale.factor != together[1].depth_scale.factor


def test_batches_are_split_at_the_engines_max_batch_in_order(kitti_model, cameras):
    pipe = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(backend="torch", device="cpu", input_size=(96, 64)))
    calls = []
    engine = pipe.engine

    class TwoAtATime:  # an engine built for at most two frames per call (as TensorRT 1..2)
        max_batch, lanes = 2, 1
        channels_last, dtype, device = engine.channels_last, engine.dtype, engine.device

        def __call__(self, image):
            calls.append(image.shape[0])
            return engine(image)

    frames = [cameras[0], cameras[1], cameras[0][:, 5:], cameras[1][:, 5:], cameras[0]]
    alone = [pipe.process(f) for f in frames]
    pipe.engine = TwoAtATime()
    together = pipe.process_batch([FrameRequest(f) for f in frames])
    assert calls == [2, 2, 1]
    for a, b in zip(alone, together):
        assert (a.labels == b.labels).mean() == 1.0
        np.testing.assert_allclose(b.depth_m, a.depth_m, rtol=1e-5)


def test_a_batch_of_one_is_submit(kitti_model, cameras):
    pipe = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(backend="torch", device="cpu", input_size=(96, 64)))
    [pending] = pipe.submit_batch([FrameRequest(cameras[2])])
    a, b = pending.result(), pipe.process(cameras[2])
    assert a.batch_size == b.batch_size == 1
    np.testing.assert_array_equal(a.labels, b.labels)
    assert pipe.process_batch([]) == []


def test_a_bad_frame_in_a_batch_is_refused_before_anything_runs(kitti_model, cameras):
    pipe = Pipeline.from_model(kitti_model, kitti_model.preset, PipelineConfig(backend="torch", device="cpu", input_size=(96, 64)))
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        pipe.process_batch([FrameRequest(cameras[0]), FrameRequest(cameras[0][..., 0])])
    with pytest.raises(ValueError, match="color_order"):
        pipe.process_batch([FrameRequest(cameras[0], color_order="yuv")])


@pytest.mark.parametrize("output_size", ["network", "input"])
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_cpu_engines_run_a_batch_one_frame_at_a_time_and_each_frame_equals_it_alone(
        backend, output_size, kitti_model, cameras, tmp_path):
    """ONNX Runtime and OpenVINO models take a dynamic height and width but a batch of one: the
    pipeline runs every camera's frame at its own planned network size (padded to the stride only,
    never to the whole request), one call each, and post-processes it on the host with confidence
    where asked. OpenVINO's outputs are its request's buffers, overwritten by the next call: a
    frame's results must not change when the next camera's frame runs."""
    pytest.importorskip(backend)  # test extra: CI installs both (test_cpu_engines fails if not)
    # One thread: no lanes (see the next test), each frame one call on the engine itself.
    config = PipelineConfig(backend=backend, device="cpu", input_size=(96, 64), output_size=output_size, strict=True,
                            engine_options={"cache_dir": str(tmp_path), "threads": 1}, max_batch=4)
    pipe = Pipeline.from_model(kitti_model, kitti_model.preset, config)
    assert pipe.info["backend"] == backend and pipe.engine.max_batch == 1 and pipe.engine.lanes == 1
    calls = []
    engine = pipe.engine

    class Counting:
        max_batch, fixed_input_size, lanes = engine.max_batch, engine.fixed_input_size, engine.lanes
        channels_last, dtype, device = engine.channels_last, engine.dtype, engine.device

        def __call__(self, image):
            calls.append(tuple(image.shape))
            return engine(image)

    pipe.engine = Counting()
    pipe._postprocess = None  # the CPU path post-processes in numpy/OpenCV only
    outputs = frozenset({"labels", "depth", "confidence"})
    requests = [FrameRequest(frame, outputs=outputs) for frame in cameras]
    together = pipe.process_batch(requests)
    # One frame per call, each at its own planned size: 320x97 and 320x97 flipped fit 96x64 as
    # 96x29 -> 96x32, the 160x120 one as 85x64 -> 96x64, the 160x60 one as 96x36 -> 96x64.
    planned = [pipe.network_size_for(frame.shape[1], frame.shape[0]) for frame in cameras]
    assert calls == [(1, 3, height, width) for width, height in planned]
    assert (1, 3, 32, 96) in calls  # a frame smaller than the request is not padded to it
    assert [r.batch_size for r in together] == [1, 1, 1, 1]
    alone = [pipe.process(r.pixels, outputs=outputs) for r in requests]
    for index, (a, b) in enumerate(zip(alone, together)):
        np.testing.assert_array_equal(b.labels, a.labels, err_msg=f"frame {index}")
        np.testing.assert_array_equal(b.depth_m, a.depth_m, err_msg=f"frame {index}")
        np.testing.assert_array_equal(b.confidence, a.confidence, err_msg=f"frame {index}")
        assert b.confidence.shape == b.labels.shape and b.confidence.max() <= 1.0
    assert not np.array_equal(together[0].depth_m, together[1].depth_m)  # not one buffer shared by all


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_cpu_engines_for_several_cameras_run_a_batch_in_lanes_each_frame_as_alone(backend, kitti_model, cameras, tmp_path):
    """Built for 4 cameras on 2 threads, a CPU engine has 2 lanes: a batch's frames run two at a
    time, each in its own thread with a single-thread forward (engines/base.Engine.lanes). Every
    frame gets what it gets alone (the 2-thread forward: float rounding may differ, nothing
    more), whatever its size; a lane's OpenVINO request is reused by its next frame only after
    that frame's outputs were read."""
    pytest.importorskip(backend)
    options = {"cache_dir": str(tmp_path), "threads": 2}
    pipe = Pipeline.from_model(kitti_model, kitti_model.preset,
                               PipelineConfig(backend=backend, device="cpu", input_size=(96, 64), output_size="input",
                                              strict=True, engine_options=options, max_batch=4))
    assert pipe.engine.lanes == 2
    threads = []
    run_in_lane = pipe.engine.run_in_lane

    def recording(image):
        threads.append(threading.current_thread().name)
        return run_in_lane(image)

    pipe.engine.run_in_lane = recording
    outputs = frozenset({"labels", "depth", "confidence"})
    requests = [FrameRequest(frame, outputs=outputs) for frame in cameras * 2]  # 8 frames: each lane runs several
    together = pipe.process_batch(requests)
    assert len(threads) == 8 and len(set(threads)) == 2 and all(t.startswith("hydranet-lane") for t in threads)
    alone = [pipe.process(r.pixels, outputs=outputs) for r in requests]
    assert len(threads) == 8  # a frame alone runs on the engine itself
    for index, (a, b) in enumerate(zip(alone, together)):
        assert b.batch_size == 8 and b.timings_ms["inference"] > 0
        assert (b.labels == a.labels).mean() >= 0.999, f"frame {index}"
        np.testing.assert_allclose(b.depth_m, a.depth_m, rtol=1e-4, err_msg=f"frame {index}")
        np.testing.assert_allclose(b.confidence, a.confidence, atol=1e-4, err_msg=f"frame {index}")
    np.testing.assert_array_equal(together[0].depth_m, together[4].depth_m)  # same frame, same lane arithmetic


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("max_batch, threads, lanes, lane_threads",
                         [(1, 2, 1, 1), (4, 1, 1, 1), (2, 4, 2, 2), (8, 3, 3, 1), (2, 8, 2, 4), (3, 8, 3, 2)])
def test_a_cpu_engine_has_one_lane_per_thread_up_to_the_cameras(backend, max_batch, threads, lanes, lane_threads,
                                                                kitti_model, tmp_path):
    """One lane per thread, no more than cameras; the threads shared out among the lanes (review:
    2 cameras on 8 cores had 2 one-thread lanes and 6 cores idle)."""
    pytest.importorskip(backend)
    from hydranet_ros.runtime.engines.base import create_engine

    engine = create_engine(backend, kitti_model, device=torch.device("cpu"), precision="fp32",
                           options={"cache_dir": str(tmp_path), "threads": threads, "max_batch": max_batch})
    assert (engine.lanes, engine.lane_threads) == (lanes, lane_threads)
    if lanes == 1:
        assert "lanes" not in engine.describe()
        with pytest.raises(EngineError, match="no lanes"):
            engine.run_in_lane(torch.zeros(1, 3, 64, 96))
    else:
        assert engine.describe()["lanes"] == f"{lanes} x {lane_threads} thread(s)"
    if backend == "openvino" and lanes > 1:  # OpenVINO caps threads at the cores, as for the main model
        expected = min(lane_threads, engine.compiled.get_property("INFERENCE_NUM_THREADS"))
        assert {model.get_property("INFERENCE_NUM_THREADS") for model in engine.lane_models} == {expected}


@pytest.mark.parametrize("max_batch", [0, 65, True, 2.0])
def test_max_batch_is_checked(max_batch):
    from hydranet_ros.errors import UsageError

    with pytest.raises(UsageError, match="max_batch"):
        PipelineConfig(max_batch=max_batch)


# -- TensorRT's batch dimension, without TensorRT -----------------------------------------------------

def test_engine_cache_key_records_the_batch_range_and_keeps_one_camera_keys():
    common = dict(weights_sha256="ab" * 32, input_size=(640, 480), precision="fp16", backend="tensorrt",
                  library_versions={"tensorrt": "10.3.0"}, gpu_name="Orin", compute_capability="8.7")
    one, four = make_key(**common), make_key(**common, max_batch=4)
    assert "max_batch" not in one.as_dict()  # as before batching existed: engines cached then stay valid
    assert four.as_dict()["max_batch"] == 4 and one.digest != four.digest
    assert one.slot == "tensorrt-abababababababab-640x480-fp16" and four.slot.endswith("-fp16-batch1-4")


def test_the_network_exports_with_a_dynamic_batch():
    """What the TensorRT build traces: torch.export with batch 1..3 symbolic, and the program run
    at another batch size gives what the model gives."""
    model = HydraNet(get_preset("kitti")).eval()
    wrapper = tensorrt_engine._TupleOutputs(fold_batchnorm(model), ("segm", "depth")).eval()
    with torch.no_grad():
        program = tensorrt_engine.export_program(wrapper, torch.zeros(3, 3, 64, 96), 3)
        x = torch.randn(2, 3, 64, 96)
        for got, want in zip(program.module()(x), wrapper(x)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    [image] = [n for n in program.graph.nodes if n.op == "placeholder" and n.name == "image"]
    assert not isinstance(image.meta["val"].shape[0], int)  # symbolic, not specialised to 3


def test_trt_input_spec_is_the_example_for_one_camera_and_a_profile_for_several():
    class FakeInput:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    fake = type("torch_tensorrt", (), {"Input": FakeInput})
    example = torch.zeros(4, 3, 64, 96, dtype=torch.float16)
    assert tensorrt_engine.trt_input_spec(fake, example[:1], 1) is not None
    spec = tensorrt_engine.trt_input_spec(fake, example, 4)
    assert spec.kwargs == {"min_shape": (1, 3, 64, 96), "opt_shape": (4, 3, 64, 96), "max_shape": (4, 3, 64, 96),
                           "dtype": torch.float16}
    for bad in (0, 65, 1.5, True):
        with pytest.raises(EngineError, match="max_batch"):
            tensorrt_engine.check_max_batch(bad)


def test_openvino_never_pins_its_threads(kitti_model, tmp_path):
    """Pinned (the CPU plugin's default), every single-camera process put its one thread on the
    same core; lanes too are left to the OS scheduler."""
    pytest.importorskip("openvino")
    from hydranet_ros.runtime.engines.base import create_engine

    engine = create_engine("openvino", kitti_model, device=torch.device("cpu"), precision="fp32",
                           options={"cache_dir": str(tmp_path), "threads": 2, "max_batch": 2})
    for model in (engine.compiled, *engine.lane_models):
        assert model.get_property("ENABLE_CPU_PINNING") is False
    assert [m.get_property("INFERENCE_NUM_THREADS") for m in engine.lane_models] == [1, 1]
