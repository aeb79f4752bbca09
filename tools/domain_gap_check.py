"""Where the default model's errors on the real KITTI frame come from: the size, or the pictures?

    python tools/domain_gap_check.py [--weights default] [--frames 6] [--backend auto] [--json FILE]

Two measurements with the scoring of tools/real_frame_check.py (issue 13):

1. Synthetic streets through KITTI's camera at each size users launch (the training generator,
   held-out seed 1000003, the camera's focal length given): if the model failed here too at full
   resolution, the size itself (object scale, context) would be the cause.
2. The real KITTI frame at full resolution as it is and low-passed (Gaussian, sigma 1, 2, 3 px):
   if taking away fine detail helps, what the model has not learned is the real pictures' own
   structure (texture, shade), not the size.

A diagnosis only: nothing here is a shipped setting, and blurring is not a fix (it is chosen by
looking at the frame that judges the model).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import real_frame_check as real  # noqa: E402

SYNTHETIC_SIZES = ("320x96", "640x192", "1226x370")
BLUR_SIGMAS = (0.0, 1.0, 2.0, 3.0)
HELD_OUT_SEED = 1000003  # the trainer's validation seed: frames no training run draws


def _line(what: str, figures: dict) -> str:
    return (f"{what:<28} mIoU {figures['miou']:.3f}  road IoU {figures['road_iou']:.3f}  "
            f"road depth error {figures['road_depth_median_rel_error'] * 100:.1f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="default")
    parser.add_argument("--frames", type=int, default=6, help="synthetic frames per size (default 6)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)

    import cv2
    import torch

    from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
    from hydranet_ros.runtime.sizes import parse_size
    from hydranet_ros.train.synthetic import SyntheticStreets

    torch.set_num_threads(args.threads)

    def pipeline(size: str) -> Pipeline:
        return Pipeline.create(PipelineConfig(weights=args.weights, backend=args.backend, device="cpu",
                                              input_size=parse_size(size), output_size="input"))

    report: dict = {"date": str(datetime.date.today()), "weights": args.weights, "synthetic": [], "real_blurred": []}
    print(f"1. synthetic streets, KITTI's camera, {args.frames} held-out frames per size (mean of the frames)")
    for size in SYNTHETIC_SIZES:
        pipe = pipeline(size)
        streets = SyntheticStreets(size=parse_size(size), length=args.frames, seed=HELD_OUT_SEED)
        rows = []
        for index in range(len(streets)):
            frame = streets[index]
            result = pipe.process(frame["image"], focal_px=float(frame["camera_k"][1, 1]))
            truth = np.where(frame["depth_m"] > 0, frame["depth_m"], np.nan)  # sky: no depth
            rows.append(real.score(result.labels, result.depth_m, frame["labels"], truth, pipe.preset.num_classes))
        mean = {key: float(np.nanmean([row[key] for row in rows]))
                for key in ("miou", "road_iou", "road_depth_median_rel_error")}
        report["synthetic"].append({"size": size, **mean})
        print(_line(f"   {size}", mean), flush=True)
        report["weights"] = pipe.info["weights"]

    print("2. the real KITTI frame at 1226x370, low-passed before the pipeline")
    frame, labels_gt, _, geometric = real.judged_frame(real.DEFAULT_FRAME)
    pipe = pipeline("1226x370")
    for sigma in BLUR_SIGMAS:
        pixels = cv2.GaussianBlur(frame, (0, 0), sigma) if sigma else frame
        result = pipe.process(pixels)
        figures = real.score(result.labels, result.depth_m, labels_gt, geometric, pipe.preset.num_classes)
        report["real_blurred"].append({"blur_sigma_px": sigma, **figures})
        print(_line(f"   blur sigma {sigma:.0f} px" if sigma else "   as recorded", figures), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
