"""What the GPU engines do when the GPU says no, without a GPU: a fake TensorRT runtime (written
from TensorRT 10's Python API: deserialize_cuda_engine and create_execution_context return None
on failure, set_tensor_address returns False) and a CUDA graph capture that fails. Each failure
must be an EngineError naming the cause, since only EngineErrors reach the fallback to eager torch.
"""

from __future__ import annotations

import contextlib
import types
from collections import OrderedDict

import pytest
import torch

from hydranet_ros.runtime.engines import tensorrt_engine
from hydranet_ros.runtime.engines.base import EngineError
from hydranet_ros.runtime.engines.cuda_graph_engine import CudaGraphEngine

CPU = torch.device("cpu")  # the fake engine's buffers live here; nothing reaches a GPU


class FakeTrtEngine:
    def __init__(self, *, context: bool = True, bind_ok: bool = True) -> None:
        self.context, self.bind_ok = context, bind_ok
        self.io = {"input": ("in", (1, 3, 32, 64)), "output1": ("out", (1, 1, 8, 16)), "output0": ("out", (1, 6, 8, 16))}

    num_io_tensors = property(lambda self: len(self.io))

    def get_tensor_name(self, index):
        return list(self.io)[index]

    def get_tensor_mode(self, name):
        return self.io[name][0]

    def get_tensor_shape(self, name):
        return self.io[name][1]

    def get_tensor_dtype(self, name):
        return "half"

    def create_execution_context(self):
        return FakeContext(self.bind_ok) if self.context else None


class FakeContext:
    def __init__(self, bind_ok: bool) -> None:
        self.bind_ok, self.addresses, self.launched = bind_ok, {}, []

    def set_tensor_address(self, name, address):
        self.addresses[name] = address
        return self.bind_ok

    def execute_async_v3(self, stream):
        self.launched.append(stream)
        return True


def fake_trt(engine):
    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return engine

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    dtype = types.SimpleNamespace(FLOAT="float", HALF="half", INT8="int8", INT32="int32", BOOL="bool")
    return types.SimpleNamespace(Runtime=Runtime, Logger=Logger, DataType=dtype,
                                 TensorIOMode=types.SimpleNamespace(INPUT="in", OUTPUT="out"))


@pytest.fixture
def no_gpu_needed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: types.SimpleNamespace(cuda_stream=7))


