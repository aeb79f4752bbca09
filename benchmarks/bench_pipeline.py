"""Latency of the torch engine's forward and of the whole pipeline, against a notebook-style
baseline (every CPU engine against the torch path: bench_cpu.py).

    python benchmarks/bench_pipeline.py [--json PATH] [--frames N] [--device cpu|cuda]

Baseline: benchmarks/notebook_baseline.py, the published architecture run eagerly from its state
dict with the notebooks' host pre/post-processing (numpy normalise, cubic resize of the outputs,
argmax in numpy), shared with bench_gpu.py.
Prints a table and writes JSON with `speedup_vs_naive` (whole pipeline, 640x480, CPU) and
`pipeline_overhead_ratio` (pipeline time over model forward time, 640x480, CPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.notebook_baseline import NotebookBaseline  # noqa: E402
from hydranet_ros.model.checkpoints import WeightsError, load_weights  # noqa: E402
from hydranet_ros.presets import get_preset  # noqa: E402
from hydranet_ros.model.random_init import realistic_model  # noqa: E402
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig  # noqa: E402

SIZES = ((640, 480), (1226, 370))
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti" / "000099.png"


def timed(fn, frames: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(frames):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def timed_in_turn(fns, frames: int, warmup: int = 2) -> list[list[float]]:
    """Each of ``fns`` timed in turn, frame after frame: a drift in the machine's speed (another
    job, clocks) falls on all of them alike, so their ratio stays fair (timing one after the other
    once put a 1.21 ratio on what interleaved runs measured at 0.98-1.01)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(frames):
        for fn, ms in zip(fns, out):
            start = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - start) * 1e3)
    return out


def stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(ms), "p90_ms": float(np.percentile(ms, 90)), "n": len(ms)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--frames", type=int, default=15, help="timed frames per row (default 15)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu; CUDA rows are added when present)")
    args = parser.parse_args()

    try:
        weights = load_weights("default")
        model, preset, source = weights.build_model(), weights.preset, weights.source
    except WeightsError:
        preset = get_preset("kitti")
        model, source = realistic_model(preset, seed=0), "random realistic-scale weights"
    image = cv2.imread(str(SAMPLE))[..., ::-1] if SAMPLE.is_file() else np.random.default_rng(0).integers(0, 255, (370, 1226, 3), np.uint8)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and args.device == "cuda" else [])
    rows = []
    for device in devices:
        for size in SIZES:
            frame = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            pipe = Pipeline.from_model(model, preset, PipelineConfig(backend="torch", device=device, input_size=size))
            net_input = pipe._preprocess(frame, "rgb", pipe.geometry_for(*size))
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

            def forward():
                pipe.engine(net_input)
                sync()

            forward_ms, pipeline_ms = timed_in_turn([forward, lambda: pipe.process(frame)], args.frames)
            row = {"device": device, "size": f"{size[0]}x{size[1]}", "forward": stats(forward_ms), "pipeline": stats(pipeline_ms)}
            if device == "cpu":
                baseline = NotebookBaseline(model, preset, torch.device("cpu"))
                row["naive"] = stats(timed(lambda: baseline(frame), max(3, args.frames // 3), warmup=1))
            rows.append(row)

    print(f"bench_pipeline  {datetime.date.today()}  {platform.node()}  torch {torch.__version__}  "
          f"threads {torch.get_num_threads()}  weights: {source}")
    print(f"{'device':6s} {'size':>9s} | {'forward med/p90 ms':>19s} | {'pipeline med/p90 ms':>20s} | {'naive med/p90 ms':>18s} | {'speedup':>7s} {'overhead':>8s}")
    for row in rows:
        f, p = row["forward"], row["pipeline"]
        naive = row.get("naive")
        row["speedup_vs_naive"] = naive["median_ms"] / p["median_ms"] if naive else None
        row["pipeline_overhead_ratio"] = p["median_ms"] / f["median_ms"]
        naive_text = f"{naive['median_ms']:8.1f} /{naive['p90_ms']:8.1f}" if naive else f"{'-':>18s}"
        speed = f"{row['speedup_vs_naive']:6.2f}x" if naive else f"{'-':>7s}"
        print(f"{row['device']:6s} {row['size']:>9s} | {f['median_ms']:8.1f} /{f['p90_ms']:8.1f} | "
              f"{p['median_ms']:9.1f} /{p['p90_ms']:8.1f} | {naive_text} | {speed} {row['pipeline_overhead_ratio']:8.3f}")
    main_row = next(r for r in rows if r["device"] == "cpu" and r["size"] == "640x480")
    report = {
        "date": str(datetime.date.today()), "machine": platform.node(), "cpu_count": __import__("os").cpu_count(),
        "torch": torch.__version__, "weights": source, "frames": args.frames,
        "speedup_vs_naive": main_row["speedup_vs_naive"],
        "pipeline_overhead_ratio": main_row["pipeline_overhead_ratio"],
        "rows": rows,
    }
    print(f"speedup_vs_naive (640x480 CPU): {report['speedup_vs_naive']:.2f} (target >= 2.5)   "
          f"pipeline_overhead_ratio: {report['pipeline_overhead_ratio']:.3f} (target <= 1.10)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
