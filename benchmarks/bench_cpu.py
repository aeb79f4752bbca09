"""Every installed CPU engine x precision, against today's torch path and against the roofline.

    python benchmarks/bench_cpu.py [--json PATH] [--rounds N] [--threads N] [--sizes 640x480,1226x370]

For each size, every engine (torch fp32, the project's path before this benchmark; onnxruntime and
openvino in fp32 and int8 where installed) is built first, then timed in interleaved rounds: each
round runs every engine's forward and its whole pipeline (uint8 frame -> labels + depth) once, so a
drift in the machine's speed (other jobs on a shared machine) falls on all of them alike and their
ratios stay fair. The machine's achievable fp32 rate (a large sgemm at the same thread count) is
measured in the same rounds; the model's FLOPs come from torch's FLOP counter, so each forward is
also given as a multiple of the compute floor (FLOPs / achievable rate).

int8 engines are calibrated on synthetic street frames (seed 7) and must pass the accuracy gate of
engines/int8.py on held-out frames while building; the benchmark then re-checks them against torch
fp32 on the real sample frames (../shared/data) and on held-out synthetic frames (seed 1000003),
and fp32 engines' largest logit difference from torch. JSON top level: ``best_fp32_speedup_vs_torch``
and ``best_int8_speedup_vs_torch`` (whole pipeline, 640x480), ``overhead`` per engine, the rate.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydranet_ros.model.checkpoints import load_weights  # noqa: E402
from hydranet_ros.runtime.calibration import prepare  # noqa: E402
from hydranet_ros.runtime.choices import installed_backends  # noqa: E402
from hydranet_ros.runtime.engine_cache import cpu_identity  # noqa: E402
from hydranet_ros.runtime.engines import int8  # noqa: E402
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), ROOT.parent / "shared" / "data")
REAL_FRAMES = ("kitti/000099.png", "nyud/000464.png", "nyud/000433.png")
CALIBRATION_SEED, HELD_OUT_SEED = 7, 1000003  # the held-out seed is the shipped model's evaluation seed
TARGETS = {"fp32": 2.0, "int8": 3.5, "overhead": 1.10}
GEMM_N = 1024


def plan(installed: frozenset[str], wanted: tuple[str, ...] = ("onnxruntime", "openvino")) -> list[tuple[str, str]]:
    """(backend, precision) rows: torch fp32 first (the reference), then each installed CPU runtime."""
    rows = [("torch", "fp32")]
    for backend in ("onnxruntime", "openvino"):
        if backend in installed and backend in wanted:
            rows += [(backend, "fp32"), (backend, "int8")]
    return rows


def model_flops(model: torch.nn.Module, size: tuple[int, int]) -> int:
    """FLOPs of one forward at ``size`` (width, height), counted by torch (a multiply-add is 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    from hydranet_ros.model.fold import fold_batchnorm

    import copy

    folded = fold_batchnorm(copy.deepcopy(model).float().eval())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        folded(torch.zeros(1, 3, size[1], size[0]))
    return int(counter.get_total_flops())


def gemm_rate(n: int = GEMM_N) -> float:
    """Achievable fp32 GFLOP/s now: one n x n x n sgemm, as torch runs it with its threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    start = time.perf_counter()
    torch.mm(a, b)
    return 2 * n ** 3 / (time.perf_counter() - start) / 1e9


def synthetic_frames(count: int, seed: int) -> list[np.ndarray]:
    from hydranet_ros.train.synthetic import SyntheticStreets

    return [f["image"] for f in SyntheticStreets(size=(640, 192), length=count, seed=seed)]


def real_frames() -> list[np.ndarray]:
    frames = []
    for name in REAL_FRAMES:
        image = cv2.imread(str(SHARED / name), cv2.IMREAD_COLOR)
        if image is not None:
            frames.append(np.ascontiguousarray(image[..., ::-1]))
    return frames


def latency(ms: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(ms), "p90_ms": float(np.percentile(ms, 90)), "n": len(ms)}


def engine_outputs(pipe: Pipeline, inputs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The engine's raw outputs (copied: some engines reuse their output buffers) on ``inputs``."""
    outputs = []
    for x in inputs:
        image = torch.from_numpy(x)
        image = image.contiguous(memory_format=torch.channels_last) if pipe.engine.channels_last else image.contiguous()
        outputs.append({k: v.float().numpy().copy() for k, v in pipe.engine(image).items()})
    return outputs


def accuracy(got: list[dict], want: list[dict], inputs: list[np.ndarray]) -> dict:
    """The int8 gate's figures of one engine's outputs against torch fp32's, and the largest
    logit difference."""
    index = {id(x): i for i, x in enumerate(inputs)}
    figures = int8.measure_gate(lambda x: got[index[id(x)]], lambda x: want[index[id(x)]], inputs)
    worst = max(float(np.abs(g["segm"] - w["segm"]).max()) for g, w in zip(got, want))
    return {**figures.as_dict(), "passed": figures.passed, "max_abs_logit_diff": worst}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds per size (default 12)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every engine (default 2)")
    parser.add_argument("--sizes", default="640x480,1226x370", help="network input sizes (default 640x480,1226x370)")
    parser.add_argument("--weights", default="default", help="weights (default: the shipped default model)")
    parser.add_argument("--calibration-frames", type=int, default=48, help="synthetic frames for int8 calibration (default 48)")
    parser.add_argument("--backends", default="onnxruntime,openvino", help="CPU runtimes to measure beside torch "
                                                                          "(default: onnxruntime,openvino, where installed)")
    parser.add_argument("--cache-dir", help="engine cache (default: a fresh temporary folder, so every build is timed)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be >= 1")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    torch.set_num_threads(args.threads)

    weights = load_weights(args.weights)
    model, preset = weights.build_model().eval(), weights.preset
    rows_planned = plan(installed_backends(), tuple(args.backends.split(",")))
    work = tempfile.TemporaryDirectory(prefix="bench_cpu-")
    cache_dir = args.cache_dir or str(Path(work.name) / "engines")
    calibration = Path(work.name) / "calibration"
    calibration.mkdir()
    for i, frame in enumerate(synthetic_frames(args.calibration_frames, CALIBRATION_SEED)):
        cv2.imwrite(str(calibration / f"{i:03d}.png"), frame[..., ::-1])
    judged = {"real": real_frames(), "synthetic": synthetic_frames(16, HELD_OUT_SEED)}
    sample = judged["real"][0] if judged["real"] else judged["synthetic"][0]
    load_before = os.getloadavg()

    rows, rates = [], []
    for size in sizes:
        flops = model_flops(model, size)
        frame = np.ascontiguousarray(cv2.resize(sample, size, interpolation=cv2.INTER_AREA))
        pipes = {}
        for backend, precision in rows_planned:
            options = {}
            if backend != "torch":
                options = {"cache_dir": cache_dir, "threads": args.threads}
                if precision == "int8":
                    options["calibration"] = str(calibration)
                    options["calibration_frames"] = args.calibration_frames
            start = time.perf_counter()
            try:
                pipes[(backend, precision)] = Pipeline.from_model(
                    model, preset, PipelineConfig(backend=backend, device="cpu", precision=precision, input_size=size,
                                                  strict=True, engine_options=options),
                    weights_sha256=weights.sha256)
            except Exception as exc:  # a missed gate or a failed build is a result, not a crash
                print(f"{backend} {precision} {size[0]}x{size[1]}: not built: {exc}", flush=True)
                rows.append({"size": f"{size[0]}x{size[1]}", "backend": backend, "precision": precision,
                             "built": False, "error": str(exc)})
                continue
            print(f"built {backend} {precision} {size[0]}x{size[1]} in {time.perf_counter() - start:.1f} s", flush=True)
        forward_ms = {key: [] for key in pipes}
        pipeline_ms = {key: [] for key in pipes}
        inputs = {key: pipe._preprocess(frame, "rgb", pipe.geometry_for(*size)) for key, pipe in pipes.items()}
        for key, pipe in pipes.items():  # warm-up: first runs allocate and pick kernels
            for _ in range(2):
                pipe.engine(inputs[key])
                pipe.process(frame)
        for round_index in range(args.rounds):
            rates.append(gemm_rate())
            # Rotate the order every round: no engine always runs right after the same neighbour.
            keys = list(pipes)
            keys = keys[round_index % len(keys):] + keys[:round_index % len(keys)]
            for key in keys:
                pipe = pipes[key]
                start = time.perf_counter()
                pipe.engine(inputs[key])
                forward_ms[key].append((time.perf_counter() - start) * 1e3)
                start = time.perf_counter()
                pipe.process(frame)
                pipeline_ms[key].append((time.perf_counter() - start) * 1e3)
        reference = pipes.get(("torch", "fp32"))
        judged_inputs = {name: [prepare(f, size=size, mean=preset.mean, std=preset.std, fill_request=False).numpy() for f in frames]
                         for name, frames in judged.items() if frames}
        wanted = {name: engine_outputs(reference, xs) for name, xs in judged_inputs.items()} if reference else {}
        for key, pipe in pipes.items():
            backend, precision = key
            row = {"size": f"{size[0]}x{size[1]}", "backend": backend, "precision": precision, "built": True,
                   "flops": flops, "forward": latency(forward_ms[key]), "pipeline": latency(pipeline_ms[key])}
            row["overhead"] = row["pipeline"]["median_ms"] / row["forward"]["median_ms"]
            if reference is not None and key != ("torch", "fp32"):
                row["accuracy"] = {name: accuracy(engine_outputs(pipe, xs), wanted[name], xs)
                                   for name, xs in judged_inputs.items()}
                row["int8_gate_at_build"] = pipe.info.get("int8_gate")
            rows.append(row)

    rate = statistics.median(rates)
    for size_text in {r["size"] for r in rows}:
        torch_row = next((r for r in rows if r["size"] == size_text and r["backend"] == "torch" and r.get("built")), None)
        for row in rows:
            if row["size"] != size_text or not row.get("built"):
                continue
            floor_ms = row["flops"] / (rate * 1e9) * 1e3
            row["floor_ms"] = floor_ms
            row["forward_over_floor"] = row["forward"]["median_ms"] / floor_ms
            if torch_row:
                row["speedup_vs_torch"] = torch_row["pipeline"]["median_ms"] / row["pipeline"]["median_ms"]
                row["forward_speedup_vs_torch"] = torch_row["forward"]["median_ms"] / row["forward"]["median_ms"]

    def best(precision: str) -> dict | None:
        candidates = [r for r in rows if r["size"] == "640x480" and r.get("built") and r["precision"] == precision
                      and r["backend"] != "torch" and r.get("speedup_vs_torch")
                      and (precision != "int8" or all(a["passed"] for a in r.get("accuracy", {}).values()))]
        return max(candidates, key=lambda r: r["speedup_vs_torch"], default=None)

    best_fp32, best_int8 = best("fp32"), best("int8")
    command = "python benchmarks/bench_cpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {
        "date": str(datetime.date.today()), "machine": platform.node(), "cpu": _cpu_name(), "cpu_flags": cpu_identity(),
        "cpu_count": os.cpu_count(), "threads": args.threads, "rounds": args.rounds, "command": command.strip(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "versions": _versions(), "weights": weights.source,
        "achievable_gflops": rate, "achievable_gflops_range": [min(rates), max(rates)] if rates else None,
        "best_fp32_speedup_vs_torch": best_fp32["speedup_vs_torch"] if best_fp32 else None,
        "best_fp32_engine": best_fp32 and best_fp32["backend"],
        "best_int8_speedup_vs_torch": best_int8["speedup_vs_torch"] if best_int8 else None,
        "best_int8_engine": best_int8 and best_int8["backend"],
        "overhead": {f"{r['backend']} {r['precision']} {r['size']}": r["overhead"] for r in rows if r.get("built")},
        "targets": TARGETS,
        "rows": rows,
    }
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    work.cleanup()
    return 0


def print_table(report: dict) -> None:
    print(f"\nbench_cpu  {report['date']}  {report['machine']}  {report['cpu']}  {report['threads']} threads  "
          f"{report['rounds']} interleaved rounds  load {report['load_average_before'][0]:.1f} -> {report['load_average_after'][0]:.1f}")
    print(f"achievable fp32 rate (sgemm {GEMM_N}^3, same rounds): {report['achievable_gflops']:.1f} GFLOP/s "
          f"(range {report['achievable_gflops_range'][0]:.1f}-{report['achievable_gflops_range'][1]:.1f})")
    print(f"{'size':>9s} {'engine':12s} {'prec':4s} | {'forward med/p90 ms':>19s} | {'pipeline med/p90 ms':>20s} | "
          f"{'vs torch':>8s} {'overhead':>8s} {'/floor':>6s} | accuracy vs torch fp32 (labels equal, depth median rel. error)")
    for r in report["rows"]:
        if not r.get("built"):
            print(f"{r['size']:>9s} {r['backend']:12s} {r['precision']:4s} | not built: {r['error'][:120]}")
            continue
        f, p = r["forward"], r["pipeline"]
        acc = ""
        for name, a in r.get("accuracy", {}).items():
            acc += f"{name} {100 * a['labels_agree']:.2f} % / {100 * a['depth_median_rel']:.2f} %  "
        if r["precision"] == "fp32" and r.get("accuracy"):
            acc = f"max |logits - torch| {max(a['max_abs_logit_diff'] for a in r['accuracy'].values()):.1e}"
        print(f"{r['size']:>9s} {r['backend']:12s} {r['precision']:4s} | {f['median_ms']:8.1f} /{f['p90_ms']:8.1f} | "
              f"{p['median_ms']:9.1f} /{p['p90_ms']:8.1f} | {r.get('speedup_vs_torch', 0):7.2f}x {r['overhead']:8.3f} "
              f"{r['forward_over_floor']:6.2f} | {acc}")
    fp32, int8_ = report["best_fp32_speedup_vs_torch"], report["best_int8_speedup_vs_torch"]
    worst = max(report["overhead"].values()) if report["overhead"] else float("nan")
    verdict = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    print(f"targets (pipeline, 640x480): best fp32 {report['best_fp32_engine']} "
          f"{fp32 or 0:.2f}x (>= {TARGETS['fp32']}: {verdict(fp32 and fp32 >= TARGETS['fp32'])}), best int8 within the gates "
          f"{report['best_int8_engine']} {int8_ or 0:.2f}x (>= {TARGETS['int8']}: {verdict(int8_ and int8_ >= TARGETS['int8'])}), "
          f"worst overhead {worst:.3f} (<= {TARGETS['overhead']}: {verdict(worst <= TARGETS['overhead'])})")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    from hydranet_ros.runtime.engine_cache import installed_versions

    return installed_versions(("torch", "onnx", "onnxruntime", "openvino", "nncf"))


if __name__ == "__main__":
    sys.exit(main())
