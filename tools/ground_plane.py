"""Fit the ground plane to one class of a point cloud written by `hydranet infer --points`.

    python tools/ground_plane.py hydranet_out/000099_points.ply [--class road] [--max-range 40] [--json F]

Prints how high the camera sits above the fitted plane (the plane's distance from the camera
centre, metres), the plane's tilt against the camera's y axis, and how well the points fit it.
On KITTI the camera is 1.65 m above the road (KITTI's sensor setup), so on a KITTI frame with its
calibration the road's plane says whether depth and CameraInfo agree in scale.

Fit: RANSAC (fixed seed; inliers within --inlier metres of a plane through 3 sampled points),
then least squares (the smallest principal axis) over the best plane's inliers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydranet_ros.io.ply import read_ply  # noqa: E402


@dataclass(frozen=True)
class PlaneFit:
    height_m: float  # distance from the camera centre to the plane
    normal: tuple[float, float, float]  # unit normal, pointing from the plane towards the camera
    tilt_deg: float  # angle between the normal and the camera's up axis (-y in the optical frame)
    pitch_deg: float  # the normal's lean forwards (+) / backwards in the y-z plane
    roll_deg: float  # the normal's lean sideways in the x-y plane
    rms_m: float  # RMS distance of the inliers from the plane
    points: int
    inliers: int


def fit_plane(xyz: np.ndarray, *, inlier_m: float = 0.15, iterations: int = 500, seed: int = 0) -> PlaneFit:
    """The plane n.p + d = 0 that most points of ``xyz`` (N x 3) lie on."""
    xyz = np.asarray(xyz, dtype=np.float64)
    if len(xyz) < 3:
        raise ValueError(f"a plane needs at least 3 points, got {len(xyz)}")
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(iterations):
        a, b, c = xyz[rng.choice(len(xyz), 3, replace=False)]
        normal = np.cross(b - a, c - a)
        length = np.linalg.norm(normal)
        if length < 1e-9:
            continue
        normal /= length
        count = int(np.count_nonzero(np.abs((xyz - a) @ normal) < inlier_m))
        if best is None or count > best[0]:
            best = (count, normal, a)
    if best is None:
        raise ValueError("the points are collinear")
    _, normal, a = best
    inliers = xyz[np.abs((xyz - a) @ normal) < inlier_m]
    centre = inliers.mean(axis=0)
    normal = np.linalg.svd(inliers - centre, full_matrices=False)[2][-1]
    d = -float(normal @ centre)
    if d < 0:  # point the normal from the plane towards the camera (origin): n.0 + d = d > 0
        normal, d = -normal, -d
    residual = (inliers - centre) @ normal
    up = np.array([0.0, -1.0, 0.0])
    return PlaneFit(
        height_m=d, normal=tuple(float(v) for v in normal),
        tilt_deg=math.degrees(math.acos(float(np.clip(normal @ up, -1.0, 1.0)))),
        pitch_deg=math.degrees(math.atan2(float(normal[2]), float(-normal[1]))),
        roll_deg=math.degrees(math.atan2(float(normal[0]), float(-normal[1]))),
        rms_m=float(np.sqrt(np.mean(residual ** 2))), points=len(xyz), inliers=len(inliers))


def class_id(comments: list[str], name: str) -> int:
    """The label id the PLY's comments ("label <id> <name>") give ``name``."""
    for comment in comments:
        parts = comment.split(" ", 2)
        if len(parts) == 3 and parts[0] == "label" and parts[2] == name:
            return int(parts[1])
    raise SystemExit(f"no class {name!r} among the file's labels")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ply", type=Path)
    parser.add_argument("--class", dest="name", default="road", help="the class the plane is fitted to (default road)")
    parser.add_argument("--max-range", type=float, default=0.0, help="only points within this distance (m; 0 = all)")
    parser.add_argument("--inlier", type=float, default=0.15, help="RANSAC inlier distance, metres (default 0.15)")
    parser.add_argument("--json", type=Path, help="also write the fit here")
    args = parser.parse_args()

    vertices, comments = read_ply(args.ply)
    chosen = vertices[vertices["label"] == class_id(comments, args.name)]
    xyz = np.stack([chosen["x"], chosen["y"], chosen["z"]], axis=1).astype(np.float64)
    if args.max_range > 0:
        xyz = xyz[np.linalg.norm(xyz, axis=1) <= args.max_range]
    fit = fit_plane(xyz, inlier_m=args.inlier)
    print(f"{args.ply}: {fit.points} {args.name} points, {fit.inliers} within {args.inlier} m of the plane")
    print(f"camera height above the {args.name} plane: {fit.height_m:.3f} m")
    print(f"plane normal {tuple(round(v, 4) for v in fit.normal)}: tilt {fit.tilt_deg:.2f} deg "
          f"(pitch {fit.pitch_deg:.2f}, roll {fit.roll_deg:.2f}); inlier RMS {fit.rms_m:.3f} m")
    if args.json:
        args.json.write_text(json.dumps({"file": str(args.ply), "class": args.name, "max_range_m": args.max_range,
                                         **asdict(fit)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
