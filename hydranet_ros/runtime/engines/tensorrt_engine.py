"""TensorRT through torch-tensorrt: one serialized engine per (weights, size, precision, GPU, versions).

Build: fold BN, export with torch.export at the fixed input size, convert the whole graph with
``torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine`` into a plain TensorRT
engine (bytes), and keep it in the engine cache.

Batch dimension: ``max_batch`` 1 (the default, one camera) builds a fixed batch of one, exactly
as before. ``max_batch`` N > 1 (several cameras, one network) builds a dynamic batch dimension,
1..N, tuned for N (TensorRT's optimisation profile min 1, opt N, max N): every camera delivering
runs one batch of N, a batch that timed out with fewer cameras runs as it is, never padded. The
range is part of the engine cache key (``max_batch``), so an engine for one camera is never taken
for four and the other way round. Run: TensorRT's own runtime deserialises it and
executes on the current CUDA stream into static output buffers (name-based I/O, TensorRT >= 8.5).
A raw engine (not a pickled module) is what the cache hashes and what TensorRT checks on load.

Supported torch-tensorrt: >= 2.5 (first release with that conversion function and ``arg_inputs``)
and < 2.14 (newest release read). Precision moved across those releases (read from their sources):

- 2.5 .. 2.9: weak typing; precision via ``enabled_precisions`` ({fp16} or {fp16, int8}).
- 2.10 .. 2.12: ``use_explicit_typing`` defaults to True and ``enabled_precisions`` other than
  fp32 is an error; precision comes from the model's and input's dtype.
- 2.13: both options removed; precision from dtypes only.

So the model is always converted in the dtype the engine should run (fp16 for fp16 and int8),
and ``enabled_precisions`` is passed only below 2.10. int8 needs NVIDIA ModelOpt: its quantiser
inserts Q/DQ nodes calibrated on frames (see runtime/calibration.py) before export.

Imports of torch_tensorrt, tensorrt and modelopt happen inside ``build`` only.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import torch

from hydranet_ros.errors import first_line
from hydranet_ros.runtime.choices import MAX_BATCH
from hydranet_ros.runtime.engines.base import Engine, EngineError

log = logging.getLogger(__name__)

SUPPORTED_RANGE = ((2, 5), (2, 14))  # [min, max) of torch-tensorrt (major, minor)
EXPLICIT_TYPING_FROM = (2, 10)
ENGINE_SUFFIX = ".engine"


def parse_version(text: str) -> tuple[int, int, int]:
    """'2.5.0a0+872d972e41.nv24.08' or '2.10.0.dev20250101+cu128' -> (2, 5, 0) / (2, 10, 0)."""
    match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match:
        raise EngineError(f"cannot read the torch-tensorrt version {text!r}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def check_supported(version: str) -> tuple[int, int, int]:
    parsed = parse_version(version)
    (lo_major, lo_minor), (hi_major, hi_minor) = SUPPORTED_RANGE
    if not (lo_major, lo_minor) <= parsed[:2] < (hi_major, hi_minor):
        raise EngineError(
            f"torch-tensorrt {version} is not supported: hydranet_ros supports >={lo_major}.{lo_minor},"
            f"<{hi_major}.{hi_minor} (their precision API changed across releases)"
        )
    return parsed


def engine_dtype(precision: str) -> torch.dtype:
    """The dtype the model and its input are converted in: int8 keeps fp16 where not quantised."""
    return {"fp32": torch.float32, "fp16": torch.float16, "int8": torch.float16}[precision]


def compile_kwargs(version: str, precision: str) -> dict:
    """The precision-related keyword arguments of the conversion call for this torch-tensorrt."""
    if precision not in ("fp32", "fp16", "int8"):
        raise EngineError(f"tensorrt runs fp32, fp16 or int8, not {precision}")
    parsed = check_supported(version)
    kwargs: dict = {"min_block_size": 1}
    if parsed[:2] < EXPLICIT_TYPING_FROM:
        kwargs["enabled_precisions"] = {
            "fp32": {torch.float32}, "fp16": {torch.float16}, "int8": {torch.float16, torch.int8},
        }[precision]
    # From 2.10 on: nothing to pass. Explicit typing is the default (and from 2.13 the only mode);
    # the dtypes of the weights and of the example input set the precision.
    return kwargs


class _TupleOutputs(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        return tuple(out[name] for name in self.names)


def output_order(names: list[str]) -> list[str]:
    """torch-tensorrt names engine outputs 'output0', 'output1', ... in the module's output order."""
    def index(name: str) -> int:
        match = re.fullmatch(r"output(\d+)", name)
        if not match:
            raise EngineError(f"unexpected TensorRT output name {name!r} (expected output<N>)")
        return int(match[1])

    return sorted(names, key=index)


