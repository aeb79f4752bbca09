"""Turn a training run's weights into the shipped default model, and measure it.

    python tools/ship_default_model.py runs/synthetic_kitti6_cameras/model.safetensors [--eval-frames 200]

Writes hydranet_ros/weights/hydranet_synthetic_kitti6.safetensors (fp16, with the preset, the
training size and the training focal length in its metadata) and, beside it, a JSON with its
metrics on held-out synthetic frames (a seed the training never drew from), measured through the
inference pipeline, plus a sweep of camera focal lengths. The README quotes that JSON; the
real-frame figures come from tools/real_frame_check.py.
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

HELD_OUT_SEED = 1000003  # the validation seed of the synthetic_kitti6 configs; training uses seeds 0, 13 and 29
DEPTH_MAX_M = 80.0  # as the training's evaluation: KITTI's usual cap
# Focal lengths (px at the training input) of the sweep: the sizes users launch put a KITTI
# camera at about 185 (320x96), 370 (640x192) and 707 px (1226x370).
FOCAL_SWEEP_PX = (150.0, 223.0824, 370.0, 707.0)


def evaluate_shipped(path: Path, *, frames: int, seed: int = HELD_OUT_SEED) -> dict:
    """Held-out synthetic frames through the inference pipeline (what ships), at the training
    size with the KITTI-like camera, then a focal-length sweep: the same held-out streets seen
    by cameras of other focal lengths, whose depth must stay right after the focal correction."""
    from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
    from hydranet_ros.train.evaluate import evaluate_pipeline
    from hydranet_ros.train.synthetic import CameraVariation, SyntheticStreets

    weights = load_safetensors(path)
    size = weights.trained_input_size
    pipe = Pipeline.create(PipelineConfig(weights=str(path), device="cpu", input_size="auto", output_size="input"))
    data = SyntheticStreets(size=size, length=frames, seed=seed)
    result = evaluate_pipeline(pipe, data, depth_max_m=DEPTH_MAX_M)
    sweep = {}
    for focal in FOCAL_SWEEP_PX:
        cameras = CameraVariation(focal_px=(focal, focal), height_m=(1.65, 1.65), pitch_deg=0.0)
        seen = SyntheticStreets(size=size, length=max(frames // 4, 8), seed=seed, cameras=cameras)
        swept = evaluate_pipeline(pipe, seen, depth_max_m=DEPTH_MAX_M)  # each frame's camera_k gives its focal length
        sweep[f"{focal:g}"] = {"miou": swept.segm["miou"], "abs_rel": swept.depth["abs_rel"], "frames": swept.frames}
    return {"frames": result.frames, "size": f"{size[0]}x{size[1]}", "seed": seed, "segm": result.segm,
            "depth": result.depth, "focal_sweep": sweep}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", help="model.safetensors of a training run")
    parser.add_argument("--output", default=str(shipped_default_path()))
    parser.add_argument("--eval-frames", type=int, default=200)
    parser.add_argument("--trained-on", default="synthetic streets (hydranet_ros.train.synthetic), config/train/synthetic_kitti6_cameras.yaml",
                        help="how the weights were trained, for the metadata (e.g. a fine-tuning run's recipe)")
    args = parser.parse_args()

    tensors = load_file(args.weights)
    with safe_open(args.weights, framework="pt") as f:
        meta = dict(f.metadata() or {})
    preset = get_preset(meta.get("preset", "kitti"))
    report = compare_state(HydraNet(preset).state_dict(), tensors)
    if not report.ok:
        raise SystemExit(f"{args.weights}: {report}")
    # averaged_from: a mean of runs (tools/average_weights.py) keeps the hashes of what it averaged.
    extra = {k: meta[k] for k in ("input_size", "step", "config_name", "focal_px", "averaged_from") if k in meta}
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
    for focal, row in metrics["focal_sweep"].items():
        print(f"  camera focal {float(focal):6.1f} px: mIoU {row['miou']:.3f}  abs rel {row['abs_rel']:.3f}  ({row['frames']} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
