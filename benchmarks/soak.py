"""Soak under overload: camera messages faster than the network can take them, for a long time.

    python benchmarks/soak.py [--frames 20000] [--overload 4] [--size 128x96] [--json PATH]

The node's own frame path without ROS: each message goes through hydranet_ros.runtime.intake.offer
(conversion, then the newest-frame-wins FrameWorker) in this thread, as the subscription callback
does, and hydranet_ros.outputs.render builds every output in the worker thread, as the node publishes them.
Messages vary in size (small frames up to 320x240 on CPU; up to 1920x1080 on CUDA) and encoding
(rgb8, bgr8, rgba8, mono8, mono16, yuv422, bayer_rggb8, JPEG, PNG).

A warm-up measures how fast frames are processed; then messages are offered at --overload times
that rate. Reported: RSS after warm-up and at the end, thread counts, latency (message offered ->
outputs built) p50/p99 of processed frames, share dropped, and the most frames ever held at once
(the worker's pending slot plus the one in progress; anything above 2 would be a queue).
Targets: RSS growth < 2 %, constant thread count, p99 < 2 x p50, at most 2 frames held.
Prints a table; --json writes the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from hydranet_ros.io.ros_image import image_fields  # noqa: E402
from hydranet_ros.model.hydranet import HydraNet  # noqa: E402
from hydranet_ros.presets import get_preset  # noqa: E402
from hydranet_ros.outputs import plan as outputs, render as rendering  # noqa: E402
from hydranet_ros.runtime import intake  # noqa: E402
from hydranet_ros.runtime.frame_worker import FrameWorker  # noqa: E402
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig  # noqa: E402
from hydranet_ros.runtime.sizes import parse_size  # noqa: E402

CPU_SIZES = ((96, 72), (160, 120), (200, 150), (256, 192), (320, 240), (318, 212))
GPU_SIZES = ((640, 480), (1280, 720), (1920, 1080), (960, 600))
ENCODINGS = ("rgb8", "bgr8", "rgba8", "mono8", "mono16", "yuv422", "bayer_rggb8", "jpeg", "png")
PUBLISH_ALL = {spec.switch: True for spec in outputs.OUTPUTS.values()}
SUBSCRIBED_ALL = {name: 1 for name in outputs.OUTPUTS}


def _status(field: str) -> int:
    """A number from /proc/self/status (VmRSS in kB, Threads), 0 where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib() -> float:
    return _status("VmRSS") / 1024.0


def message_pool(sizes: tuple[tuple[int, int], ...], seed: int = 0) -> list[tuple[bool, SimpleNamespace]]:
    """(compressed?, message) for every size x encoding: a street-ish gradient plus noise."""
    rng = np.random.default_rng(seed)
    pool = []
    for width, height in sizes:
        rows, cols = np.mgrid[0:height, 0:width]
        rgb = np.dstack([cols * 255 // max(1, width - 1), rows * 255 // max(1, height - 1),
                         (rows + cols) % 256]).astype(np.uint8)
        rgb = np.clip(rgb.astype(np.int16) + rng.integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)
        for encoding in ENCODINGS:
            if encoding in ("jpeg", "png"):
                data = cv2.imencode(".jpg" if encoding == "jpeg" else ".png", rgb[..., ::-1])[1].tobytes()
                pool.append((True, SimpleNamespace(format=encoding, data=data)))
                continue
            if encoding == "rgb8":
                pixels = rgb
            elif encoding == "bgr8":
                pixels = np.ascontiguousarray(rgb[..., ::-1])
            elif encoding == "rgba8":
                pixels = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
            elif encoding == "mono8":
                pixels = np.ascontiguousarray(rgb[..., 1])
            elif encoding == "mono16":
                pixels = rgb[..., 1].astype(np.uint16) * 257
            elif encoding == "yuv422":
                pixels = np.dstack([np.full(rgb.shape[:2], 128, np.uint8), rgb[..., 1]])  # (U|V, Y)
            else:  # bayer_rggb8: a mosaic of the RGB picture
                pixels = np.ascontiguousarray(rgb[..., 1])
                pixels[0::2, 0::2], pixels[1::2, 1::2] = rgb[0::2, 0::2, 0], rgb[1::2, 1::2, 2]
            fields = image_fields(pixels, encoding)
            fields["data"] = fields["data"].tobytes()  # an owned buffer, as a subscription delivers
            pool.append((False, SimpleNamespace(**fields)))
    return pool


