"""OpenVINO on the CPU: the ONNX export read into OpenVINO IR (fp32), or quantised by NNCF (int8).

fp32: the cached ONNX export (onnx_export.cached_onnx) converted to OpenVINO's IR, kept in the
engine cache, compiled for the CPU plugin with ``INFERENCE_PRECISION_HINT=f32``: on CPUs with bf16
or AMX the plugin would otherwise run "fp32" in bf16 by default, far from torch's logits.

int8: NNCF post-training quantisation of that IR (``nncf.quantize``, the mixed preset: symmetric
int8 weights per channel, asymmetric activations per tensor, ranges from calibration frames
prepared as the pipeline prepares a camera frame), with the overflow fix on every layer (weights in
7 bits): CPUs without VNNI (AVX2 x86, like the development machine) multiply uint8 x int8 pairs into
saturating 16-bit sums, and with 8-bit weights the labels on the real frames fell from 98.9 % to
96.2 % agreement with fp32. ``FP32_SCOPE`` stays fp32 (see there why). The
quantised IR must pass the accuracy gate (engines/int8.py) on held-out frames before it is cached,
and its cache key holds the CPU's instruction sets: the gate ran on this CPU's int8 kernels.

IR is two files (XML graph, binary weights); the cache keeps one artifact per key, so they are
packed into one file: a magic line, the XML's length, the XML, the weights.

openvino and nncf are imported inside ``build`` only.
"""

from __future__ import annotations

import itertools
import logging
import struct
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from hydranet_ros.errors import first_line
from hydranet_ros.runtime.engines import int8
from hydranet_ros.runtime.engines.base import Engine, EngineError, cpu_lanes, cpu_threads

log = logging.getLogger(__name__)

# What stays fp32, chosen on the shipped model at 640x480 (benchmarks/sweep_int8_scope.py: every
# candidate calibrated on the same 48 synthetic street frames, judged on the three real sample
# frames, labels equal to fp32 / depth median relative error, forward timed in one interleaved run;
# figures in the README's CPU section):
# - the encoder's first three stages (layer1-3: the stem and the stride-2 and stride-4 inverted
#   residuals; few channels at high resolution, 12 % of the FLOPs), whose activations move most
#   between camera images and the calibration frames: 97.58 % / 1.87 % -> 98.47 % / 1.05 % (with
#   the mixed preset), the int8 forward as fast as before within the run's noise;
# - the heads' last convolutions, which write the logits and the depth the gate judges (7 %).
# Tried and not kept: the heads' depthwise "pre", the last decoder stage (crp1), the stride-8
# decoder stage, every depthwise convolution, min-max or histogram activation ranges, full bias
# correction (97.6-97.9 %, several of them much slower); the whole decoder in fp32 (98.17 %, but
# no faster than fp32).
FP32_SCOPE = (r"/model/(segm|depth|normals)/out/Conv.*", r"/model/encoder/layer[123]/.*")
# The mixed preset: activations asymmetric (ranges need not straddle zero), weights symmetric.
# Measured with the scope above against the performance preset's symmetric activations: +0.2-0.4
# points of labels on the real frames, no slower.
# Part of the int8 model's cache key: a model quantised with another scope or preset is rebuilt.
RECIPE = "mixed;" + ";".join(FP32_SCOPE)
SUFFIX = ".ovir"
MAGIC = b"hydranet_ros openvino-ir/1\n"


