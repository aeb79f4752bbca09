"""Held-out synthetic figures of weights files on two sets of frames, through the pipeline that ships.

    python benchmarks/results/issue13-depth-2026-11-29/heldout_two.py W1 [W2 ...] [--frames 200] [--json OUT]

"today": tools/ship_default_model.py's set (today's generator, the weights' training size, the
KITTI-like camera, seed 1000003, depth capped at 80 m): the figures the shipped JSON holds.
"issue 13 filed": the frames issue 13's "keep the held-out metrics (abs rel <= 0.10)" referred to:
the generator as it was when the issue was filed (commit 596d074, taken out of git into a
temporary folder and run there), 320x96, KITTI-like camera, the same seed and cap. The 320x96
model shipped before issue 13 had mIoU 0.956, abs rel 0.093 on them.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tools"))
from ship_default_model import DEPTH_MAX_M, HELD_OUT_SEED  # noqa: E402

from hydranet_ros.model.checkpoints import load_safetensors  # noqa: E402
from hydranet_ros.model.locate import shipped_default_path  # noqa: E402
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig  # noqa: E402
from hydranet_ros.train.evaluate import evaluate_pipeline  # noqa: E402
from hydranet_ros.train.synthetic import SyntheticStreets  # noqa: E402

ISSUE_FILED_GENERATOR = "596d074"  # the last change to train/synthetic.py before issue 13 (ed66df5 retrains for it)
ISSUE_FILED_SIZE = (320, 96)

# Run in a separate interpreter whose hydranet_ros is the old commit's: renders frames to an npz.
_RENDER = """
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
import hydranet_ros
assert hydranet_ros.__file__.startswith(sys.argv[1]), hydranet_ros.__file__
from hydranet_ros.train.synthetic import SyntheticStreets
data = SyntheticStreets(size=(int(sys.argv[2]), int(sys.argv[3])), length=int(sys.argv[4]), seed=int(sys.argv[5]))
frames = [data[i] for i in range(len(data))]
np.savez(sys.argv[6], **{key: np.stack([f[key] for f in frames]) for key in ("image", "labels", "depth_m", "camera_k")})
"""


def issue_filed_frames(count: int, folder: Path) -> list[dict]:
    source = folder / "src"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ISSUE_FILED_GENERATOR, "hydranet_ros"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    out = folder / "frames.npz"
    width, height = ISSUE_FILED_SIZE
    subprocess.run([sys.executable, "-c", _RENDER, str(source), str(width), str(height), str(count),
                    str(HELD_OUT_SEED), str(out)], check=True)
    with np.load(out) as data:
        return [{key: data[key][i] for key in data.files} for i in range(count)]


def measure(weights: str, frames, size) -> dict:
    # As tools/ship_default_model.py measures: the default backend, outputs at the frames' size.
    pipe = Pipeline.create(PipelineConfig(weights=weights, device="cpu", input_size=size, output_size="input"))
    result = evaluate_pipeline(pipe, frames, depth_max_m=DEPTH_MAX_M)
    return {"miou": result.segm["miou"], "abs_rel": result.depth["abs_rel"], "frames": result.frames}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        old = issue_filed_frames(args.frames, Path(tmp))
    report = {}
    print(f"{'weights':<60} {'today mIoU':>10} {'abs rel':>8} {'filed mIoU':>10} {'abs rel':>8}")
    for weights in args.weights:
        path = shipped_default_path() if weights == "default" else Path(weights)
        today = SyntheticStreets(size=load_safetensors(path).trained_input_size, length=args.frames, seed=HELD_OUT_SEED)
        row = {"today": measure(str(path), today, "auto"), "issue_filed": measure(str(path), old, ISSUE_FILED_SIZE)}
        report[weights] = row
        print(f"{weights:<60} {row['today']['miou']:>10.3f} {row['today']['abs_rel']:>8.3f} "
              f"{row['issue_filed']['miou']:>10.3f} {row['issue_filed']['abs_rel']:>8.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
