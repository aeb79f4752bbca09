"""Image -> numpy -> Image at 1920x1080: how much the conversions cost per frame.

    python benchmarks/bench_conversions.py [--json PATH] [--repeats N]

For each encoding and for the two buffers messages arrive in (array.array('B') from rclpy,
numpy uint8 from rosbags) it times:
  to_numpy       image_to_numpy(msg), and whether the result is a view on msg.data
  to_frame       image_to_frame(msg): the HxWx3 uint8 camera frame (YUV converted by OpenCV)
  round_trip     image_to_numpy -> image_fields -> a new Image whose data is a view
  round_trip_own the same, but the new Image owns a copy of its bytes (what a publisher holds)
Median and 90th percentile in milliseconds, printed as a table and written as JSON.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import platform
import statistics
import sys
import time
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hydranet_ros.io.ros_image import ImageRejected, image_fields, image_to_frame, image_to_numpy  # noqa: E402

WIDTH, HEIGHT = 1920, 1080
BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "yuv422": 2, "32FC1": 4}


# A message is anything with sensor_msgs/Image's fields: the conversions read nothing else.
Image = SimpleNamespace


def make_message(encoding: str, container: str, rng: np.random.Generator) -> Image:
    step = WIDTH * BYTES_PER_PIXEL[encoding]
    if encoding == "32FC1":
        raw = rng.uniform(0.5, 80.0, (HEIGHT, WIDTH)).astype(np.float32).tobytes()
    else:
        raw = rng.integers(0, 256, step * HEIGHT, dtype=np.uint8).tobytes()
    data = array.array("B", raw) if container == "array" else np.frombuffer(bytearray(raw), np.uint8)
    return Image(height=HEIGHT, width=WIDTH, encoding=encoding, is_bigendian=0, step=step, data=data)


def timed(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    for _ in range(3):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    return {"median_ms": statistics.median(samples), "p90_ms": samples[int(0.9 * (len(samples) - 1))]}


def round_trip(msg: Image, own: bool) -> Image:
    fields = image_fields(image_to_numpy(msg), msg.encoding)
    if own:
        fields["data"] = fields["data"].tobytes()
    return Image(**fields)


def bench(repeats: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    for encoding in BYTES_PER_PIXEL:
        for container in ("array", "ndarray"):
            msg = make_message(encoding, container, rng)
            buffer = msg.data if isinstance(msg.data, np.ndarray) else np.frombuffer(msg.data, np.uint8)
            pixels = image_to_numpy(msg)
            back = round_trip(msg, own=True)
            exact = image_to_numpy(back).tobytes() == pixels.tobytes()
            row = {
                "encoding": encoding,
                "container": container,
                "to_numpy_is_view": bool(np.shares_memory(pixels, buffer)),
                "round_trip_exact": exact,
                "to_numpy": timed(lambda: image_to_numpy(msg), repeats),
                "round_trip": timed(lambda: round_trip(msg, own=False), repeats),
                "round_trip_own": timed(lambda: round_trip(msg, own=True), max(repeats // 4, 10)),
            }
            try:
                image_to_frame(msg)
                row["to_frame"] = timed(lambda: image_to_frame(msg), max(repeats // 4, 10))
            except ImageRejected:
                row["to_frame"] = None  # 32FC1 is depth, not a camera frame
            rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    def cell(timing: dict[str, float] | None) -> str:
        return "-" if timing is None else f"{timing['median_ms']:.4f}/{timing['p90_ms']:.4f}"

    header = f"{'encoding':9} {'buffer':8} {'view':5} {'to_numpy':>17} {'to_frame':>17} {'round_trip':>17} {'round_trip_own':>17}"
    print(f"{WIDTH}x{HEIGHT}, milliseconds as median/p90")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['encoding']:9} {row['container']:8} {str(row['to_numpy_is_view']):5} {cell(row['to_numpy']):>17} "
              f"{cell(row['to_frame']):>17} {cell(row['round_trip']):>17} {cell(row['round_trip_own']):>17}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per figure (default 200)")
    args = parser.parse_args(argv)
    rows = bench(args.repeats)
    print_table(rows)
    if args.json:
        report = {
            "size": [WIDTH, HEIGHT],
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "numpy": np.__version__, "cpus": os.cpu_count()},
            "date": time.strftime("%Y-%m-%d"),
            "results": rows,
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
