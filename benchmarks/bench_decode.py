"""What checking a JPEG/PNG container before decoding costs on ordinary camera frames.

    python benchmarks/bench_decode.py [--rounds 15] [--repeats 20] [--json PATH]

Two ways to turn a CompressedImage's bytes into a BGR frame, on the same frames in one run:
  opencv   cv2.imdecode alone (what the node did before issue 12, after reading the size)
  checked  hydranet_ros.io.image_files.decode: the container walk, cv2.imdecode, the JPEG
           cut-short check (the path every CompressedImage and `hydranet infer` image takes now)
Frames: the KITTI and NYU samples in ../shared/data resized to 640x480 and at their own size
(a synthetic street picture without them), as baseline JPEG (quality 90), progressive JPEG and
PNG. Rounds interleave the two in alternating order; the table gives the median time per decode
of each and their ratio. --json writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test")]

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from hydranet_ros.io import image_files  # noqa: E402
from support import KITTI_FRAME, NYU_FRAME  # noqa: E402


def frames() -> dict[str, np.ndarray]:
    found = {}
    for name, path in (("kitti", KITTI_FRAME), ("nyu", NYU_FRAME)):
        picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if picture is not None:
            found[f"{name} 640x480"] = cv2.resize(picture, (640, 480), interpolation=cv2.INTER_AREA)
            found[f"{name} {picture.shape[1]}x{picture.shape[0]}"] = picture
    if not found:
        rows, cols = np.mgrid[0:480, 0:640]
        found["synthetic 640x480"] = np.dstack([cols * 255 // 640, rows * 255 // 480, (rows + cols) % 256]).astype(np.uint8)
    return found


def encodings(picture: np.ndarray) -> dict[str, bytes]:
    return {
        "jpeg": cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes(),
        "jpeg progressive": cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 90,
                                                           cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
        "png": cv2.imencode(".png", picture)[1].tobytes(),
    }


def opencv(data: np.ndarray) -> np.ndarray:
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def checked(data: np.ndarray) -> np.ndarray:
    return image_files.decode(data, 3840 * 2160)


def timed(decode, data: np.ndarray, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        decode(data)
    return (time.perf_counter() - started) / repeats * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=20, help="decodes per timing")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    rows = []
    for frame_name, picture in frames().items():
        for kind, data in encodings(picture).items():
            buffer = np.frombuffer(data, np.uint8)
            np.testing.assert_array_equal(opencv(buffer), checked(buffer))  # same pixels, or the comparison means nothing
            times = {"opencv": [], "checked": []}
            for round_index in range(args.rounds):
                order = ("opencv", "checked") if round_index % 2 == 0 else ("checked", "opencv")
                for name in order:
                    times[name].append(timed(opencv if name == "opencv" else checked, buffer, args.repeats))
            medians = {name: float(np.median(values)) for name, values in times.items()}
            rows.append({"frame": frame_name, "encoding": kind, "bytes": len(data),
                         "opencv_ms": round(medians["opencv"], 3), "checked_ms": round(medians["checked"], 3),
                         "ratio": round(medians["checked"] / medians["opencv"], 3)})
    report = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, OpenCV {cv2.__version__}, "
                   f"cv2 threads 1",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "rounds": args.rounds, "repeats": args.repeats, "rows": rows,
    }
    print(f"{report['machine']}, {report['date']}, load average {report['load_average']}")
    print(f"{'frame':18s} {'encoding':17s} {'bytes':>8s} {'opencv ms':>10s} {'checked ms':>11s} {'ratio':>6s}")
    for row in rows:
        print(f"{row['frame']:18s} {row['encoding']:17s} {row['bytes']:8d} {row['opencv_ms']:10.3f} "
              f"{row['checked_ms']:11.3f} {row['ratio']:6.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