def test_tensorrt_runner_binds_outputs_in_order_and_runs_on_the_current_stream(no_gpu_needed):
    runner = tensorrt_engine._TrtRunner(fake_trt(FakeTrtEngine()), b"engine", device=CPU)
    assert runner.output_names == ["output0", "output1"]
    assert [tuple(o.shape) for o in runner.outputs] == [(1, 6, 8, 16), (1, 1, 8, 16)]
    runner.check(shape=(1, 3, 32, 64), outputs=2)
    outputs = runner(torch.zeros(1, 3, 32, 64))
    assert runner.context.launched == [7]
    assert runner.context.addresses["input"] == runner._last_input.data_ptr()
    assert runner._last_input.dtype == torch.float16  # converted to the engine's input type
    assert outputs is runner.outputs
    with pytest.raises(EngineError, match="built for"):
        runner(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("engine, message", [
    (None, "cannot deserialise"),
    (FakeTrtEngine(context=False), "execution context"),
    (FakeTrtEngine(bind_ok=False), "refused the buffer for 'output0'"),
])
def test_tensorrt_runner_failures_are_engine_errors(no_gpu_needed, engine, message):
    with pytest.raises(EngineError, match=message):
        tensorrt_engine._TrtRunner(fake_trt(engine), b"engine", device=CPU)


OTHER_SHAPE = (2, 3, 480, 640)


def graph_engine_without_gpu(monkeypatch, failure: BaseException) -> CudaGraphEngine:
    """A CudaGraphEngine whose capture fails with ``failure`` (built without touching CUDA)."""
    engine = object.__new__(CudaGraphEngine)
    engine.device, engine.precision, engine.channels_last = torch.device("cuda", 0), "fp16", True
    engine._graphs = OrderedDict({OTHER_SHAPE: object()})  # a graph captured before, for another batch size
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    engine.emptied = emptied

    def capture(shape):
        raise failure

    monkeypatch.setattr(engine, "_capture_on_device", capture)
    return engine


def test_graph_capture_out_of_memory_is_an_engine_error_and_frees_the_cache(monkeypatch):
    engine = graph_engine_without_gpu(monkeypatch, torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    with pytest.raises(EngineError, match=r"capture at 640x480 ran out of GPU memory: CUDA out of memory\. Tried"):
        engine._capture((1, 3, 480, 640))
    assert engine.emptied and engine.captured_shapes == (OTHER_SHAPE,)  # the graph that works stays


def test_graph_capture_failure_is_an_engine_error(monkeypatch):
    engine = graph_engine_without_gpu(monkeypatch, RuntimeError("operation not permitted when stream is capturing\nmore"))
    with pytest.raises(EngineError, match=r"capture at 64x32 failed: operation not permitted when stream is capturing$"):
        engine._capture((1, 3, 32, 64))
    assert engine.captured_shapes == (OTHER_SHAPE,)


def test_graph_capture_failure_names_the_batch_size(monkeypatch):
    engine = graph_engine_without_gpu(monkeypatch, RuntimeError("capture failed"))
    with pytest.raises(EngineError, match=r"capture at 64x32 \(batch 4\) failed"):
        engine._capture((4, 3, 32, 64))


def test_graph_engine_on_cpu_is_refused():
    with pytest.raises(EngineError, match="needs a CUDA device"):
        CudaGraphEngine.build(None, device=CPU, precision="fp16")


class FakeDynamicEngine(FakeTrtEngine):
    """An engine built for a batch of 1..4 (TensorRT reports -1 for the batch dimension and the
    range in optimisation profile 0)."""

    def __init__(self, *, low=1, high=4) -> None:
        super().__init__()
        self.io = {"input": ("in", (-1, 3, 32, 64)), "output0": ("out", (-1, 6, 8, 16)), "output1": ("out", (-1, 1, 8, 16))}
        self.profile = ((low, 3, 32, 64), (high, 3, 32, 64), (high, 3, 32, 64))

    def get_tensor_profile_shape(self, name, profile):
        assert (name, profile) == ("input", 0)
        return self.profile

    def create_execution_context(self):
        return FakeDynamicContext(self)


class FakeDynamicContext(FakeContext):
    def __init__(self, engine) -> None:
        super().__init__(True)
        self.engine, self.input_shapes = engine, []

    def set_input_shape(self, name, shape):
        self.input_shapes.append(shape)
        return True

    def get_tensor_shape(self, name):  # outputs follow the batch of the input shape last set
        return (self.input_shapes[-1][0], *self.engine.io[name][1][1:])


def test_tensorrt_dynamic_batch_runner_sets_the_shape_and_keeps_outputs_per_batch_size(no_gpu_needed):
    runner = tensorrt_engine._TrtRunner(fake_trt(FakeDynamicEngine()), b"engine", device=CPU)
    assert (runner.dynamic, runner.min_batch, runner.max_batch, runner.frame_shape) == (True, 1, 4, (3, 32, 64))
    runner.check(shape=(1, 3, 32, 64), outputs=2, max_batch=4)
    four = runner(torch.zeros(4, 3, 32, 64))
    assert [tuple(o.shape) for o in four] == [(4, 6, 8, 16), (4, 1, 8, 16)]
    two = runner(torch.zeros(2, 3, 32, 64))
    assert [tuple(o.shape) for o in two] == [(2, 6, 8, 16), (2, 1, 8, 16)]
    assert runner.context.input_shapes == [(4, 3, 32, 64), (2, 3, 32, 64)]
    assert runner.context.addresses["output0"] == two[0].data_ptr()  # rebound for the batch size in use
    assert runner(torch.zeros(4, 3, 32, 64))[0] is four[0]  # the buffers of a size are reused
    assert runner.context.addresses["output0"] == four[0].data_ptr()
    with pytest.raises(EngineError, match=r"built for a batch of 1\.\.4 of \(3, 32, 64\), got \(5, 3, 32, 64\)"):
        runner(torch.zeros(5, 3, 32, 64))


@pytest.mark.parametrize("engine, asked, message", [
    (FakeDynamicEngine(), 1, r"takes a batch of 1\.\.4 .*expected \(1, 3, 32, 64\)"),  # one camera, a batch engine
    (FakeTrtEngine(), 4, r"takes \(1, 3, 32, 64\), expected a batch of 1\.\.4"),  # four cameras, a one-frame engine
    (FakeDynamicEngine(high=8), 4, r"expected a batch of 1\.\.4"),  # built for another range
    (FakeDynamicEngine(low=2), 4, r"expected a batch of 1\.\.4"),
])
def test_an_engine_for_another_batch_range_is_stale(no_gpu_needed, engine, asked, message):
    runner = tensorrt_engine._TrtRunner(fake_trt(engine), b"engine", device=CPU)
    with pytest.raises(EngineError, match=message):
        runner.check(shape=(1, 3, 32, 64), outputs=2, max_batch=asked)
