"""benchmarks/bench_multicam.py end to end on a tiny size: both modes run in their own processes,
the table and the JSON carry what the issue asks for, and the verdict is the last line."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parent.parent / "benchmarks")


def load_bench():
    # Imported by name from a path entry: its worker processes (spawned) import it the same way.
    if BENCHMARKS not in sys.path:
        sys.path.insert(0, BENCHMARKS)
    return importlib.import_module("bench_multicam")


def test_tiny_run_writes_the_report(tmp_path, capsys):
    bench = load_bench()
    out = tmp_path / "multicam.json"
    assert bench.main(["--cameras", "2", "--size", "64x48", "--rounds", "2", "--frames", "1", "--threads", "1",
                       "--backend", "torch", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {row["mode"]: row for row in report["rows"]}
    assert set(rows) == {"batched", "separate"}
    assert (rows["batched"]["processes"], rows["separate"]["processes"]) == (1, 2)
    for row in rows.values():
        assert row["cameras"] == 2 and row["frames"] == 2 * 2 * 1  # rounds x steps x cameras
        assert row["fps"] > 0 and row["latency_ms"]["median"] > 0 and row["latency_ms"]["n"] == 4
        assert row["cpu_s"] > 0 and row["frames_per_cpu_s"] == row["frames"] / row["cpu_s"]
        assert row["peak_rss_mb"] > 50 and row["gpu_mb"] is None  # a process with torch loaded
        assert row["info"]["backend"] == "torch" and row["info"]["engine_max_batch"] == "any"
        assert row["info"]["engine_lanes"] == "1"
    # Two separate processes each hold their own torch and model: more memory than one.
    assert rows["separate"]["peak_rss_mb"] > rows["batched"]["peak_rss_mb"]
    assert report["batched_speedup_n4"] is None and report["memory_ratio_n4"] is None  # N=4 not asked for
    assert report["cpu_efficiency_n4"] is None
    assert report["size"] == "64x48" and report["command"].startswith("python benchmarks/bench_multicam.py --cameras 2")
    assert report["backend"] == "torch"
    printed = capsys.readouterr().out.strip().splitlines()
    assert "| 2 | batched | 1 x 1 |" in "\n".join(printed) and "| 2 | separate | 2 x 1 |" in "\n".join(printed)
    assert printed[-1] == report["verdict"] == "verdict: N=4 was not measured (--cameras without 4)"


def test_verdict_against_the_targets():
    bench = load_bench()
    assert bench.verdict({"batched_speedup_n4": 1.2, "memory_ratio_n4": 0.4, "device": "cpu"}) == (
        "verdict at N=4 on cpu: batched throughput 1.20x the 4 separate pipelines' (>= 1.00: ok), "
        "host RSS 0.40x theirs (< 1.00: ok)")
    missed = bench.verdict({"batched_speedup_n4": 0.9, "memory_ratio_n4": 1.1, "device": "cuda"})
    assert "0.90x" in missed and "(>= 1.00: MISSED)" in missed and "GPU memory 1.10x theirs (< 1.00: MISSED)" in missed


def test_by_default_it_runs_what_the_node_runs_and_a_cpu_engine_batches_in_lanes(tmp_path, capsys):
    """backend auto, as the node: OpenVINO where installed (CI's test extras install it). The
    batched process has one lane per thread (2 cameras, 2 threads); each separate one 1 thread."""
    import pytest

    pytest.importorskip("openvino")
    bench = load_bench()
    out = tmp_path / "multicam.json"
    assert bench.main(["--cameras", "2", "--size", "64x48", "--rounds", "1", "--frames", "1", "--threads", "2",
                       "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {row["mode"]: row for row in report["rows"]}
    assert report["backend"] == "auto" and rows["batched"]["info"]["backend"] == "openvino"
    assert rows["batched"]["info"]["engine_lanes"] == "2" and rows["separate"]["info"]["engine_lanes"] == "1"
    assert rows["separate"]["threads_per_process"] == 1
    assert "lanes in the batched process at N=2: 2" in capsys.readouterr().out
