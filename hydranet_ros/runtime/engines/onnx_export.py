"""HydraNet -> ONNX (opset >= 17) with its meaning stored inside the file, checked against eager.

The exported graph takes the normalised image (N,3,H,W) float32 named ``image`` and returns the
heads in the network's order (``segm``, ``depth``[, ``normals``]) at 1/4 resolution, exactly what
``HydraNet.forward`` returns. The preset (classes, palette, normalisation), the weights hash and
the input size travel as ONNX metadata, so a deployment can check what a file is without us.

``input_size=None`` exports height and width as dynamic axes; a fixed size lets runtimes (and
TensorRT's ONNX parser) plan memory once.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hydranet_ros.model.checkpoints import preset_metadata
from hydranet_ros.model.fold import fold_batchnorm
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.runtime.engines.base import EngineError

log = logging.getLogger(__name__)

MIN_OPSET = 17  # LayerNorm-free model, but 17 is what TensorRT 8.6+/onnxruntime 1.14+ all read
INPUT_NAME = "image"


class _TupleOutputs(nn.Module):
    """Exporters want a tuple out; keeps the head order fixed and named."""

    def __init__(self, model: HydraNet) -> None:
        super().__init__()
        self.model = model
        self.names = tuple(model.heads.keys())

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        return tuple(out[name] for name in self.names)


def output_names(model: HydraNet) -> tuple[str, ...]:
    return tuple(model.heads.keys())


def export_onnx(
    model: HydraNet, path: str | Path, *, input_size: tuple[int, int] | None = (640, 480), opset: int = MIN_OPSET,
    weights_sha256: str = "", exporter: str = "auto",
) -> Path:
    """Write ``model`` (folded, fp32, CPU) as ONNX to ``path``; returns the path.

    exporter: 'torchscript' (torch.onnx's classic tracer, verified in CI), 'dynamo' (torch.export
    based; needs the onnxscript package) or 'auto' (torchscript where this torch still has it).
    """
    if opset < MIN_OPSET:
        raise EngineError(f"opset {opset} is too old: the ONNX export needs opset >= {MIN_OPSET}")
    if exporter not in ("auto", "torchscript", "dynamo"):
        raise EngineError(f"unknown ONNX exporter {exporter!r}; choose auto, torchscript or dynamo")
    folded = fold_batchnorm(copy.deepcopy(model).float().cpu().eval())
    wrapper = _TupleOutputs(folded).eval()
    width, height = input_size if input_size is not None else (320, 256)
    example = torch.zeros(1, 3, height, width)
    names = list(wrapper.names)
    buffer = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad():
        if exporter in ("auto", "torchscript"):
            try:
                _export_torchscript(wrapper, example, buffer, opset=opset, names=names, dynamic=input_size is None)
            except (AttributeError, TypeError, NotImplementedError, RuntimeError) as exc:
                if exporter == "torchscript":
                    raise EngineError(f"ONNX export (torchscript exporter) failed: {exc}") from None
                log.info("torchscript ONNX exporter unavailable (%s); using the dynamo exporter", exc)
                buffer = io.BytesIO()
                _export_dynamo(wrapper, example, buffer, opset=opset, names=names, dynamic=input_size is None)
        else:
            _export_dynamo(wrapper, example, buffer, opset=opset, names=names, dynamic=input_size is None)
    data = _with_metadata(buffer.getvalue(), model, input_size=input_size, weights_sha256=weights_sha256, opset=opset)
    path = Path(path)
    path.write_bytes(data)
    return path


def _export_torchscript(wrapper, example, buffer, *, opset, names, dynamic) -> None:
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {INPUT_NAME: {2: "height", 3: "width"}}
        dynamic_axes.update({name: {2: "height_4", 3: "width_4"} for name in names})
    with warnings.catch_warnings():
        # We chose this exporter deliberately (it needs no extra package); its notice is noise.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*will be removed.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper, (example,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
            output_names=names, dynamic_axes=dynamic_axes, do_constant_folding=True,
        )


def _export_dynamo(wrapper, example, buffer, *, opset, names, dynamic) -> None:
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's dependency)
    except ImportError:
        raise EngineError("the dynamo ONNX exporter needs the onnxscript package (pip install onnxscript)") from None
    dynamic_shapes = None
    if dynamic:
        dims = {2: torch.export.Dim("height", min=32, max=8192), 3: torch.export.Dim("width", min=32, max=8192)}
        dynamic_shapes = {INPUT_NAME: dims}
    program = torch.onnx.export(
        wrapper, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME], output_names=names,
        dynamic_shapes=dynamic_shapes, external_data=False,
    )
    program.save(buffer)


def _with_metadata(data: bytes, model: HydraNet, *, input_size, weights_sha256: str, opset: int) -> bytes:
    try:
        import onnx
    except ImportError:
        raise EngineError("writing ONNX metadata needs the onnx package (pip install onnx)") from None
    proto = onnx.load_from_string(data)
    meta = {
        **preset_metadata(model.preset),
        "weights_sha256": weights_sha256,
        "input_size": "dynamic" if input_size is None else f"{input_size[0]}x{input_size[1]}",
        "input": "RGB, /255, then (x - mean) / std; NCHW float32",
        "outputs": ",".join(output_names(model)) + " at 1/4 resolution; |depth| is metres",
        "producer": "hydranet_ros",
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    if proto.opset_import and max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) < opset:
        raise EngineError(f"exporter wrote an opset below the {opset} asked for")
    return proto.SerializeToString()


def read_metadata(path: str | Path) -> dict[str, str]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def compare_with_eager(path: str | Path, model: HydraNet, images: list[torch.Tensor]) -> dict[str, float]:
    """Largest |onnxruntime - eager| per output over ``images`` (normalised (1,3,H,W) float32),
    run on onnxruntime's CPU provider. Eager runs the unfolded fp32 model, as trained."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    worst = {name: 0.0 for name in names}
    model = model.float().cpu().eval()
    for image in images:
        got = session.run(names, {INPUT_NAME: image.numpy()})
        with torch.no_grad():
            want = model(image)
        for name, value in zip(names, got):
            worst[name] = max(worst[name], float(np.abs(value - want[name].numpy()).max()))
    return worst


def cached_onnx(
    model: HydraNet, *, weights_sha256: str, input_size: tuple[int, int] | None, opset: int = MIN_OPSET, cache=None,
) -> Path:
    """The ONNX file for these weights and size from the engine cache, exported on a miss."""
    from hydranet_ros.runtime.engine_cache import EngineCache, installed_versions, make_key

    if not weights_sha256:
        raise EngineError("caching an ONNX export needs the weights' sha256 (it is part of the cache key)")
    cache = cache or EngineCache()
    versions = {**installed_versions(("torch", "onnx")), "onnx_opset": str(opset)}
    key = make_key(weights_sha256=weights_sha256, input_size=input_size, precision="fp32", backend="onnx",
                   library_versions=versions)
    def build(tmp: Path) -> None:
        export_onnx(model, tmp, input_size=input_size, opset=opset, weights_sha256=weights_sha256)

    entry = cache.get_or_build(key, suffix=".onnx", what="ONNX export", build=build)
    return entry.path
