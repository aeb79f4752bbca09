"""Several cameras: one network with their frames batched vs one pipeline per camera.

    python benchmarks/bench_multicam.py [--json PATH] [--cameras 1,2,4] [--rounds 3] [--frames 3]
                                        [--device cpu|cuda] [--backend B] [--precision P] [--threads T]
                                        [--size 640x480]

For N cameras at 640x480 (the shipped default weights, network input 640x480; --size for a quick
run):
- batched: ONE process, one pipeline, each step runs the N cameras' frames as one batch
  (Pipeline.process_batch, what the multi-camera node and `hydranet bag --topic ... --topic ...` do);
- separate: N processes, one pipeline each (what one node per camera does), all running at once.
Both in the same run, interleaved round by round (ABBA order), so a drift of the shared machine
falls on both. On the CPU both get the same cores: batched runs T torch threads, each separate
process T // N (at least one); T = the CPUs this process may use (--threads to set it).

The engine is what the node runs by default (--backend auto: OpenVINO, else ONNX Runtime, else
torch on the CPU; --backend to choose). torch batches natively (one call on the N frames). The
ONNX Runtime and OpenVINO engines built for N cameras run a batch in lanes (engines/base.py
Engine.lanes): min(N, T) threads in the one process, each running whole frames with a
single-thread forward of the one loaded model; a separate process here gets T // N threads.
On CUDA, cuda-graph captures a graph per batch size and tensorrt is built for a batch 1..N.

Per mode: frames/s (all cameras together), frames per CPU-second (the processes' CPU time while
running: on a shared machine N processes get a bigger share of the cores than one, which
frames/s alone cannot tell from a gain), per-frame latency median and p99 (a batched frame's
latency is its batch's: its outputs are ready when the batch is), peak memory: host RSS (peak
resident set of each process, summed over the separate processes; their PSS, which counts shared
library pages once, beside it) and on CUDA the device memory the mode's processes hold (the
device's used memory after their warm-up minus before they started: contexts included).
The JSON has top-level ``batched_speedup_n4`` (batched frames/s over separate frames/s at N=4)
and ``memory_ratio_n4`` (batched peak over separate peak: host RSS on CPU, GPU memory on CUDA);
the last line printed is the verdict against the targets: batched throughput at N=4 at least the
separate pipelines', and less memory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = (640, 480)  # the default; --size changes it
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLES = ("kitti/000099.png", "nyud/000464.png", "nyud/000433.png", "kitti/000099.png")


def camera_frames(count: int, size: tuple[int, int] = SIZE, seed: int = 0) -> list[np.ndarray]:
    """``count`` different RGB frames of ``size``: the shared sample frames (the fourth mirrored),
    else seeded noise."""
    import cv2

    frames = []
    for index in range(count):
        path = DATA / SAMPLES[index % len(SAMPLES)]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is None:
            image = np.random.default_rng(seed + index).integers(0, 255, (size[1], size[0], 3), np.uint8)
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)[..., ::-1]
        frames.append(np.ascontiguousarray(image[:, ::-1] if index >= len(SAMPLES) - 1 else image))
    return frames


# -- worker processes ------------------------------------------------------------------------------

def _pss_mb() -> float | None:
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _worker(conn, spec: dict) -> None:
    """One process: a pipeline and its cameras' frames; answers 'run K' with K steps' timings."""
    import torch

    torch.set_num_threads(spec["threads"])
    from hydranet_ros.runtime.pipeline import FrameRequest, Pipeline, PipelineConfig

    pipe = Pipeline.create(PipelineConfig(weights="default", device=spec["device"], backend=spec["backend"],
                                          precision=spec["precision"], input_size=spec["size"], output_size="input",
                                          max_batch=len(spec["frames"])))
    frames = camera_frames(spec["cameras"], spec["size"])[spec["frames"][0]:spec["frames"][-1] + 1]
    requests = [FrameRequest(frame) for frame in frames]

    def step() -> None:
        if len(requests) == 1:
            pipe.process(frames[0])
        else:
            pipe.process_batch(requests)

    for _ in range(2):  # warm-up: allocator, oneDNN / cuDNN choices, graph capture
        step()
    conn.send(("ready", None))
    while True:
        command, count = conn.recv()
        if command == "quit":
            cuda = torch.cuda.is_available() and spec["device"] != "cpu"
            conn.send(("done", {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                "pss_mb": _pss_mb(),
                                "torch_peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
                                "info": {k: str(v) for k, v in pipe.info.items() if k in ("backend", "precision", "device")}
                                | {"engine_max_batch": str(pipe.engine.max_batch or "any"),
                                   "engine_lanes": str(pipe.engine.lanes)}}))
            return
        latencies = []
        cpu_start = time.process_time()  # every thread of this process
        for _ in range(count):
            start = time.perf_counter()
            step()
            latencies.append((time.perf_counter() - start) * 1e3)
        conn.send(("ran", (latencies, time.process_time() - cpu_start)))


class Mode:
    """The processes of one mode (batched: one process with every camera; separate: one per camera)."""

    def __init__(self, name: str, cameras: int, args: argparse.Namespace, threads: int) -> None:
        self.name, self.cameras = name, cameras
        context = mp.get_context("spawn")  # a fresh interpreter each: its own peak RSS
        groups = [list(range(cameras))] if name == "batched" else [[i] for i in range(cameras)]
        per_process = threads if name == "batched" else max(1, threads // cameras)
        self.threads = per_process
        self.processes, self.conns = [], []
        for frames in groups:
            parent, child = context.Pipe()
            spec = {"device": args.device, "backend": args.backend, "precision": args.precision, "size": args.size,
                    "threads": per_process, "cameras": cameras, "frames": frames}
            process = context.Process(target=_worker, args=(child, spec), daemon=True)
            process.start()
            self.processes.append(process)
            self.conns.append(parent)
        self.latencies: list[float] = []
        self.frames = 0
        self.seconds = 0.0
        self.cpu_seconds = 0.0  # CPU time the mode's processes used while running (all their threads)
        self.memory: list[dict] = []

    def wait_ready(self) -> None:
        for conn in self.conns:
            kind, _ = conn.recv()
            assert kind == "ready", kind

    def run(self, steps: int) -> None:
        """``steps`` steps in every process at once; wall time from the first send to the last answer."""
        start = time.perf_counter()
        for conn in self.conns:
            conn.send(("run", steps))
        for conn in self.conns:
            kind, (latencies, cpu_s) = conn.recv()
            assert kind == "ran", kind
            self.cpu_seconds += cpu_s
            self.latencies += latencies  # one entry per step: every frame of a batched step has its batch's latency
        self.seconds += time.perf_counter() - start
        self.frames += steps * self.cameras

    def finish(self) -> None:
        for conn in self.conns:
            conn.send(("quit", 0))
        for conn in self.conns:
            kind, memory = conn.recv()
            self.memory.append(memory)
        for process in self.processes:
            process.join(30)

    def row(self) -> dict:
        per_frame = self.latencies if self.name == "separate" else [ms for ms in self.latencies for _ in range(self.cameras)]
        pss = [m["pss_mb"] for m in self.memory]
        return {
            "cameras": self.cameras, "mode": self.name, "processes": len(self.processes), "threads_per_process": self.threads,
            "frames": self.frames, "fps": self.frames / self.seconds,
            "cpu_s": self.cpu_seconds, "frames_per_cpu_s": self.frames / self.cpu_seconds if self.cpu_seconds else None,
            "latency_ms": {"median": statistics.median(per_frame), "p99": float(np.percentile(per_frame, 99)),
                           "n": len(per_frame)},
            "peak_rss_mb": sum(m["peak_rss_mb"] for m in self.memory),
            "pss_mb": sum(pss) if all(p is not None for p in pss) else None,
            "info": self.memory[0]["info"],
        }


def gpu_used_mb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


def measure(cameras: int, args: argparse.Namespace, threads: int) -> list[dict]:
    """Batched and separate for ``cameras`` cameras, interleaved ABBA round by round."""
    cuda = args.device != "cpu"
    before = gpu_used_mb() if cuda else None
    batched = Mode("batched", cameras, args, threads)
    batched.wait_ready()
    after_batched = gpu_used_mb() if cuda else None
    separate = Mode("separate", cameras, args, threads)
    separate.wait_ready()
    after_separate = gpu_used_mb() if cuda else None
    for round_ in range(args.rounds):
        for mode in ((batched, separate) if round_ % 2 == 0 else (separate, batched)):
            mode.run(args.frames)
    rows = []
    for mode, gpu in ((batched, None if before is None else after_batched - before),
                      (separate, None if before is None else after_separate - after_batched)):
        mode.finish()
        rows.append({**mode.row(), "gpu_mb": gpu})
    return rows


def verdict(report: dict) -> str:
    speedup, ratio, where = report["batched_speedup_n4"], report["memory_ratio_n4"], report["device"]
    if speedup is None:
        return "verdict: N=4 was not measured (--cameras without 4)"
    memory = "GPU memory" if report["device"] != "cpu" else "host RSS"
    return (f"verdict at N=4 on {where}: batched throughput {speedup:.2f}x the 4 separate pipelines' "
            f"(>= 1.00: {'ok' if speedup >= 1.0 else 'MISSED'}), {memory} {ratio:.2f}x theirs "
            f"(< 1.00: {'ok' if ratio < 1.0 else 'MISSED'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--cameras", default="1,2,4", help="camera counts to measure (default 1,2,4)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per camera count (default 3)")
    parser.add_argument("--frames", type=int, default=3, help="steps per mode and round (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--backend", default="auto",
                        help="auto (default: what the node runs), torch, cuda-graph, tensorrt, openvino, onnxruntime")
    parser.add_argument("--precision", default="fp32", help="fp32, fp16 or int8 where the engine has it (default fp32)")
    parser.add_argument("--size", default=f"{SIZE[0]}x{SIZE[1]}", help="camera frames and network input WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads shared by each mode (default: the CPUs this process may use)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    args.size = (width, height)
    counts = [int(n) for n in args.cameras.split(",")]
    threads = args.threads or len(os.sched_getaffinity(0))

    import torch

    if args.device != "cpu" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch sees no CUDA GPU")
    rows = []
    for cameras in counts:
        rows += measure(cameras, args, threads)
        print(f"  measured {cameras} camera(s)", file=sys.stderr, flush=True)

    def pair(n: int) -> tuple[dict, dict] | None:
        found = {row["mode"]: row for row in rows if row["cameras"] == n}
        return (found["batched"], found["separate"]) if len(found) == 2 else None

    memory_key = "gpu_mb" if args.device != "cpu" else "peak_rss_mb"
    n4 = pair(4)
    report = {
        "date": str(datetime.date.today()), "machine": platform.node(), "cpus": len(os.sched_getaffinity(0)),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "device": args.device,
        "gpu": torch.cuda.get_device_name() if args.device != "cpu" and torch.cuda.is_available() else None,
        "command": "python benchmarks/bench_multicam.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "size": f"{width}x{height}", "threads": threads, "backend": args.backend, "precision": args.precision,
        "rounds": args.rounds, "frames_per_round": args.frames, "rows": rows,
        "batched_speedup_n4": n4[0]["fps"] / n4[1]["fps"] if n4 else None,
        "memory_ratio_n4": n4[0][memory_key] / n4[1][memory_key] if n4 else None,
        "memory_compared": memory_key,
        # Frames per CPU-second, batched over separate: on a shared CPU, N processes get a bigger
        # share of the cores than one (more runnable threads), which frames/s does not separate out.
        "cpu_efficiency_n4": (n4[0]["frames_per_cpu_s"] / n4[1]["frames_per_cpu_s"]
                              if n4 and n4[0]["frames_per_cpu_s"] and n4[1]["frames_per_cpu_s"] else None),
    }
    print(f"bench_multicam  {report['date']}  {report['machine']}  {report['cpus']} CPUs  torch {report['torch']}  "
          f"{args.device} {args.backend} {args.precision}  {width}x{height}  {args.rounds} rounds x {args.frames} steps")
    ran = rows[0]["info"]
    print(f"engine run: {ran.get('backend')} {ran.get('precision')} on {ran.get('device')}, "
          f"frames per engine call: at most {ran.get('engine_max_batch')}, "
          f"lanes in the batched process at N={counts[-1]}: {rows[-2]['info'].get('engine_lanes')}")
    print("| cameras | mode | processes x threads | frames/s | frames per CPU-s | latency median ms | p99 ms "
          "| peak RSS MB (PSS) | GPU MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        pss = f" ({row['pss_mb']:.0f})" if row["pss_mb"] is not None else ""
        gpu = f"{row['gpu_mb']:.0f}" if row["gpu_mb"] is not None else "-"
        per_cpu = f"{row['frames_per_cpu_s']:.3f}" if row["frames_per_cpu_s"] else "-"
        print(f"| {row['cameras']} | {row['mode']} | {row['processes']} x {row['threads_per_process']} | {row['fps']:.2f} | "
              f"{per_cpu} | "
              f"{row['latency_ms']['median']:.0f} | {row['latency_ms']['p99']:.0f} | {row['peak_rss_mb']:.0f}{pss} | {gpu} |")
    for n in counts:
        found = pair(n)
        if found:
            batched, separate = found
            per_cpu = (f"{batched['frames_per_cpu_s'] / separate['frames_per_cpu_s']:.2f}"
                       if batched["frames_per_cpu_s"] and separate["frames_per_cpu_s"] else "-")
            print(f"N={n}: batched / separate frames/s {batched['fps'] / separate['fps']:.2f}, "
                  f"frames per CPU-second {per_cpu}, memory ({memory_key}) {batched[memory_key] / separate[memory_key]:.2f}")
    report["verdict"] = verdict(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(report["verdict"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