class OpenVinoEngine(Engine):
    name = "openvino"

    def __init__(self, compiled, *, precision: str, head_names: tuple[str, ...], model_path: Path, gate: dict | None,
                 lane_models: tuple = (), lane_threads: int = 1) -> None:
        super().__init__(device=torch.device("cpu"), precision=precision, channels_last=False)  # IR takes NCHW
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        # Several cameras: the same IR compiled once more per lane with the lane's threads, each
        # lane thread running its own model's request (made on its first frame). One model with a
        # stream per lane did the same work 4 % slower on the 2-core machine (4 frames at 640x480
        # on 2 lanes: 620 against 594 ms median, one interleaved run).
        self.lane_models = tuple(lane_models)
        self.lanes = max(1, len(self.lane_models))
        self.lane_threads = lane_threads if self.lane_models else 1
        self._lane = threading.local()
        self._next_lane = itertools.count()
        # Each lane's first inference runs alone. Two lanes' first calls at once deadlocked in the
        # Python bindings (2026-11-29, gdb: one thread holding the GIL blocked on a C++ static's
        # initialisation guard, the other inside that initialisation waiting for the GIL), and
        # hung a test's process; once initialised, calls run in parallel as before.
        self._first_call = threading.Lock()
        names = [output.get_any_name() for output in compiled.outputs]
        missing = set(head_names) - set(names)
        if missing:
            raise EngineError(f"OpenVINO model lacks the outputs {', '.join(sorted(missing))} (has {', '.join(names)})")
        self._outputs = [(name, names.index(name)) for name in head_names]
        self.model_path = model_path
        self.gate = gate

    def describe(self) -> dict[str, str]:
        return int8.describe_with_gate(super().describe(), self.model_path, self.gate)

    @classmethod
    def build(cls, model, *, device, precision, input_size=None, weights_sha256="", calibration: str | None = None,
              calibration_frames: int = 64, cache_dir: str | None = None, threads: int = 0, max_batch: int = 1):
        int8.check_cpu_build("openvino", device, precision)
        try:
            import openvino as ov
        except ImportError as exc:
            raise EngineError(f"openvino cannot be imported ({exc}); pip install hydranet_ros[openvino]") from None
        from hydranet_ros.model.checkpoints import weights_sha256 as hash_weights
        from hydranet_ros.runtime.engine_cache import EngineCache, make_key
        from hydranet_ros.runtime.engines.onnx_export import cached_onnx

        weights_sha256 = weights_sha256 or hash_weights(model.state_dict())
        cache = EngineCache(directory=cache_dir)
        head_names = tuple(model.heads.keys())
        core = ov.Core()
        config = compile_config(cpu_threads(threads))
        lanes = cpu_lanes(max_batch, cpu_threads(threads))
        # A dynamic height and width whatever the size: the pipeline feeds each frame at the size it
        # plans for it (padded to the stride only), as it feeds the torch engine. Measured on the
        # shared 2-core machine at 640x480, a dynamic IR ran as fast as one reshaped to that shape
        # (1295 against 1356 ms, one interleaved run under load), so there is one compiled model.
        fp32_key = make_key(weights_sha256=weights_sha256, input_size=None, precision="fp32", backend="openvino",
                            library_versions=versions())

        def convert(tmp: Path) -> None:
            onnx_path = cached_onnx(model, weights_sha256=weights_sha256, input_size=None, cache=cache)
            tmp.write_bytes(pack(ov, _call(lambda: core.read_model(str(onnx_path)), "cannot read the ONNX export")))

        fp32 = _cached_or_rebuilt(cache, fp32_key, convert, "OpenVINO IR")
        if precision == "fp32":
            return cls(_compile(core, fp32.path, config), precision="fp32", head_names=head_names, model_path=fp32.path,
                       gate=None, lane_models=_lane_models(core, fp32.path, lanes), lane_threads=lanes[1])
        if input_size is None:
            raise EngineError("openvino int8 is calibrated for one input size: set input_size (e.g. 640x480)")
        entry = _int8_model(core, model, fp32.path, cache=cache, weights_sha256=weights_sha256, input_size=input_size,
                            calibration=calibration, frames=calibration_frames, config=config)
        return cls(_compile(core, entry.path, config), precision="int8", head_names=head_names, model_path=entry.path,
                   gate=entry.extra, lane_models=_lane_models(core, entry.path, lanes), lane_threads=lanes[1])

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        # share_inputs: OpenVINO reads the tensor's memory instead of copying it. The outputs are
        # the request's own buffers (no copy), valid until the next call: the pipeline finishes
        # post-processing a frame before it runs the next.
        return self._infer(self.request, image)

    def run_in_lane(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.lane_models:
            return super().run_in_lane(image)
        request = getattr(self._lane, "request", None)
        if request is None:  # this thread's own request: its outputs are overwritten by its next frame only
            with self._first_call:
                model = self.lane_models[next(self._next_lane) % len(self.lane_models)]
                request = self._lane.request = model.create_infer_request()
                return self._infer(request, image)
        return self._infer(request, image)

    def _infer(self, request, image: torch.Tensor) -> dict[str, torch.Tensor]:
        request.infer({0: image.contiguous().numpy()}, share_inputs=True)
        return {name: torch.from_numpy(request.get_output_tensor(index).data) for name, index in self._outputs}


def compile_config(threads: int) -> dict:
    return {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",  # one frame at a time, as a camera delivers them
        "INFERENCE_PRECISION_HINT": "f32",  # never bf16 behind our back (see the module docstring)
        **NOT_PINNED,
    }


# The CPU plugin pins its threads to cores by default, each process on its own: two single-camera
# nodes with one thread each both pinned theirs to the same core (4 such processes on the 2-core
# machine used 1.0 core between them, benchmarks/bench_multicam.py). A robot's computer runs
# other nodes too; the OS scheduler places our threads. Pinning gained nothing for one process
# (640x480, 2 threads: 142.2 against 141.3 ms median unpinned, one interleaved run).
NOT_PINNED = {"ENABLE_CPU_PINNING": False}


def versions() -> dict[str, str]:
    from hydranet_ros.runtime.engine_cache import installed_versions

    return installed_versions(("torch", "onnx", "openvino"))


def pack(ov, model) -> bytes:
    """An ov.Model as one blob: MAGIC, XML length (8 bytes, little-endian), XML, weights."""
    with tempfile.TemporaryDirectory(prefix="hydranet-ovir-") as folder:
        xml = Path(folder) / "model.xml"
        # compress_to_fp16=False: the default stores fp32 weights as fp16, which moves the logits
        # by ~1e-3, ten times more than the fp32 engines may differ from torch.
        _call(lambda: ov.save_model(model, str(xml), compress_to_fp16=False), "cannot write the IR")
        graph, weights = xml.read_bytes(), xml.with_suffix(".bin").read_bytes()
    return MAGIC + struct.pack("<Q", len(graph)) + graph + weights


def unpack(data: bytes) -> tuple[bytes, bytes]:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise EngineError("not a packed OpenVINO IR")
    start = len(MAGIC) + 8
    (length,) = struct.unpack("<Q", data[len(MAGIC):start])
    if start + length > len(data):
        raise EngineError("packed OpenVINO IR is truncated")
    return data[start:start + length], data[start + length:]


def read_packed(core, path: Path):
    graph, weights = unpack(path.read_bytes())
    return _call(lambda: core.read_model(graph, weights), f"cannot read {path}")


def _lane_models(core, path: Path, lanes: tuple[int, int]) -> tuple:
    """(lanes, threads per lane): the IR compiled once per lane with that lane's threads."""
    count, threads = lanes
    return tuple(_compile(core, path, compile_config(threads)) for _ in range(count)) if count > 1 else ()


def _compile(core, path: Path, config: dict):
    model = read_packed(core, path)
    return _call(lambda: core.compile_model(model, "CPU", config), f"cannot compile {path} for the CPU")


def _call(fn, what: str):
    try:
        return fn()
    except EngineError:
        raise
    except Exception as exc:  # OpenVINO raises RuntimeError and its own types alike
        raise EngineError(f"OpenVINO {what}: {type(exc).__name__}: {first_line(exc)}") from exc


def _cached_or_rebuilt(cache, key, build, what: str):
    """The cached artifact, checked once more by reading it: one that passes the file checks but
    that OpenVINO refuses is rebuilt once, never trusted."""
    import openvino as ov

    for attempt in range(2):
        entry = cache.get_or_build(key, suffix=SUFFIX, build=build, what=what)
        try:
            read_packed(ov.Core(), entry.path)
            return entry
        except EngineError as exc:
            if entry.built or attempt:
                raise
            cache.invalidate(key, SUFFIX, str(exc))
    raise AssertionError("unreachable")


def _int8_model(core, model, fp32_path: Path, *, cache, weights_sha256, input_size, calibration, frames, config):
    from hydranet_ros.runtime.engine_cache import cpu_identity, installed_versions, make_key

    def key_with(library_versions):
        return make_key(weights_sha256=weights_sha256, input_size=input_size, precision="int8", backend="openvino",
                        library_versions=library_versions, cpu_flags=cpu_identity())

    base = {**versions(), **installed_versions(("nncf",)), "int8_recipe": RECIPE}
    if not calibration:
        digest = int8.built_ahead_digest(cache, key_with(base), SUFFIX)
        entry = cache.load(key_with({**base, "int8_calibration": digest}), SUFFIX) if digest else None
        if entry is None:
            raise int8.no_calibration_error("openvino")
        return entry
    data = int8.int8_frames(calibration, frames=frames, size=input_size, mean=model.preset.mean, std=model.preset.std)
    key = key_with({**base, "int8_calibration": data.digest[:16]})

    def build(tmp: Path) -> dict:
        import openvino as ov

        log.warning("quantising the OpenVINO model to int8 for %dx%d on %d calibration frames with NNCF (once; cached)",
                    *input_size, len(data.calibration))
        quantised = quantise(read_packed(core, fp32_path), data.calibration)
        tmp.write_bytes(pack(ov, quantised))
        fp32 = _compile(core, fp32_path, config)
        figures = int8.measure_gate(_forward(_compile(core, tmp, config)), _forward(fp32), data.held_out)
        int8.check_gate(figures, "the openvino int8 model")
        return figures.as_dict()

    return _cached_or_rebuilt(cache, key, build, "OpenVINO int8 model")


def quantise(ov_model, frames: list[np.ndarray]):
    try:
        import nncf
    except ImportError as exc:
        raise EngineError(f"openvino int8 needs NNCF ({exc}); pip install hydranet_ros[openvino]") from None
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    try:
        return nncf.quantize(
            ov_model, nncf.Dataset(frames), subset_size=len(frames), preset=nncf.QuantizationPreset.MIXED,
            ignored_scope=nncf.IgnoredScope(patterns=list(FP32_SCOPE), validate=False),
            advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE),
        )
    except Exception as exc:
        raise EngineError(f"NNCF int8 quantisation failed: {type(exc).__name__}: {first_line(exc)}") from exc


def _forward(compiled):
    names = [output.get_any_name() for output in compiled.outputs]

    def run(frame: np.ndarray) -> dict[str, np.ndarray]:
        result = compiled({0: frame})
        return {name: np.array(result[index]) for index, name in enumerate(names)}

    return run
