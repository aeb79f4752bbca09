"""benchmarks/bench_gpu.py: which rows it plans, and a tiny smoke run that works without CUDA."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plan(bench):
    rows, skipped = bench.plan(cuda=False, tensorrt=True, int8=True)
    assert rows == [("torch", "cpu", "fp32")] and "no CUDA" in skipped[0]
    rows, skipped = bench.plan(cuda=True, tensorrt=False, int8=False)
    assert ("cuda-graph", "cuda", "fp16") in rows and not any(r[0] == "tensorrt" for r in rows)
    assert any("torch-tensorrt is not installed" in s for s in skipped)
    rows, _ = bench.plan(cuda=True, tensorrt=True, int8=True)
    assert ("tensorrt", "cuda", "int8") in rows and ("tensorrt", "cuda", "fp16") in rows


def test_stats(bench):
    s = bench.latency_stats([1.0, 2.0, 3.0, 4.0])
    assert s["median_ms"] == 2.5 and s["fps"] == pytest.approx(400.0) and s["p99_ms"] <= 4.0


def test_smoke_run_without_cuda(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--sizes", "64x48", "--frames", "1", "--threads", "1", "--json", str(out), "--weights", str(tmp_path / "none.safetensors")]) == 0
    report = json.loads(out.read_text())
    kinds = {(r["kind"], r["backend"], r["device"]) for r in report["rows"]}
    assert ("baseline", "notebook", "cpu") in kinds and ("pipeline", "torch", "cpu") in kinds
    printed = capsys.readouterr().out
    assert "64x48" in printed and "median" in printed
    if report["gpu"] is None:
        assert "CPU rows only" in printed and report["targets"] == {}
