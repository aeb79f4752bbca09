"""The chained residual pooling's 5x5 max-pool on CUDA, done five ways: which is fastest at the
decoder's real shapes, and what each gives the whole pipeline (cuda-graph, 640x480).

    python benchmarks/bench_crp_pool.py [--json PATH] [--precision fp16] [--size 640x480]

The pipeline's network is channels-last; PyTorch's channels-last max-pool kernel was the largest
item in a GPU frame's profile (tools/gpu_profile.py). Every variant is checked equal to
F.max_pool2d on random data before it is timed. The per-pool column is eager (each launch timed
with its gaps); the pipeline column is what counts: there the network is one CUDA graph replay,
so many small kernels cost no launches. 'shipped' is what the decoder does now. Needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydranet_ros.model import refinenet  # noqa: E402
from hydranet_ros.model.checkpoints import load_weights  # noqa: E402
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig  # noqa: E402

CL = torch.channels_last


def channels_last_kernel(x):
    return F.max_pool2d(x, 5, stride=1, padding=2)


def planar_kernel(x):
    return F.max_pool2d(x.contiguous(), 5, stride=1, padding=2).contiguous(memory_format=CL)


def separable(x):  # max over a rectangle is the max of the row maxima
    return F.max_pool2d(F.max_pool2d(x, (1, 5), stride=1, padding=(0, 2)), (5, 1), stride=1, padding=(2, 0))


def planar_separable(x):
    return separable(x.contiguous()).contiguous(memory_format=CL)


VARIANTS = {"channels_last": channels_last_kernel, "planar": planar_kernel, "separable": separable,
            "planar_separable": planar_separable, "shifted_maxima": refinenet.shifted_max_pool_5x5,
            "shipped": refinenet.max_pool_5x5}


def event_ms(fn, repeats: int) -> float:
    for _ in range(10):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="fp16", choices=("fp32", "fp16"))
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_crp_pool: needs a CUDA device (none on this machine)", file=sys.stderr)
        return 2
    dtype = torch.float16 if args.precision == "fp16" else torch.float32
    width, height = (int(v) for v in args.size.split("x"))
    shapes = [(1, 256, -(-height // s), -(-width // s)) for s in (32, 16, 8, 4)]  # crp4 .. crp1
    report = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "precision": args.precision, "size": args.size,
              "pool_us": {}, "pipeline_ms": {}}
    gen = torch.Generator(device="cuda").manual_seed(0)
    print(f"bench_crp_pool  torch {torch.__version__}  {report['gpu']}  {args.precision}  {args.size}")
    print(f"{'variant':18s} " + " ".join(f"{f'{s[3]}x{s[2]}':>9s}" for s in shapes) + "   us per pool | x16 frame share | pipeline ms")
    weights = load_weights("default")
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    shipped = refinenet.max_pool_5x5
    for name, fn in VARIANTS.items():
        us = []
        for shape in shapes:
            x = torch.randn(shape, device="cuda", dtype=dtype, generator=gen).contiguous(memory_format=CL)
            if not torch.equal(fn(x), F.max_pool2d(x.float(), 5, 1, 2).to(dtype)):
                raise SystemExit(f"bench_crp_pool: variant {name} is wrong at {shape}")
            us.append(event_ms(lambda: fn(x), 100) * 1e3)
        refinenet.max_pool_5x5 = fn  # the decoder's pool module calls it by this name
        try:
            config = PipelineConfig(backend="cuda-graph", device="cuda", precision=args.precision, input_size=(width, height),
                                    output_size="input", strict=True)
            pipe = Pipeline.from_model(weights.build_model(), weights.preset, config)
            for _ in range(20):
                pipe.process(frame, outputs=frozenset({"labels", "depth"}))
            ms = []
            for _ in range(args.frames):
                t = pipe.process(frame, outputs=frozenset({"labels", "depth"})).timings_ms
                ms.append(t["total"])
            del pipe
        finally:
            refinenet.max_pool_5x5 = shipped
        report["pool_us"][name] = us
        report["pipeline_ms"][name] = float(np.median(ms))
        print(f"{name:18s} " + " ".join(f"{u:9.1f}" for u in us) + f"   | {4 * sum(us) / 1e3:8.3f} ms | {np.median(ms):8.3f}")
    best = min(report["pipeline_ms"], key=report["pipeline_ms"].get)
    print(f"fastest pipeline: {best} ({report['pipeline_ms'][best]:.3f} ms; shipped {report['pipeline_ms']['shipped']:.3f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
