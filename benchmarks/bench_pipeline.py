"""Latency of the torch engine's forward and of the whole pipeline, against a notebook-style
baseline (every CPU engine against the torch path: bench_cpu.py).

    python benchmarks/bench_pipeline.py [--json PATH] [--frames N] [--device cpu|cuda] [--before TREE]

Baseline: benchmarks/notebook_baseline.py, the published architecture run eagerly from its state
dict with the notebooks' host pre/post-processing (numpy normalise, cubic resize of the outputs,
argmax in numpy), shared with bench_gpu.py.
Prints a table and writes JSON with `speedup_vs_naive` (whole pipeline, 640x480, CPU) and
`pipeline_overhead_ratio` (pipeline time over model forward time, 640x480, CPU).

--before TREE (a source tree of the code before a change, e.g. `git archive main | tar -x -C
/tmp/before`): its Pipeline runs in a process of its own (benchmarks/tree_worker.py) and is timed
in turn with this tree's forward and pipeline, frame by frame, on the CPU rows; the table adds
its median and after/before, the JSON `before` and `after_over_before` per row.
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
    parser.add_argument("--before", type=Path, help="a source tree whose pipeline is timed in turn with this one's")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    before = BeforeTree(args.before) if args.before else None

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

            if before is not None and device == "cpu":
                before.setup(size, torch.get_num_threads(), SAMPLE if SAMPLE.is_file() else None)
                forward_ms, pipeline_ms, before_ms = timed_in_turn([forward, lambda: pipe.process(frame), before.run],
                                                                   args.frames)
            else:
                (forward_ms, pipeline_ms), before_ms = timed_in_turn([forward, lambda: pipe.process(frame)], args.frames), None
            row = {"device": device, "size": f"{size[0]}x{size[1]}", "forward": stats(forward_ms), "pipeline": stats(pipeline_ms)}
            if before_ms is not None:
                row["before"] = stats(before_ms)
                row["after_over_before"] = row["pipeline"]["median_ms"] / row["before"]["median_ms"]
                # Each frame against the before-frame timed next to it: robust to a machine whose
                # speed drifts during the run.
                row["after_over_before_paired"] = statistics.median(a / b for a, b in zip(pipeline_ms, before_ms))
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
        before_text = (f" | before {row['before']['median_ms']:7.1f} ms, after/before {row['after_over_before']:.3f} "
                       f"(paired {row['after_over_before_paired']:.3f})" if "before" in row else "")
        print(f"{row['device']:6s} {row['size']:>9s} | {f['median_ms']:8.1f} /{f['p90_ms']:8.1f} | "
              f"{p['median_ms']:9.1f} /{p['p90_ms']:8.1f} | {naive_text} | {speed} {row['pipeline_overhead_ratio']:8.3f}"
              f"{before_text}")
    main_row = next(r for r in rows if r["device"] == "cpu" and r["size"] == "640x480")
    report = {
        "date": str(datetime.date.today()), "machine": platform.node(), "cpu_count": __import__("os").cpu_count(),
        "torch": torch.__version__, "weights": source, "frames": args.frames,
        "speedup_vs_naive": main_row["speedup_vs_naive"],
        "pipeline_overhead_ratio": main_row["pipeline_overhead_ratio"],
        "rows": rows,
        "before_tree": str(args.before) if args.before else None,
        "before_module": before.module if before is not None else None,
    }
    print(f"speedup_vs_naive (640x480 CPU): {report['speedup_vs_naive']:.2f} (target >= 2.5)   "
          f"pipeline_overhead_ratio: {report['pipeline_overhead_ratio']:.3f} (target <= 1.10)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if before is not None:
        before.close()
    return 0


class BeforeTree:
    """benchmarks/tree_worker.py running another source tree's pipeline."""

    def __init__(self, tree: Path) -> None:
        import os
        import subprocess

        if not (tree / "hydranet_ros" / "runtime" / "pipeline.py").is_file():
            raise SystemExit(f"--before {tree}: not a hydranet_ros source tree")
        env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("tree_worker.py"))], cwd=tree,
                                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.tree, self.module = tree, None

    def _ask(self, **command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if "error" in answer:
            raise SystemExit(f"--before {self.tree}: {answer['error']}")
        return answer

    def setup(self, size, threads, image) -> None:
        answer = self._ask(op="setup", size=list(size), threads=threads, image=str(image) if image else None)
        self.module = answer["module"]
        if not Path(self.module).resolve().is_relative_to(self.tree.resolve()):
            raise SystemExit(f"--before {self.tree}: the worker imported {self.module}, not the tree's code")

    def run(self) -> None:
        self._ask(op="run")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
