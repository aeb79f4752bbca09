"""ONNX export: opset >= 17, fixed and dynamic sizes, metadata inside, onnxruntime (CPU) matches
eager within 1e-4 on trained-scale random weights; the export is cached like an engine."""

from __future__ import annotations

import importlib.util
import logging

import pytest
import torch

from gpu_support import normalised, realistic_model, small_frame, SHARED_FRAMES
from hydranet_ros.runtime.engine_cache import EngineCache
from hydranet_ros.runtime.engines.base import EngineError
from hydranet_ros.runtime.engines.onnx_export import cached_onnx, compare_with_eager, export_onnx, read_metadata

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def three_heads():
    torch.set_num_threads(1)
    return realistic_model("nyud_three")


def frames(model, size):
    return [normalised(small_frame(name, size), model.preset) for name in SHARED_FRAMES]


def test_fixed_size_export_matches_eager(tmp_path, three_heads):
    path = export_onnx(three_heads, tmp_path / "h.onnx", input_size=(64, 48), weights_sha256="f" * 64)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [o.name for o in proto.graph.output] == ["segm", "depth", "normals"]
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 48, 64]
    worst = compare_with_eager(path, three_heads, frames(three_heads, (64, 48)))
    assert max(worst.values()) <= TOLERANCE, worst
    # The weights give outputs of trained scale, so the tolerance means something.
    with torch.no_grad():
        out = three_heads(frames(three_heads, (64, 48))[0])
    assert float(out["segm"].abs().max()) > 1.0 and float(out["depth"].abs().max()) > 1.0


def test_dynamic_size_export_runs_any_size(tmp_path, three_heads):
    path = export_onnx(three_heads, tmp_path / "d.onnx", input_size=None)
    images = frames(three_heads, (64, 48)) + frames(three_heads, (96, 72))[:1] + frames(three_heads, (80, 40))[:1]
    worst = compare_with_eager(path, three_heads, images)
    assert max(worst.values()) <= TOLERANCE, worst
    assert read_metadata(path)["input_size"] == "dynamic"


def test_metadata_says_what_the_file_is(tmp_path):
    model = realistic_model("kitti")
    path = export_onnx(model, tmp_path / "k.onnx", input_size=(64, 48), weights_sha256="ab" * 32)
    meta = read_metadata(path)
    assert meta["preset"] == "kitti" and meta["weights_sha256"] == "ab" * 32
    assert meta["input_size"] == "64x48" and "sky" in meta["class_names"]


def test_old_opset_refused(tmp_path):
    with pytest.raises(EngineError, match="opset 13"):
        export_onnx(realistic_model("kitti"), tmp_path / "x.onnx", opset=13)


def test_export_is_cached(tmp_path, caplog):
    model = realistic_model("kitti")
    cache = EngineCache(directory=tmp_path / "engines")
    first = cached_onnx(model, weights_sha256="cd" * 32, input_size=(64, 48), cache=cache)
    mtime = first.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        again = cached_onnx(model, weights_sha256="cd" * 32, input_size=(64, 48), cache=cache)
    assert again == first and again.stat().st_mtime_ns == mtime and "using cached" in caplog.text
    first.write_bytes(first.read_bytes()[:-100])  # truncated: rebuilt, not trusted
    rebuilt = cached_onnx(model, weights_sha256="cd" * 32, input_size=(64, 48), cache=cache)
    assert max(compare_with_eager(rebuilt, model, frames(model, (64, 48))).values()) <= TOLERANCE


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None, reason="the dynamo exporter needs onnxscript (not installed here)")
def test_dynamo_exporter_matches_eager(tmp_path):
    model = realistic_model("kitti")
    path = export_onnx(model, tmp_path / "dyn.onnx", input_size=(64, 48), exporter="dynamo")
    assert max(compare_with_eager(path, model, frames(model, (64, 48))).values()) <= TOLERANCE


def test_dynamo_exporter_without_onnxscript_is_a_clear_error(tmp_path, monkeypatch):
    if importlib.util.find_spec("onnxscript") is not None:
        pytest.skip("onnxscript is installed")
    with pytest.raises(EngineError, match="onnxscript"):
        export_onnx(realistic_model("kitti"), tmp_path / "x.onnx", exporter="dynamo")
