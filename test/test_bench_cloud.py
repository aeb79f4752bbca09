"""benchmarks/bench_cloud.py end to end on a tiny frame: it runs on main's pipeline (geometry,
depth scale, engines) and writes the figures the README quotes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_tiny_run_writes_the_report(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_cloud", ROOT / "benchmarks" / "bench_cloud.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--size", "64x48", "--frames", "1", "--threads", "1", "--backend", "torch",
                       "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["engine"], report["size"], report["stride"]) == ("torch", "64x48", 1)
    # A point per pixel with depth but sky; obstacles are some of them (none on so small a frame).
    assert 0 < report["points"]["points"] <= 64 * 48 and report["points"]["obstacles"] <= report["points"]["points"]
    rows = {row["row"]: row for row in report["rows"]}
    assert set(rows) == {"pipeline", "+ semantic/points", "+ both clouds", "post-processing",
                         "post-processing + confidence", "semantic/points from held outputs"}
    assert all(row["median_ms"] > 0 for row in rows.values())
    assert report["added_ms"] > 0 and report["points_ratio"] > 1 and report["verdict"] in ("ok", "MISSED")
    assert "semantic/points adds" in capsys.readouterr().out
