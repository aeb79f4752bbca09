"""Frames per second of the synthetic street generator, single-threaded.

    python -m benchmarks.bench_synthetic [--size 640x192] [--frames 200] [--json out.json]

Prints a table and writes JSON. Thread pools are pinned to one thread before numpy and OpenCV
load, so the figure is what one data-loader worker delivers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from hydranet_ros.train.synthetic import SyntheticStreets  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x192", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="bench_out/bench_synthetic.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    width, height = (int(x) for x in args.size.lower().split("x"))
    ds = SyntheticStreets(size=(width, height), length=args.frames, seed=args.seed)
    ds[0]  # first call builds the noise tiles
    times, cpu_times = [], []
    for i in range(len(ds)):
        start, cpu_start = time.perf_counter(), time.process_time()
        ds[i]
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    ms = np.asarray(times) * 1e3
    # CPU time is what the generator costs; wall time also counts waiting for a shared core.
    cpu_ms = float(np.mean(cpu_times) * 1e3)
    result = {
        "size": [width, height], "frames": len(ds), "threads": 1,
        "fps_mean": float(1e3 / ms.mean()), "ms_mean": float(ms.mean()), "ms_median": float(np.median(ms)),
        "ms_p95": float(np.percentile(ms, 95)), "ms_max": float(ms.max()),
        "cpu_ms_mean": cpu_ms, "fps_cpu": 1e3 / cpu_ms, "load_average_1min": os.getloadavg()[0],
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "date": time.strftime("%Y-%m-%d"), "numpy": np.__version__,
    }
    print(f"{'size':>10} {'frames':>7} {'fps':>7} {'mean ms':>8} {'median':>7} {'p95':>7} {'max':>7} "
          f"{'cpu ms':>7} {'cpu fps':>8} {'load':>5}")
    print(f"{args.size:>10} {len(ds):>7} {result['fps_mean']:7.1f} {result['ms_mean']:8.1f} "
          f"{result['ms_median']:7.1f} {result['ms_p95']:7.1f} {result['ms_max']:7.1f} "
          f"{cpu_ms:7.1f} {result['fps_cpu']:8.1f} {result['load_average_1min']:5.1f}")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