class TensorRTEngine(Engine):
    name = "tensorrt"
    fixed_input_size = True

    def __init__(self, runner: "_TrtRunner", *, device: torch.device, precision: str, head_names: tuple[str, ...], engine_path: Path | None) -> None:
        super().__init__(device=device, precision=precision, channels_last=False)  # TensorRT wants linear NCHW
        self.runner = runner
        self.head_names = head_names
        self.engine_path = engine_path
        self.max_batch = runner.max_batch  # what the engine was built for (the pipeline splits larger batches)

    @property
    def dtype(self) -> torch.dtype:
        return self.runner.input_dtype

    def describe(self) -> dict[str, str]:
        described = {**super().describe(), "engine": str(self.engine_path) if self.engine_path else ""}
        if self.max_batch != 1:
            described["engine_batch"] = f"1..{self.max_batch}"
        return described

    @classmethod
    def build(cls, model, *, device, precision, input_size=None, weights_sha256="", calibration: str | None = None,
              calibration_frames: int = 64, cache_dir: str | None = None, max_batch: int = 1):
        if device.type != "cuda" or not torch.cuda.is_available():
            raise EngineError("the tensorrt backend needs a CUDA device")
        if input_size is None:
            raise EngineError("the tensorrt backend builds for one input size: set input_size (e.g. 640x480)")
        try:
            import tensorrt as trt
            import torch_tensorrt
        except ImportError as exc:
            raise EngineError(f"torch-tensorrt/TensorRT cannot be imported ({exc})") from None
        kwargs = compile_kwargs(torch_tensorrt.__version__, precision)  # refuses unsupported versions first
        max_batch = check_max_batch(max_batch)

        from hydranet_ros.model.checkpoints import weights_sha256 as hash_weights
        from hydranet_ros.runtime.engine_cache import EngineCache, gpu_identity, make_key

        width, height = input_size
        preset = model.preset
        batches = None
        versions = {"torch": torch.__version__, "torch_tensorrt": torch_tensorrt.__version__, "tensorrt": trt.__version__}
        gpu_name, capability = gpu_identity(device)
        cache = EngineCache(directory=cache_dir)

        def key_with(library_versions: dict[str, str]):
            return make_key(weights_sha256=weights_sha256 or hash_weights(model.state_dict()), input_size=input_size,
                            precision=precision, backend=cls.name, library_versions=library_versions,
                            gpu_name=gpu_name, compute_capability=capability, max_batch=max_batch)

        if precision == "int8":
            versions["modelopt"] = _modelopt_version()
            if calibration:
                from hydranet_ros.runtime.calibration import batches_digest, calibration_batches
                from hydranet_ros.runtime.calibration import calibration_frames as read_frames

                batches = calibration_batches(read_frames(calibration, limit=calibration_frames), size=input_size,
                                              mean=preset.mean, std=preset.std)
                versions["int8_calibration"] = batches_digest(batches)[:16]
            else:
                # The node has no frames to calibrate with: it uses the int8 engine that
                # `hydranet build-engine --calibration ...` built ahead, if one fits everything else.
                from hydranet_ros.runtime.engines.int8 import built_ahead_digest

                digest = built_ahead_digest(cache, key_with(versions), ENGINE_SUFFIX)
                entry = cache.load(key_with({**versions, "int8_calibration": digest}), ENGINE_SUFFIX) if digest else None
                if entry is None:
                    raise EngineError("tensorrt int8 needs calibration frames (a folder of images, a video or a rosbag2), "
                                      "or an int8 engine built ahead: hydranet build-engine --precision int8 --calibration DIR")
                versions["int8_calibration"] = digest
        key = key_with(versions)
        head_names = tuple(model.heads.keys())

        def build_engine(tmp: Path) -> None:
            log.warning("building a TensorRT %s engine for %dx%d%s on %s; this takes minutes on a Jetson "
                        "(`hydranet build-engine` does it ahead of time)", precision, width, height,
                        f", batch 1..{max_batch}" if max_batch > 1 else "", gpu_name)
            data = convert(model, device=device, precision=precision, input_size=input_size, kwargs=kwargs,
                           head_names=head_names, calibration=batches, max_batch=max_batch)
            tmp.write_bytes(data)

        for attempt in range(2):
            entry = cache.get_or_build(key, suffix=ENGINE_SUFFIX, build=build_engine, what="TensorRT engine")
            try:
                runner = _TrtRunner(trt, entry.path.read_bytes(), device=device)
                runner.check(shape=(1, 3, height, width), outputs=len(head_names), max_batch=max_batch)
            except EngineError as exc:
                if entry.built or attempt:
                    raise
                # Passed the file checks but TensorRT refuses it: rebuild once, never trust it.
                cache.invalidate(key, ENGINE_SUFFIX, str(exc))
                continue
            return cls(runner, device=device, precision=precision, head_names=head_names, engine_path=entry.path)
        raise AssertionError("unreachable")

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.runner(image)
        return dict(zip(self.head_names, outputs))


