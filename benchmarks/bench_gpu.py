"""Every available backend x precision x resolution, from a uint8 frame in host memory to labels
and depth in host memory, against the notebook-style baseline in the same run.

    python benchmarks/bench_gpu.py [--json PATH] [--quick] [--weights W] [--sizes 640x480,...]
                                   [--calibration FRAMES_DIR]   # adds tensorrt int8 rows

Rows: torch (eager, folded, channels-last), cuda-graph and tensorrt where they can run; fp32 and
fp16 (CUDA only), int8 (tensorrt, with --calibration). Each row times Pipeline.process on a frame
of that resolution with the network at the same resolution and outputs at the input size
(median, p90, p99 latency; throughput = frames / total time of the sequential loop; queued
throughput = the same frames through pipeline.in_order, two in flight, as `hydranet bag` and
`hydranet infer` run them: one frame's copies overlap the next one's compute) and the peak GPU
memory while running (peak_mb: torch.cuda.max_memory_allocated after the build and warm-up, which
still counts the weights, graph pools and buffers held; build_peak_torch_mb: the build's own peak;
for tensorrt rows peak_mb also takes the device memory the row added, since TensorRT allocates its
engine and activations outside torch's counter). On Ampere and newer GPUs, fp32 rows run their
convolutions in TF32 (PyTorch's default).

Baseline: the published architecture run eagerly in fp32 from its state dict (the functional
reference in hydranet_ros/model/reference.py: no BN folding, planar layout) on the same device,
with notebook-style host processing: numpy normalise, upload, forward, download, cv2 cubic resize
of the logits and depth to the frame size, argmax and abs in numpy.

Without CUDA it still runs: CPU rows only (torch fp32 and the baseline), and the table says so.
Targets (H100): 640x480 <= 2 ms median in the fastest mode, >= 8x the baseline, <= 500 MB peak.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import logging
import os
import platform
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
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig, in_order  # noqa: E402

SIZES = ((640, 480), (1226, 370), (1280, 720), (1920, 1080))
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti" / "000099.png"
TARGET_MS, TARGET_SPEEDUP, TARGET_MB = 2.0, 8.0, 500.0
RESULTS = frozenset({"labels", "depth"})


def parse_sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item]


def plan(*, cuda: bool, tensorrt: bool, int8: bool) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(backend, device, precision) rows that can run here, and why the others cannot."""
    rows, skipped = [("torch", "cpu", "fp32")], []
    if cuda:
        rows += [("torch", "cuda", "fp32"), ("torch", "cuda", "fp16"),
                 ("cuda-graph", "cuda", "fp32"), ("cuda-graph", "cuda", "fp16")]
        if tensorrt:
            rows += [("tensorrt", "cuda", "fp32"), ("tensorrt", "cuda", "fp16")]
            if int8:
                rows.append(("tensorrt", "cuda", "int8"))
            else:
                skipped.append("tensorrt int8: pass --calibration FRAMES to calibrate")
        else:
            skipped.append("tensorrt: torch-tensorrt is not installed")
    else:
        skipped.append("cuda-graph, tensorrt and every fp16 row: no CUDA device on this machine (CPU rows only)")
    return rows, skipped


def latency_stats(ms: list[float]) -> dict[str, float]:
    total_s = sum(ms) / 1e3
    return {
        "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
        "fps": len(ms) / total_s if total_s > 0 else float("inf"), "frames": len(ms),
    }


