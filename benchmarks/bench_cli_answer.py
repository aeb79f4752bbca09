"""How fast `hydranet` answers a wrong argument, path or weights name (target: under 1 s).

Each case runs the installed command in a fresh process (what a user waits for: interpreter
start, imports, the check, the one-line error), in interleaved rounds so that machine load hits
every case alike; `python -c "import torch"` is the yardstick of what answering after torch would
cost. Prints a table and writes JSON.

    python benchmarks/bench_cli_answer.py [--rounds 7] [--json cli_answer.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0


def hydranet() -> list[str]:
    """The installed entry point beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("hydranet")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hydranet_ros.cli"]


def cases(frame: str) -> dict[str, list[str]]:
    cmd = hydranet()
    return {
        "hydranet infer missing.png": [*cmd, "infer", "missing.png"],
        "hydranet infer FRAME --weights kiti": [*cmd, "infer", frame, "--weights", "kiti"],
        "hydranet infer FRAME --size 10x10": [*cmd, "infer", frame, "--size", "10x10"],
        "hydranet bench --frame-size 0x0": [*cmd, "bench", "--frame-size", "0x0"],
        "hydranet bag missing out": [*cmd, "bag", "missing", "out"],
        "hydranet train --threads -4": [*cmd, "train", "--config", "x.yaml", "--threads", "-4"],
        "python -c 'import torch' (yardstick)": [sys.executable, "-c", "import torch"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        frame = str(Path(tmp) / "frame.png")
        Path(frame).write_bytes(b"")  # exists; the weights or size check comes first
        runs = cases(frame)
        times: dict[str, list[float]] = {name: [] for name in runs}
        status: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, argv in runs.items():
                started = time.perf_counter()
                done = subprocess.run(argv, cwd=tmp, capture_output=True, text=True)
                times[name].append(time.perf_counter() - started)
                status[name] = done.returncode
    rows = {name: {"median_s": statistics.median(t), "max_s": max(t), "exit": status[name]} for name, t in times.items()}
    print(f"{'case':40s} {'median s':>9s} {'max s':>7s} {'exit':>5s}")
    for name, row in rows.items():
        print(f"{name:40s} {row['median_s']:9.3f} {row['max_s']:7.3f} {row['exit']:5d}")
    answered = [row["median_s"] for name, row in rows.items() if name.startswith("hydranet")]
    verdict = "ok" if max(answered) < TARGET_S else "MISSED"
    print(f"slowest one-line answer {max(answered):.3f} s (target < {TARGET_S} s: {verdict})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": platform.platform(), "python": platform.python_version(), "rounds": args.rounds,
            "entry_point": hydranet()[0], "cases": rows, "target_s": TARGET_S, "verdict": verdict,
            "date": time.strftime("%Y-%m-%d"), "cpus": shutil.os.cpu_count(),
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