class Soak:
    """The node's frame path, instrumented: offer() times, latencies and counters in fixed arrays."""

    def __init__(self, pipeline: Any, frames: int) -> None:
        self.pipeline = pipeline
        self.offered_at = np.zeros(frames, dtype=np.float64)
        self.latency_ms = np.full(frames, np.nan)
        self.pipeline_ms = np.full(frames, np.nan)  # the pipeline's own total: tells jitter in inference from queueing
        self.worker = FrameWorker(process=self._render, on_result=self._done, on_error=self._error)
        self.errors: list[str] = []

    def _render(self, frame: intake.Frame) -> Any:
        plan = outputs.plan_frame(PUBLISH_ALL, SUBSCRIBED_ALL, have_camera_info=False)
        return rendering.render(self.pipeline, frame, plan, depth_encoding="32FC1", overlay_alpha=0.5)

    def _done(self, frame: intake.Frame, rendered: Any) -> None:
        index = frame.header.index
        if index >= 0:
            self.latency_ms[index] = (time.perf_counter() - self.offered_at[index]) * 1e3
            self.pipeline_ms[index] = rendered.timings_ms.get("total", np.nan)

    def _error(self, frame: intake.Frame, exc: BaseException) -> None:
        if len(self.errors) < 20:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def offer(self, compressed: bool, template: SimpleNamespace, index: int) -> None:
        # A new message object per offer (a subscription hands out a new one each time); the
        # pixel buffer is shared with the template, as the pool is read-only.
        msg = SimpleNamespace(**vars(template), header=SimpleNamespace(index=index))
        if index >= 0:
            self.offered_at[index] = time.perf_counter()
        intake.offer(self.worker, msg, compressed=compressed, max_pixels=None, camera_info=None)

    def held(self) -> int:
        stats = self.worker.stats()
        return stats.received - stats.processed - stats.dropped - stats.rejected_total - stats.errors


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    on_gpu = device.startswith("cuda")
    preset = get_preset("kitti")
    pipeline = Pipeline.from_model(HydraNet(preset).eval(), preset,
                                   PipelineConfig(input_size=parse_size(args.size), device=device, output_size="network"))
    pool = message_pool(GPU_SIZES if on_gpu else CPU_SIZES)
    soak = Soak(pipeline, args.frames)
    soak.worker.start()

    # Warm-up at full speed, one frame at a time: allocator pools, oneDNN/cuDNN plans, and the
    # processing rate the overload is measured against.
    warm_started = time.perf_counter()
    for index in range(args.warmup):
        compressed, template = pool[index % len(pool)]
        soak.offer(compressed, template, -1)
        soak.worker.wait_idle()
    per_frame_s = (time.perf_counter() - warm_started) / max(1, args.warmup)
    interval = per_frame_s / args.overload
    gc.collect()
    rss_start, threads_start = rss_mib(), (threading.active_count(), _status("Threads"))
    stats_start = soak.worker.stats()

    rss_samples, thread_samples, held_max = [], [], 0
    started = time.perf_counter()
    order = np.random.default_rng(1).integers(0, len(pool), args.frames)
    for index in range(args.frames):
        due = started + index * interval
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        compressed, template = pool[order[index]]
        soak.offer(compressed, template, index)
        held_max = max(held_max, soak.held())
        if index % 1000 == 999:
            rss_samples.append(round(rss_mib(), 1))
            thread_samples.append(_status("Threads"))
    offered_s = time.perf_counter() - started
    soak.worker.wait_idle()
    gc.collect()
    # Measured with the worker still running, like the start figures.
    rss_end, threads_end = rss_mib(), (threading.active_count(), _status("Threads"))
    stats = soak.worker.stats()
    soak.worker.stop()

    received = stats.received - stats_start.received
    processed = stats.processed - stats_start.processed
    dropped = stats.dropped - stats_start.dropped
    latencies = soak.latency_ms[np.isfinite(soak.latency_ms)]
    p50, p99 = (float(np.percentile(latencies, q)) for q in (50, 99)) if latencies.size else (float("nan"),) * 2
    growth = (rss_end - rss_start) / rss_start * 100.0
    inference = soak.pipeline_ms[np.isfinite(soak.pipeline_ms)]
    inference_p50, inference_p99 = ((float(np.percentile(inference, q)) for q in (50, 99))
                                    if inference.size else (float("nan"),) * 2)
    report = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} intra-op thread(s)",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "device": device,
        "network_input": args.size,
        "frame_sizes": [f"{w}x{h}" for w, h in (GPU_SIZES if on_gpu else CPU_SIZES)],
        "encodings": list(ENCODINGS),
        "frames_offered": received,
        "warmup_frames": args.warmup,
        "processing_ms_per_frame_warmup": round(per_frame_s * 1e3, 2),
        "offer_rate_hz": round(received / offered_s, 1),
        "processed": processed,
        "processed_rate_hz": round(processed / offered_s, 1),
        "dropped": dropped,
        "dropped_share": round(dropped / max(1, received), 4),
        "rejected": stats.rejected_total - stats_start.rejected_total,
        "errors": stats.errors - stats_start.errors,
        "error_examples": soak.errors,
        "latency_p50_ms": round(p50, 2),
        "latency_p99_ms": round(p99, 2),
        "latency_max_ms": round(float(latencies.max()), 2) if latencies.size else None,
        "p99_over_p50": round(p99 / p50, 2) if latencies.size else None,
        "pipeline_p50_ms": round(inference_p50, 2),
        "pipeline_p99_ms": round(inference_p99, 2),
        "rss_start_mib": round(rss_start, 1),
        "rss_end_mib": round(rss_end, 1),
        "rss_growth_percent": round(growth, 2),
        "rss_every_1000_frames_mib": rss_samples,
        "threads_start": {"python": threads_start[0], "os": threads_start[1]},
        "threads_end": {"python": threads_end[0], "os": threads_end[1]},
        "os_threads_every_1000_frames": thread_samples,
        "max_frames_held": held_max,
    }
    report["targets"] = {
        "rss_growth_below_2_percent": growth < 2.0,
        "threads_constant": threads_start == threads_end and set(thread_samples) <= {threads_start[1]},
        "p99_below_2x_p50": bool(latencies.size) and p99 < 2 * p50,
        "no_queue": held_max <= 2,
        "no_errors": report["errors"] == 0,
    }
    return report


