"""Turn a training run's weights into the shipped default model, and measure it.

    python tools/ship_default_model.py runs/synthetic_kitti6/model.safetensors [--eval-frames 200]

Writes hydranet_ros/weights/hydranet_synthetic_kitti6.safetensors (fp16, with the preset and the
training size in its metadata) and, beside it, a JSON with its metrics on held-out synthetic
frames (a seed the training never drew from). The README quotes that JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydranet_ros.model.checkpoints import compare_state, load_safetensors, save_safetensors  # noqa: E402
from hydranet_ros.model.locate import shipped_default_path  # noqa: E402
from hydranet_ros.model.hydranet import HydraNet  # noqa: E402
from hydranet_ros.presets import get_preset  # noqa: E402

HELD_OUT_SEED = 1000003  # the validation seed of config/train/synthetic_kitti6.yaml; training uses seed 0
DEPTH_MAX_M = 80.0  # as the training's evaluation: KITTI's usual cap


def evaluate_shipped(path: Path, *, frames: int, seed: int = HELD_OUT_SEED) -> dict:
    from hydranet_ros.train.evaluate import evaluate_model
    from hydranet_ros.train.synthetic import SyntheticStreets

    weights = load_safetensors(path)
    size = weights.trained_input_size
    data = SyntheticStreets(size=size, length=frames, seed=seed)
    result = evaluate_model(weights.build_model(), data, preset=weights.preset, depth_max_m=DEPTH_MAX_M)
    return {"frames": result.frames, "size": f"{size[0]}x{size[1]}", "seed": seed, "segm": result.segm, "depth": result.depth}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", help="model.safetensors of a training run")
    parser.add_argument("--output", default=str(shipped_default_path()))
    parser.add_argument("--eval-frames", type=int, default=200)
    parser.add_argument("--trained-on", default="synthetic streets (hydranet_ros.train.synthetic), config/train/synthetic_kitti6.yaml",
                        help="how the weights were trained, for the metadata (e.g. a fine-tuning run's recipe)")
    args = parser.parse_args()

    tensors = load_file(args.weights)
    with safe_open(args.weights, framework="pt") as f:
        meta = dict(f.metadata() or {})
    preset = get_preset(meta.get("preset", "kitti"))
    report = compare_state(HydraNet(preset).state_dict(), tensors)
    if not report.ok:
        raise SystemExit(f"{args.weights}: {report}")
    extra = {k: meta[k] for k in ("input_size", "step", "config_name") if k in meta}
    extra["trained_on"] = args.trained_on
    output = Path(args.output)
    digest = save_safetensors(output, tensors, preset, extra=extra, dtype=torch.float16)
    started = time.perf_counter()
    metrics = evaluate_shipped(output, frames=args.eval_frames)
    metrics.update(date=str(datetime.date.today()), weights_sha256=digest, file_bytes=output.stat().st_size,
                   eval_seconds=round(time.perf_counter() - started, 1), training_metadata=extra)
    output.with_suffix(".json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    print(json.dumps({k: metrics[k] for k in ("frames", "size", "file_bytes")}, default=float))
    print(f"mIoU {metrics['segm']['miou']:.3f}  pixel acc {metrics['segm']['pixel_accuracy']:.3f}  "
          f"abs rel {metrics['depth']['abs_rel']:.3f}  RMSE {metrics['depth']['rmse']:.2f} m  d<1.25 {metrics['depth']['delta1']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
