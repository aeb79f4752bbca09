"""benchmarks/bench_cpu.py: which rows it plans, the FLOP count, and a tiny run end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_cpu", ROOT / "benchmarks" / "bench_cpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plan(bench):
    assert bench.plan(frozenset({"torch"})) == [("torch", "fp32")]
    rows = bench.plan(frozenset({"torch", "onnxruntime", "openvino"}))
    assert rows == [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8")]


def test_flops_match_the_architecture(bench):
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.presets import get_preset

    # The design card: about 6.5 GFLOPs at 640x480 (4.4 GMAC of convolutions by our own count).
    flops = bench.model_flops(HydraNet(get_preset("kitti")).eval(), (640, 480))
    assert 8.0e9 < flops < 9.5e9  # 2 FLOPs per multiply-add: ~4.4 GMAC


def test_tiny_run_writes_the_report(bench, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "bench.json"
    assert bench.main(["--sizes", "64x48", "--rounds", "1", "--threads", "1", "--backends", "onnxruntime",
                       "--calibration-frames", "4", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"best_fp32_speedup_vs_torch", "best_int8_speedup_vs_torch", "achievable_gflops", "rows"} <= set(report)
    built = [r for r in report["rows"] if r.get("built")]
    assert {(r["backend"], r["precision"]) for r in built} >= {("torch", "fp32"), ("onnxruntime", "fp32")}
    for row in built:
        assert row["forward"]["median_ms"] > 0 and row["forward_over_floor"] > 0 and row["flops"] > 0
    assert "targets (pipeline, 640x480)" in capsys.readouterr().out
