"""What a pipeline can be asked for: one table of backends, and the one check of a request.

Imports nothing heavy, so the ROS parameter table and the launch file (which must not load torch)
share these lists with the pipeline instead of keeping copies that drift. ``problems`` is the only
place that decides whether a backend, device, precision and engine options make sense; the
pipeline's config, the fallback logic and ``create_engine`` all ask it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Mapping

AUTO = "auto"  # the fastest engine installed for the device (see fallback.auto_candidates)
DEVICES = ("auto", "cuda", "cpu")  # and "cuda:N"
PRECISIONS = ("fp32", "fp16", "int8")
OUTPUT_SIZES = ("network", "input")
MIN_INPUT_SIDE = 32  # the encoder downsamples 32x; anything smaller has no feature map left
MAX_INPUT_SIDE = 8192  # beyond this a single frame would not fit in a Jetson's memory anyway
# The largest camera frame decoded by default (4K UHD), checked from the header before decoding:
# the node's max_input_pixels and the --max-pixels of `hydranet infer` and `hydranet bag`.
MAX_FRAME_PIXELS = 3840 * 2160
MAX_BATCH = 64  # cameras through one network pass: more than any robot carries


@dataclass(frozen=True)
class BackendSpec:
    """One inference backend: where it runs, in which precisions, and which engine options its
    ``build`` takes. ``module`` names the engine class ("module:Class"), imported only when used;
    ``requires`` names the Python module whose presence means the runtime is installed."""

    name: str
    module: str
    precisions: Mapping[str, tuple[str, ...]]  # device type ("cpu", "cuda") -> precisions it runs there
    options: tuple[str, ...] = ()
    requires: str | None = None
    fixed_input_size: bool = False  # built for one input shape: needs input_size set

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self.precisions)

    def runs(self, device: str, precision: str) -> bool:
        return precision in self.precisions.get(device, ())


_INT8_OPTIONS = ("calibration", "calibration_frames", "cache_dir")

ENGINES: dict[str, BackendSpec] = {spec.name: spec for spec in (
    BackendSpec("torch", "hydranet_ros.runtime.engines.torch_engine:TorchEngine",
                {"cpu": ("fp32",), "cuda": ("fp32", "fp16")}, options=("compile", "cudnn_benchmark")),
    BackendSpec("cuda-graph", "hydranet_ros.runtime.engines.cuda_graph_engine:CudaGraphEngine",
                {"cuda": ("fp32", "fp16")}),
    BackendSpec("tensorrt", "hydranet_ros.runtime.engines.tensorrt_engine:TensorRTEngine",
                {"cuda": ("fp32", "fp16", "int8")}, options=(*_INT8_OPTIONS, "max_batch"), requires="torch_tensorrt",
                fixed_input_size=True),
    BackendSpec("onnxruntime", "hydranet_ros.runtime.engines.onnxruntime_engine:OnnxRuntimeEngine",
                {"cpu": ("fp32", "int8")}, options=(*_INT8_OPTIONS, "threads", "max_batch"), requires="onnxruntime"),
    BackendSpec("openvino", "hydranet_ros.runtime.engines.openvino_engine:OpenVinoEngine",
                {"cpu": ("fp32", "int8")}, options=(*_INT8_OPTIONS, "threads", "max_batch"), requires="openvino"),
)}

BACKENDS = (AUTO, *ENGINES)  # what a user may ask for


def installed_backends() -> frozenset[str]:
    """The backends whose runtime can be imported here (found, not imported: importing
    TensorRT or OpenVINO costs seconds)."""
    return frozenset(name for name, spec in ENGINES.items()
                     if spec.requires is None or importlib.util.find_spec(spec.requires) is not None)


def build_size(backend: str, request: tuple[int, int] | None) -> tuple[int, int] | None:
    """The input size ``backend``'s engine is built for, from the pipeline's requested size.

    A fixed-size engine (TensorRT) gets the request rounded up to the stride (32): the pipeline
    fits each frame inside and pads it to exactly that (geometry.plan_input with fill_request).
    Any other engine takes each frame at the size the pipeline plans for it and gets the request
    itself: its int8 calibration plans its frames with it, as the pipeline plans camera frames."""
    if request is None or not ENGINES[backend].fixed_input_size:
        return request
    from hydranet_ros.runtime.geometry import round_up  # numpy: not for the launch process, which never builds

    return tuple(round_up(side) for side in request)


def options_of(backend: str) -> tuple[str, ...]:
    """The engine options ``backend`` takes; for ``auto`` any candidate's (each engine gets its own)."""
    if backend == AUTO:
        return tuple(sorted({option for spec in ENGINES.values() for option in spec.options}))
    return ENGINES[backend].options


def problems(*, backend: str, device: str, precision: str, options: object = None) -> list[str]:
    """Everything wrong with a request, as one-line reasons; [] if it is well formed. Whether it
    can run *here* (CUDA present, runtime installed) is fallback.choose_runtime's question."""
    found = []
    if backend not in BACKENDS:
        found.append(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if not isinstance(device, str) or (device not in DEVICES and not _is_cuda_index(device)):
        found.append(f"device {device!r} is not one of {', '.join(DEVICES)} or cuda:N")
    if precision not in PRECISIONS:
        found.append(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if options is None:
        return found
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        found.append(f"engine_options must map option names to values, not {options!r}")
    elif backend in BACKENDS and (unknown := sorted(set(options) - set(options_of(backend)))):
        # A misspelt option is a configuration error, never a build failure to fall back from.
        known = ", ".join(options_of(backend)) or "none"
        found.append(f"backend {backend} has no option {', '.join(unknown)} (it has: {known})")
    return found


def _is_cuda_index(device: str) -> bool:
    prefix, _, index = device.partition(":")
    return prefix == "cuda" and index.isdigit()
