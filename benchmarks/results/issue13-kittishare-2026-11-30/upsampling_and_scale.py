"""Is the held-out depth error in how the network's 1/4-resolution depth is enlarged, in each
frame's overall scale, or in the network? (By class and distance: ../issue13-sweep-2026-11-29/depth_error.py.)

    python benchmarks/results/issue13-kittishare-2026-11-30/upsampling_and_scale.py [WEIGHTS]   (default: the shipped file)

The 64 held-out frames of depth_error.py (384x128, seed 1000003, the KITTI-like camera, depth
capped at 80 m), through the pipeline; the network's raw depth is caught on its way to the
host-side enlargement and enlarged again each other way.
"""
import sys

import cv2
import numpy as np
import torch

import hydranet_ros.runtime.pipeline as pipeline
from hydranet_ros.train.synthetic import SyntheticStreets

SIZE, FRAMES, SEED, CAP_M = (384, 128), 64, 1000003, 80.0
ENLARGE = {
    "bilinear (the pipeline's)": lambda d: cv2.resize(d, SIZE, interpolation=cv2.INTER_LINEAR),
    "nearest": lambda d: cv2.resize(d, SIZE, interpolation=cv2.INTER_NEAREST),
    "bicubic": lambda d: cv2.resize(d, SIZE, interpolation=cv2.INTER_CUBIC),
    "bilinear in log depth": lambda d: np.exp(cv2.resize(np.log(np.maximum(d, 1e-3)), SIZE, interpolation=cv2.INTER_LINEAR)),
    "bilinear in inverse depth": lambda d: 1 / cv2.resize(1 / np.maximum(d, 1e-3), SIZE, interpolation=cv2.INTER_LINEAR),
}
torch.set_num_threads(2)
caught = {}
enlarge_on_host = pipeline.depth_in_metres_host


def catch(depth, size, geometry=None, factor=1.0):
    caught.update(raw=np.abs(np.asarray(depth[0], np.float32)), factor=factor, geometry=geometry)
    return enlarge_on_host(depth, size, geometry, factor)


pipeline.depth_in_metres_host = catch  # the CPU path enlarges the raw depth on the host
weights = sys.argv[1] if len(sys.argv) > 1 else "default"
pipe = pipeline.Pipeline.create(pipeline.PipelineConfig(weights=weights, backend="torch", device="cpu",
                                                        input_size=SIZE, output_size="input"))
sums = {name: 0.0 for name in [*ENLARGE, "truth at 1/4, bilinear", "each frame at its median scale", "mean with the mirrored frame"]}
pixels = 0
for frame in SyntheticStreets(size=SIZE, length=FRAMES, seed=SEED):
    truth = frame["depth_m"].astype(np.float32)
    valid = (truth > 0) & (truth <= CAP_M)
    depth = pipe.process(frame["image"]).depth_m
    assert caught["geometry"] is None or caught["geometry"].scaled_size == caught["geometry"].network_size
    raw, factor = caught["raw"], caught["factor"]  # before the mirrored frame replaces them
    mirrored = pipe.process(np.ascontiguousarray(frame["image"][:, ::-1])).depth_m[:, ::-1]
    coarse = cv2.resize(np.where(valid, truth, 0), (SIZE[0] // 4, SIZE[1] // 4), interpolation=cv2.INTER_AREA)
    share = cv2.resize(valid.astype(np.float32), (SIZE[0] // 4, SIZE[1] // 4), interpolation=cv2.INTER_AREA)
    coarse = np.where(share > 0, coarse / np.maximum(share, 1e-6), CAP_M).astype(np.float32)  # valid pixels' mean
    candidates = {name: enlarge(raw) * factor for name, enlarge in ENLARGE.items()}
    candidates["truth at 1/4, bilinear"] = cv2.resize(coarse, SIZE, interpolation=cv2.INTER_LINEAR)
    candidates["each frame at its median scale"] = depth * np.median(truth[valid] / depth[valid])
    candidates["mean with the mirrored frame"] = (depth + mirrored) / 2
    for name, guess in candidates.items():
        sums[name] += float((np.abs(guess[valid] - truth[valid]) / truth[valid]).sum())
    pixels += int(valid.sum())
print(f"{weights}: abs rel over {pixels} pixels of {FRAMES} held-out frames")
for name, total in sums.items():
    print(f"  {name:<32} {total / pixels:.4f}")