def print_table(report: dict[str, Any]) -> None:
    rows = [
        ("machine", report["machine"]), ("date", report["date"]), ("device", report["device"]),
        ("network input", report["network_input"]),
        ("frames offered / processed / dropped", f"{report['frames_offered']} / {report['processed']} / {report['dropped']}"),
        ("offer rate / processed rate", f"{report['offer_rate_hz']} Hz / {report['processed_rate_hz']} Hz "
                                        f"(warm-up {report['processing_ms_per_frame_warmup']} ms per frame)"),
        ("share dropped", f"{report['dropped_share'] * 100:.1f} %"),
        ("latency p50 / p99 / max", f"{report['latency_p50_ms']} / {report['latency_p99_ms']} / {report['latency_max_ms']} ms"
                                    f" (p99/p50 {report['p99_over_p50']})"),
        ("pipeline alone p50 / p99", f"{report['pipeline_p50_ms']} / {report['pipeline_p99_ms']} ms"),
        ("RSS after warm-up -> end", f"{report['rss_start_mib']} -> {report['rss_end_mib']} MiB ({report['rss_growth_percent']:+.2f} %)"),
        ("RSS every 1000 frames", " ".join(str(v) for v in report["rss_every_1000_frames_mib"][:12])
         + (" ..." if len(report["rss_every_1000_frames_mib"]) > 12 else "")),
        ("threads (python, os) start -> end", f"{tuple(report['threads_start'].values())} -> {tuple(report['threads_end'].values())}"),
        ("most frames held at once", str(report["max_frames_held"])),
        ("errors / rejected", f"{report['errors']} / {report['rejected']}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:{width}s}  {value}")
    print("targets: " + ", ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in report["targets"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=None, help="messages to offer (default 20000 on CPU, 5000 on CUDA)")
    parser.add_argument("--warmup", type=int, default=200, help="frames processed one by one first (default 200)")
    parser.add_argument("--overload", type=float, default=4.0, help="offer rate as a multiple of the processing rate")
    parser.add_argument("--size", default=None, help="network input WIDTHxHEIGHT (default 128x96 on CPU, 640x480 on CUDA)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    gpu = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    args.frames = args.frames or (5000 if gpu else 20000)
    args.size = args.size or ("640x480" if gpu else "128x96")
    if args.overload <= 1:
        parser.error("--overload must be above 1: the point is to offer more than can be processed")
    report = run(args)
    print_table(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(report["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