def timed(fn, *, frames: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(frames):
        start = time.perf_counter()
        fn()  # ends with results in host memory: the pipeline and the baseline both synchronise
        out.append((time.perf_counter() - start) * 1e3)
    return out


def device_used_mb() -> float:
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


def memory_mb(device: str, used_before_mb: float | None = None) -> dict[str, float]:
    """Peak of torch's allocator since the last reset, and (given the device memory in use before
    the build) what the row added to the device: TensorRT allocates outside torch's counter."""
    if device != "cuda":
        return {}
    out = {"peak_torch_mb": torch.cuda.max_memory_allocated() / 2**20}
    if used_before_mb is not None:
        out["device_added_mb"] = device_used_mb() - used_before_mb
    return out


def reset_memory(device: str) -> None:
    if device == "cuda":
        gc.collect()  # the last row's pipeline, so that its blocks go back before the next row
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_row(model, preset, backend, device, precision, size, frame, *, frames, warmup, calibration) -> dict:
    reset_memory(device)
    options = {"calibration": calibration} if precision == "int8" else {}
    config = PipelineConfig(backend=backend, device=device, precision=precision, input_size=size,
                            output_size="input", strict=True, engine_options=options)
    used_before = device_used_mb() if device == "cuda" else None
    started = time.perf_counter()
    pipe = Pipeline.from_model(model, preset, config)
    build_s = time.perf_counter() - started
    for _ in range(warmup):
        pipe.process(frame, outputs=RESULTS)
    # Building (export, calibration, warm-up runs before a graph capture) peaks higher than
    # running; the target is about running, so the peak counter restarts here.
    build_memory = {f"build_{k}": v for k, v in memory_mb(device).items()}
    if device == "cuda":
        torch.cuda.empty_cache()  # the build's cached blocks would count as the row's device memory
        torch.cuda.reset_peak_memory_stats()
    stages: list[dict[str, float]] = []
    ms = timed(lambda: stages.append(pipe.process(frame, outputs=RESULTS).timings_ms), frames=frames, warmup=0)
    row = {"kind": "pipeline", "backend": backend, "device": device, "precision": precision,
           "size": f"{size[0]}x{size[1]}", "build_s": build_s, **latency_stats(ms), **stage_medians(stages),
           "queued_fps": queued_fps(pipe, frame, frames), **memory_mb(device, used_before), **build_memory}
    if backend == "tensorrt" and "device_added_mb" in row:
        # TensorRT's engine and activations are invisible to torch's counter; the device's own
        # count (which also holds torch's cached blocks) is the honest figure for these rows.
        row["peak_mb"] = max(row["peak_torch_mb"], row["device_added_mb"])
    elif "peak_torch_mb" in row:
        row["peak_mb"] = row["peak_torch_mb"]
    return row  # the pipeline goes with this frame, before the next row resets the memory counters


def stage_medians(timings: list[dict[str, float]]) -> dict[str, float]:
    """Median of each stage the pipeline timed (CUDA events on the GPU, the host clock on the CPU):
    where a frame's time goes, so a missed target names the stage to work on."""
    return {f"stage_{name}_ms": float(np.median([t[name] for t in timings])) for name in (timings[0] if timings else ())}


def queued_fps(pipe: Pipeline, frame, frames: int) -> float:
    """Frames per second with two frames in flight (results in host memory, in order)."""
    started = time.perf_counter()
    for _ in in_order(pipe, ((i, frame, "rgb") for i in range(frames)), outputs=RESULTS):
        pass
    return frames / (time.perf_counter() - started)


def run_baseline(model, preset, device, size, frame, *, frames, warmup) -> dict:
    reset_memory(device)
    baseline = NotebookBaseline(model, preset, torch.device(device))
    ms = timed(lambda: baseline(frame), frames=frames, warmup=warmup)
    return {"kind": "baseline", "backend": "notebook", "device": device, "precision": "fp32",
            "size": f"{size[0]}x{size[1]}", **latency_stats(ms), **memory_mb(device)}


def print_table(rows: list[dict]) -> None:
    head = (f"{'kind':8s} {'backend':10s} {'dev':4s} {'prec':4s} {'size':>9s} | {'median':>8s} {'p90':>8s} {'p99':>8s} ms | "
            f"{'fps':>7s} {'queued':>7s} | {'peak MB':>7s} | {'vs base':>7s} | pre / net / post ms")
    print(head)
    print("-" * len(head))
    for r in rows:
        peak = f"{r['peak_mb']:7.0f}" if "peak_mb" in r else f"{'-':>7s}"
        speed = f"{r['speedup_vs_baseline']:6.1f}x" if r.get("speedup_vs_baseline") else f"{'-':>7s}"
        queued = f"{r['queued_fps']:7.1f}" if "queued_fps" in r else f"{'-':>7s}"
        stages = " / ".join(f"{r[k]:.2f}" for k in ("stage_preprocess_ms", "stage_inference_ms", "stage_postprocess_ms") if k in r) or "-"
        print(f"{r['kind']:8s} {r['backend']:10s} {r['device']:4s} {r['precision']:4s} {r['size']:>9s} | "
              f"{r['median_ms']:8.2f} {r['p90_ms']:8.2f} {r['p99_ms']:8.2f}    | {r['fps']:7.1f} {queued} | {peak} | {speed} | {stages}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write every row and the machine facts here")
    parser.add_argument("--quick", action="store_true", help="few iterations (a smoke run; CPU-only machines)")
    parser.add_argument("--frames", type=int, help="timed frames per row (default: 200 on CUDA, 10 on CPU; --quick: 20 / 2)")
    parser.add_argument("--weights", default="default", help="weights to run (default: 'default', else random realistic-scale)")
    parser.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES), help="comma-separated WxH list")
    parser.add_argument("--calibration", help="frames folder/video/bag for tensorrt int8 rows")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU rows on a CUDA machine (they are slow)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; use 1 on a shared machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="bench_gpu: %(levelname)s: %(message)s")

    cuda = torch.cuda.is_available()
    tensorrt = importlib.util.find_spec("torch_tensorrt") is not None
    try:
        weights = load_weights(args.weights)
        model, preset, source = weights.build_model(), weights.preset, weights.source
    except WeightsError:
        preset = get_preset("kitti")
        model, source = realistic_model(preset, seed=0), "random realistic-scale weights (kitti preset)"
    image = cv2.imread(str(SAMPLE))[..., ::-1] if SAMPLE.is_file() else np.random.default_rng(0).integers(0, 256, (370, 1226, 3), np.uint8)
    rows_plan, skipped = plan(cuda=cuda, tensorrt=tensorrt, int8=bool(args.calibration))
    if args.no_cpu and cuda:
        rows_plan = [r for r in rows_plan if r[1] != "cpu"]

    rows = []
    for size in parse_sizes(args.sizes):
        frame = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        for device in dict.fromkeys(d for _, d, _ in rows_plan):
            gpu = device == "cuda"
            frames = args.frames or ((20 if args.quick else 200) if gpu else (2 if args.quick else 10))
            warmup = (10 if gpu else 1) if args.quick else (30 if gpu else 2)
            base = run_baseline(model, preset, device, size, frame, frames=max(2, frames // 2 if not gpu else frames), warmup=warmup)
            rows.append(base)
            for backend, row_device, precision in rows_plan:
                if row_device != device:
                    continue
                try:
                    row = run_row(model, preset, backend, device, precision, size, frame, frames=frames, warmup=warmup,
                                  calibration=args.calibration)
                except Exception as exc:  # one backend failing must not lose the other rows
                    skipped.append(f"{backend} {precision} {size[0]}x{size[1]}: {type(exc).__name__}: {exc}")
                    continue
                row["speedup_vs_baseline"] = base["median_ms"] / row["median_ms"]
                rows.append(row)

    gpu_name = torch.cuda.get_device_name() if cuda else None
    print(f"bench_gpu  {datetime.date.today()}  {platform.node()}  {os.cpu_count()} CPUs ({torch.get_num_threads()} threads)  torch {torch.__version__}  "
          f"GPU: {gpu_name or 'none (CPU rows only)'}  weights: {source}")
    print_table(rows)
    for line in skipped:
        print(f"not run: {line}")
    verdict = {}
    fastest = min((r for r in rows if r["kind"] == "pipeline" and r["device"] == "cuda" and r["size"] == "640x480"),
                  key=lambda r: r["median_ms"], default=None)
    if fastest:
        verdict = {
            "fastest_640x480": f"{fastest['backend']} {fastest['precision']}",
            "median_ms": fastest["median_ms"], "median_ok": fastest["median_ms"] <= TARGET_MS,
            "speedup_vs_baseline": fastest["speedup_vs_baseline"], "speedup_ok": fastest["speedup_vs_baseline"] >= TARGET_SPEEDUP,
            "peak_mb": fastest.get("peak_mb"), "memory_ok": fastest.get("peak_mb", 0) <= TARGET_MB,
        }
        print(f"targets at 640x480 ({verdict['fastest_640x480']}): median {fastest['median_ms']:.2f} ms (<= {TARGET_MS}: "
              f"{'ok' if verdict['median_ok'] else 'MISSED'}), {fastest['speedup_vs_baseline']:.1f}x baseline (>= {TARGET_SPEEDUP}: "
              f"{'ok' if verdict['speedup_ok'] else 'MISSED'}), peak {fastest.get('peak_mb', 0):.0f} MB (<= {TARGET_MB:.0f}: "
              f"{'ok' if verdict['memory_ok'] else 'MISSED'})")
    else:
        print("targets: not checked (they are for CUDA; this machine has none)")
    if args.json:
        report = {
            "date": str(datetime.date.today()), "machine": platform.node(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "cuda": torch.version.cuda, "gpu": gpu_name, "weights": source,
            "quick": args.quick, "rows": rows, "not_run": skipped, "targets": verdict,
        }
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
