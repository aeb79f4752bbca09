"""Which layers should stay fp32 in OpenVINO int8: each candidate ignored scope quantised by NNCF
on the same synthetic calibration frames, judged on the real sample frames (labels equal to
OpenVINO fp32's, depth median relative error) and timed in interleaved rounds against fp32.

    python benchmarks/sweep_int8_scope.py [--size 640x480] [--rounds 6] [--json PATH]

The real frames are the judge only; calibration is synthetic streets (seed 7) as in bench_cpu.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cpu import CALIBRATION_SEED, HELD_OUT_SEED, real_frames, synthetic_frames  # noqa: E402
from hydranet_ros.model.checkpoints import load_weights  # noqa: E402
from hydranet_ros.runtime.calibration import prepare  # noqa: E402
from hydranet_ros.runtime.engines import int8, openvino_engine as ove  # noqa: E402
from hydranet_ros.runtime.engines.base import create_engine  # noqa: E402

STEM, OUT = r"/model/encoder/layer1/layer1\.0/Conv.*", r"/model/(segm|depth|normals)/out/Conv.*"
PRE = r"/model/(segm|depth|normals)/pre/Conv.*"
CRP1 = r"/model/decoder/crp1/.*"
CONV3 = r"/model/decoder/conv3/Conv.*"
STAGE8 = r"/model/decoder/(conv4|conv_adapt2|crp2/.*)/?Conv.*"
ENCODER12 = r"/model/encoder/layer[12]/.*"
TAIL = (STEM, OUT, PRE, CRP1)
CANDIDATES = {  # name: (ignored-scope patterns, NNCF options)
    "stem+out (shipped)": ((STEM, OUT), {}),
    "stem+out+pre": ((STEM, OUT, PRE), {}),
    "stem+out+pre+crp1": (TAIL, {}),
    "stem+out+pre+crp1+conv3": (TAIL + (CONV3,), {}),
    "tail+stride8": (TAIL + (CONV3, STAGE8), {}),
    "tail minmax": (TAIL, {"activations": "MINMAX"}),
    "stem+out minmax": ((STEM, OUT), {"activations": "MINMAX"}),
    "stem+out histogram": ((STEM, OUT), {"activations": "HISTOGRAM"}),
    "stem+out mixed": ((STEM, OUT), {"preset": "MIXED"}),
    "stem+out full-bias-correction": ((STEM, OUT), {"fast_bias_correction": False}),
    "stem+out+depthwise": ((STEM, OUT), {"types": ["GroupConvolution"]}),
    "stem+out+decoder": ((STEM, OUT, PRE, r"/model/decoder/.*"), {}),
    "stem+out+encoder12": ((STEM, OUT, ENCODER12), {}),
    "encoder12 mixed histogram": ((STEM, OUT, ENCODER12), {"preset": "MIXED", "activations": "HISTOGRAM"}),
    "encoder123 mixed": ((STEM, OUT, r"/model/encoder/layer[123]/.*"), {"preset": "MIXED"}),
    "encoder12+tail mixed": ((ENCODER12,) + TAIL, {"preset": "MIXED"}),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calibration-frames", type=int, default=48)
    parser.add_argument("--only", default="", help="comma-separated candidate names (default all)")
    parser.add_argument("--json")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    torch.set_num_threads(2)
    import nncf
    import openvino as ov

    weights = load_weights("default")
    model, preset = weights.build_model().eval(), weights.preset
    work = tempfile.TemporaryDirectory(prefix="sweep-int8-")
    calib = Path(work.name) / "calibration"
    calib.mkdir()
    for i, frame in enumerate(synthetic_frames(args.calibration_frames, CALIBRATION_SEED)):
        cv2.imwrite(str(calib / f"{i:03d}.png"), frame[..., ::-1])
    fp32_engine = create_engine("openvino", model, device=torch.device("cpu"), precision="fp32",
                                weights_sha256=weights.sha256, options={"cache_dir": str(Path(work.name) / "cache"), "threads": 2})
    core = ov.Core()
    config = ove.compile_config(2)
    fp32 = ove._compile(core, fp32_engine.model_path, config)
    data = int8.int8_frames(str(calib), frames=args.calibration_frames, size=size, mean=preset.mean, std=preset.std)
    judged = {"real": [prepare(f, size=size, mean=preset.mean, std=preset.std, fill_request=False).numpy() for f in real_frames()],
              "synthetic": [prepare(f, size=size, mean=preset.mean, std=preset.std, fill_request=False).numpy()
                            for f in synthetic_frames(16, HELD_OUT_SEED)]}
    names = [n for n in CANDIDATES if not args.only or n in args.only.split(",")]
    compiled, results = {"openvino fp32": fp32}, {}
    for name in names:
        start = time.perf_counter()
        patterns, options = CANDIDATES[name]
        advanced = {"overflow_fix": nncf.OverflowFix.ENABLE}
        if "activations" in options:
            from nncf.quantization.range_estimator import RangeEstimatorParametersSet

            advanced["activations_range_estimator_params"] = getattr(RangeEstimatorParametersSet, options["activations"])
        quantised = nncf.quantize(
            ove.read_packed(core, fp32_engine.model_path), nncf.Dataset(data.calibration), subset_size=len(data.calibration),
            preset=getattr(nncf.QuantizationPreset, options.get("preset", "PERFORMANCE")),
            fast_bias_correction=options.get("fast_bias_correction", True),
            ignored_scope=nncf.IgnoredScope(patterns=list(patterns), types=options.get("types", []), validate=False),
            advanced_parameters=nncf.AdvancedQuantizationParameters(**advanced))
        compiled[name] = core.compile_model(quantised, "CPU", config)
        fq = sum(op.get_type_name() == "FakeQuantize" for op in quantised.get_ops())
        results[name] = {"fake_quantize_ops": fq, "quantise_s": time.perf_counter() - start}
        for kind, frames in judged.items():
            results[name][kind] = int8.measure_gate(ove._forward(compiled[name]), ove._forward(fp32), frames).as_dict()
        results[name]["real_per_frame"] = [
            round(int8.measure_gate(ove._forward(compiled[name]), ove._forward(fp32), [f]).labels_agree, 4) for f in judged["real"]]
        print(name, json.dumps(results[name]), flush=True)
    frame = prepare(np.ascontiguousarray(cv2.resize(real_frames()[0], size, interpolation=cv2.INTER_AREA)), size=size,
                    mean=preset.mean, std=preset.std, fill_request=False).numpy()
    times = {k: [] for k in compiled}
    for c in compiled.values():
        c({0: frame})
    load = os.getloadavg()
    for r in range(args.rounds):
        keys = list(compiled)
        keys = keys[r % len(keys):] + keys[:r % len(keys)]
        for k in keys:
            start = time.perf_counter()
            compiled[k]({0: frame})
            times[k].append((time.perf_counter() - start) * 1e3)
    ref = statistics.median(times["openvino fp32"])
    print(f"\nsweep_int8_scope {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC  {args.size}  {args.rounds} rounds  "
          f"load {load[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    for k, ms in times.items():
        med = statistics.median(ms)
        acc = results.get(k, {})
        line = f"{k:28s} forward {med:7.1f} ms  fp32/this {ref / med:5.2f}x"
        for kind in ("real", "synthetic"):
            if kind in acc:
                line += f"  {kind} {100 * acc[kind]['labels_agree']:.2f} % / {100 * acc[kind]['depth_median_rel']:.2f} %"
        print(line)
        results.setdefault(k, {})["forward_median_ms"] = med
    if args.json:
        Path(args.json).write_text(json.dumps({"size": args.size, "rounds": args.rounds, "results": results,
                                               "times_ms": times}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
