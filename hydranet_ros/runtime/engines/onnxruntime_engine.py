"""ONNX Runtime on the CPU: the exported ONNX (fp32), or a statically quantised QDQ copy (int8).

fp32 runs the cached ONNX export (onnx_export.cached_onnx: BN folded, opset 17) with every graph
optimisation on. int8 quantises that file with ONNX Runtime's static post-training quantisation in
QDQ form: weights int8 per output channel, activations uint8 per tensor, ranges measured on
calibration frames prepared exactly as the pipeline prepares a camera frame (runtime/calibration).
Weights use 7 bits (``reduce_range``): on CPUs without VNNI (AVX2 x86) uint8 x int8 products are
summed in saturating 16-bit pairs, which 8-bit weights overflow.
``FP32_PREFIXES`` and ``FP32_NODES`` stay in fp32 (see there why). The quantised model must pass the accuracy gate
(engines/int8.py) on held-out frames before it is cached; the gate figures travel in its cache
metadata.

onnxruntime is imported inside ``build`` only (choosing another backend never loads it).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

from hydranet_ros.errors import first_line
from hydranet_ros.runtime.engines import int8
from hydranet_ros.runtime.engines.base import Engine, EngineError, cpu_lanes, cpu_threads

log = logging.getLogger(__name__)

# What stays fp32, as in the OpenVINO engine (see FP32_SCOPE there for the measurements): every
# node of the encoder's first three stages, whose activations camera images move most, and the
# heads' last convolutions, which write the logits and depth the gate judges. Everything else runs
# in int8 (activations are asymmetric uint8 here, like NNCF's mixed preset).
FP32_PREFIXES = ("/model/encoder/layer1/", "/model/encoder/layer2/", "/model/encoder/layer3/")
FP32_NODES = ("/model/segm/out/Conv", "/model/depth/out/Conv", "/model/normals/out/Conv")
RECIPE = ";".join(FP32_PREFIXES + FP32_NODES)  # in the int8 model's cache key


def fp32_nodes(model_nodes: set[str]) -> list[str]:
    """The nodes of ``model_nodes`` that stay fp32."""
    return sorted(n for n in model_nodes if n in FP32_NODES or n.startswith(FP32_PREFIXES))


INT8_SUFFIX = ".int8.onnx"


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, session, *, precision: str, head_names: tuple[str, ...], model_path: Path, gate: dict | None,
                 lanes_session=None, lanes: tuple[int, int] = (1, 1)) -> None:
        super().__init__(device=torch.device("cpu"), precision=precision, channels_last=False)  # ONNX wants NCHW
        self.session = session
        # Several cameras: a second session of the same model with a lane's threads, run from each
        # lane thread at once (InferenceSession.run is thread-safe; each run gets its own threads).
        self.lanes_session = lanes_session
        self.lanes, self.lane_threads = lanes if lanes_session is not None else (1, 1)
        self.head_names = head_names
        self.model_path = model_path
        self.gate = gate
        self._input = session.get_inputs()[0].name

    def describe(self) -> dict[str, str]:
        return int8.describe_with_gate(super().describe(), self.model_path, self.gate)

    @classmethod
    def build(cls, model, *, device, precision, input_size=None, weights_sha256="", calibration: str | None = None,
              calibration_frames: int = 64, cache_dir: str | None = None, threads: int = 0, max_batch: int = 1):
        int8.check_cpu_build("onnxruntime", device, precision)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineError(f"onnxruntime cannot be imported ({exc}); pip install hydranet_ros[onnxruntime]") from None
        from hydranet_ros.model.checkpoints import weights_sha256 as hash_weights
        from hydranet_ros.runtime.engine_cache import EngineCache
        from hydranet_ros.runtime.engines.onnx_export import cached_onnx

        weights_sha256 = weights_sha256 or hash_weights(model.state_dict())
        cache = EngineCache(directory=cache_dir)
        head_names = tuple(model.heads.keys())
        # Exported with a dynamic height and width whatever the size: the pipeline feeds each frame
        # at the size it plans for it (padded to the stride only), as it feeds the torch engine.
        fp32_path = cached_onnx(model, weights_sha256=weights_sha256, input_size=None, cache=cache)
        options = _session_options(ort, cpu_threads(threads))
        lanes = cpu_lanes(max_batch, cpu_threads(threads))

        def sessions(path: Path) -> dict:
            lane = _session(ort, path, _session_options(ort, lanes[1])) if lanes[0] > 1 else None
            return {"session": _session(ort, path, options), "lanes_session": lane, "lanes": lanes}

        if precision == "fp32":
            return cls(**sessions(fp32_path), precision="fp32", head_names=head_names, model_path=fp32_path, gate=None)
        if input_size is None:
            raise EngineError("onnxruntime int8 is calibrated for one input size: set input_size (e.g. 640x480)")
        entry = _int8_model(ort, model, fp32_path, cache=cache, weights_sha256=weights_sha256, input_size=input_size,
                            calibration=calibration, frames=calibration_frames, options=options)
        return cls(**sessions(entry.path), precision="int8", head_names=head_names, model_path=entry.path, gate=entry.extra)

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._run(self.session, image)

    def run_in_lane(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.lanes_session is None:
            return super().run_in_lane(image)
        return self._run(self.lanes_session, image)

    def _run(self, session, image: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = session.run(list(self.head_names), {self._input: image.contiguous().numpy()})
        return {name: torch.from_numpy(value) for name, value in zip(self.head_names, outputs)}


def _session_options(ort, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one chain of operators: parallelism is inside each
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are noise
    # Idle threads sleep instead of spinning: the pipeline's own post-processing runs right after
    # the forward on the same cores (at 640x480 on the shared 2-core machine it took 65-79 ms of
    # host time after a forward with spinning off, 100-104 ms with it on, one interleaved run).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _session(ort, path: Path, options):
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a damaged file
        raise EngineError(f"onnxruntime cannot load {path}: {type(exc).__name__}: {first_line(exc)}") from exc


def versions() -> dict[str, str]:
    from hydranet_ros.runtime.engine_cache import installed_versions

    return installed_versions(("torch", "onnx", "onnxruntime"))


def _int8_model(ort, model, fp32_path: Path, *, cache, weights_sha256, input_size, calibration, frames, options):
    from hydranet_ros.runtime.engine_cache import cpu_identity, make_key

    def key_with(library_versions):
        return make_key(weights_sha256=weights_sha256, input_size=input_size, precision="int8", backend="onnxruntime",
                        library_versions=library_versions, cpu_flags=cpu_identity())

    base = {**versions(), "int8_recipe": RECIPE}
    if not calibration:
        digest = int8.built_ahead_digest(cache, key_with(base), INT8_SUFFIX)
        entry = cache.load(key_with({**base, "int8_calibration": digest}), INT8_SUFFIX) if digest else None
        if entry is None:
            raise int8.no_calibration_error("onnxruntime")
        return entry
    data = int8.int8_frames(calibration, frames=frames, size=input_size, mean=model.preset.mean, std=model.preset.std)
    key = key_with({**base, "int8_calibration": data.digest[:16]})

    def build(tmp: Path) -> dict:
        log.warning("quantising the ONNX model to int8 for %dx%d on %d calibration frames (once; cached)",
                    *input_size, len(data.calibration))
        quantise(fp32_path, tmp, data.calibration, model_nodes=_node_names(fp32_path))
        fp32, quantised = _session(ort, fp32_path, options), _session(ort, tmp, options)
        figures = int8.measure_gate(_forward(quantised), _forward(fp32), data.held_out)
        int8.check_gate(figures, "the onnxruntime int8 model")
        return figures.as_dict()

    return cache.get_or_build(key, suffix=INT8_SUFFIX, build=build, what="onnxruntime int8 model")


def quantise(fp32_path: Path, out_path: Path, frames: list[np.ndarray], *, model_nodes: set[str]) -> None:
    """Static QDQ quantisation of ``fp32_path`` into ``out_path``, calibrated on ``frames``."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._frames = iter(frames)

        def get_next(self):
            frame = next(self._frames, None)
            return None if frame is None else {"image": frame}

    try:
        with _without_preprocessing_advice():
            quantize_static(
                str(fp32_path), str(out_path), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                reduce_range=True,  # 7-bit weights: no saturating 16-bit sums on CPUs without VNNI (see above)
                nodes_to_exclude=fp32_nodes(model_nodes),
            )
    except Exception as exc:
        raise EngineError(f"onnxruntime int8 quantisation failed: {type(exc).__name__}: {first_line(exc)}") from exc


@contextlib.contextmanager
def _without_preprocessing_advice():
    """quantize_static advises (twice, on the root logger) to run its model pre-processing, which
    would rewrite the exported graph; the exported graph is already folded and shape-inferred."""
    def keep(record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _node_names(path: Path) -> set[str]:
    import onnx

    return {node.name for node in onnx.load(str(path)).graph.node}


def _forward(session):
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    return lambda frame: dict(zip(names, session.run(names, {input_name: frame})))