def _modelopt_version() -> str:
    try:
        from importlib import metadata

        return metadata.version("nvidia-modelopt")
    except Exception:
        return "absent"


def check_max_batch(max_batch: object) -> int:
    """The engine's largest batch (cameras per network pass), or an EngineError saying why not."""
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not 1 <= max_batch <= MAX_BATCH:
        raise EngineError(f"max_batch must be an integer 1..{MAX_BATCH} (cameras per network pass), got {max_batch!r}")
    return max_batch


def batch_dimension(max_batch: int) -> torch.export.Dim | None:
    """torch.export's symbol for a dynamic batch 1..max_batch, or None for a fixed batch of one."""
    return torch.export.Dim("batch", min=1, max=max_batch) if max_batch > 1 else None


def export_program(wrapper: torch.nn.Module, example: torch.Tensor, max_batch: int, **export_kwargs):
    """torch.export of the wrapped model at ``example``'s shape; the batch dimension dynamic
    (1..max_batch) when max_batch > 1. Runs without TensorRT, so a test checks the model exports
    with a symbolic batch on any machine."""
    batch = batch_dimension(max_batch)
    dynamic = {"image": {0: batch}} if batch is not None else None
    return torch.export.export(wrapper, (example,), dynamic_shapes=dynamic, **export_kwargs)


def trt_input_spec(torch_tensorrt, example: torch.Tensor, max_batch: int):
    """What the conversion takes as ``arg_inputs``: the example itself for a fixed batch, else a
    torch_tensorrt.Input with TensorRT's optimisation profile min 1, opt and max ``max_batch``."""
    if max_batch == 1:
        return example
    frame = tuple(example.shape[1:])
    return torch_tensorrt.Input(min_shape=(1, *frame), opt_shape=(max_batch, *frame), max_shape=(max_batch, *frame),
                                dtype=example.dtype)


def convert(model, *, device, precision, input_size, kwargs, head_names, calibration, max_batch: int = 1) -> bytes:
    """Folded model -> serialized TensorRT engine bytes (needs torch_tensorrt)."""
    import torch_tensorrt

    from hydranet_ros.model.fold import fold_batchnorm

    width, height = input_size
    dtype = engine_dtype(precision)
    folded = fold_batchnorm(copy.deepcopy(model).float().eval()).to(device=device, dtype=dtype)
    wrapper = _TupleOutputs(folded, head_names).eval()
    # Traced at the top of the batch range: a traced size of 1 would be specialised, not symbolic.
    example = torch.zeros(max_batch, 3, height, width, device=device, dtype=dtype)
    try:
        with torch.no_grad():
            if precision == "int8":
                program = _quantize_and_export(wrapper, example, calibration, device=device, dtype=dtype, max_batch=max_batch)
            else:
                program = export_program(wrapper, example, max_batch)
            return torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine(
                program, arg_inputs=[trt_input_spec(torch_tensorrt, example, max_batch)], device=device, **kwargs,
            )
    except EngineError:
        raise
    except Exception as exc:  # TensorRT/torch-tensorrt raise many unrelated types
        raise EngineError(f"TensorRT build failed: {type(exc).__name__}: {first_line(exc)}") from exc


def _quantize_and_export(wrapper, example, batches, *, device, dtype, max_batch=1):
    try:
        import modelopt.torch.quantization as mtq
        from modelopt.torch.quantization.utils import export_torch_mode
    except ImportError:
        raise EngineError("tensorrt int8 needs NVIDIA ModelOpt (pip install nvidia-modelopt)") from None

    def forward_loop(model):
        for batch in batches:
            model(batch.to(device=device, dtype=dtype))

    mtq.quantize(wrapper, mtq.INT8_DEFAULT_CFG, forward_loop=forward_loop)
    with export_torch_mode():
        return export_program(wrapper, example, max_batch, strict=False)


class _TrtRunner:
    """A deserialised engine, its execution context and static output buffers.

    A fixed-batch engine has one set of output buffers, bound once. A dynamic-batch engine
    (input dimension 0 is -1, its range in optimisation profile 0) gets one set per batch size
    in use, sized by the context once the input shape is set, and rebound when the size changes.
    """

    def __init__(self, trt, data: bytes, *, device: torch.device) -> None:
        self.device = device
        # Deserialise, make the context and its buffers on our device, not whichever is current.
        with torch.cuda.device(device):
            self._load(trt, data)

    def _load(self, trt, data: bytes) -> None:
        device = self.device
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise EngineError("TensorRT cannot deserialise the engine (built by another TensorRT or GPU, or damaged)")
        self.engine = engine
        self.context = engine.create_execution_context()
        if self.context is None:  # TensorRT could not allocate the activations
            raise EngineError("TensorRT could not create an execution context (out of GPU memory?)")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise EngineError(f"TensorRT engine has {len(inputs)} inputs, expected 1")
        self.input_name = inputs[0]
        self.input_shape = tuple(engine.get_tensor_shape(self.input_name))
        self.input_dtype = _torch_dtype(trt, engine.get_tensor_dtype(self.input_name))
        self.output_names = output_order([n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT])
        self._output_dtypes = [_torch_dtype(trt, engine.get_tensor_dtype(name)) for name in self.output_names]
        self.dynamic = self.input_shape[0] == -1
        if self.dynamic:
            low, _, high = (tuple(shape) for shape in engine.get_tensor_profile_shape(self.input_name, 0))
            self.min_batch, self.max_batch = int(low[0]), int(high[0])
            if tuple(low[1:]) != tuple(high[1:]) or any(v < 0 for v in high[1:]):
                raise EngineError(f"TensorRT engine's input varies in more than the batch ({low} .. {high})")
            self.frame_shape = tuple(high[1:])
        else:
            self.min_batch = self.max_batch = int(self.input_shape[0])
            self.frame_shape = self.input_shape[1:]
        self._buffers: dict[int, list[torch.Tensor]] = {}
        self._bound: int | None = None
        self.outputs: list[torch.Tensor] = []
        if not self.dynamic:
            self.outputs = self._outputs_for(self.max_batch)

    def _outputs_for(self, batch: int) -> list[torch.Tensor]:
        """The static output buffers for a batch of ``batch`` frames, bound to the context."""
        buffers = self._buffers.get(batch)
        if buffers is None:
            source = self.context if self.dynamic else self.engine  # the context knows the shapes once the input's is set
            buffers = [torch.empty(tuple(source.get_tensor_shape(name)), dtype=dtype, device=self.device)
                       for name, dtype in zip(self.output_names, self._output_dtypes)]
            self._buffers[batch] = buffers
            self._bound = None
        if self._bound != batch:
            for name, buffer in zip(self.output_names, buffers):
                self._bind(name, buffer)
            self._bound = batch
        return buffers

    def _bind(self, name: str, tensor: torch.Tensor) -> None:
        if not self.context.set_tensor_address(name, tensor.data_ptr()):
            raise EngineError(f"TensorRT refused the buffer for {name!r} ({tuple(tensor.shape)} {tensor.dtype})")

    def check(self, *, shape: tuple[int, ...], outputs: int, max_batch: int = 1) -> None:
        """The engine's own metadata against what we asked for: a mismatch is a stale engine.
        ``shape`` is one frame's input (1, 3, H, W); ``max_batch`` the batch range's top (a
        dynamic 1..max_batch engine when above 1, a fixed batch of one otherwise)."""
        frame = tuple(shape[1:])
        if max_batch == 1:
            if self.dynamic or self.input_shape != (1, *frame):
                raise EngineError(f"TensorRT engine takes {self._describe()}, expected {(1, *frame)}")
        elif not self.dynamic or self.frame_shape != frame or (self.min_batch, self.max_batch) != (1, max_batch):
            raise EngineError(f"TensorRT engine takes {self._describe()}, expected a batch of 1..{max_batch} of {frame}")
        if len(self.output_names) != outputs:
            raise EngineError(f"TensorRT engine has {len(self.output_names)} outputs, expected {outputs}")

    def _describe(self) -> str:
        if self.dynamic:
            return f"a batch of {self.min_batch}..{self.max_batch} of {self.frame_shape}"
        return str(self.input_shape)

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        batch = int(image.shape[0])
        if tuple(image.shape[1:]) != self.frame_shape or not self.min_batch <= batch <= self.max_batch:
            raise EngineError(f"TensorRT engine built for {self._describe()}, got {tuple(image.shape)}")
        image = image.to(device=self.device, dtype=self.input_dtype).contiguous()
        if self.dynamic and not self.context.set_input_shape(self.input_name, tuple(image.shape)):
            raise EngineError(f"TensorRT refused the input shape {tuple(image.shape)}")
        outputs = self._outputs_for(batch)
        self._bind(self.input_name, image)
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise EngineError("TensorRT execution failed")
        # The input must stay alive until the kernels consumed it; the caller's stream order does that
        # as long as the tensor is not freed: keep a reference until the next call.
        self._last_input = image
        return outputs


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT8: torch.int8,
             trt.DataType.INT32: torch.int32, trt.DataType.BOOL: torch.bool}
    if hasattr(trt.DataType, "BF16"):
        table[trt.DataType.BF16] = torch.bfloat16
    try:
        return table[dtype]
    except KeyError:
        raise EngineError(f"TensorRT engine uses an unsupported I/O type {dtype}") from None
