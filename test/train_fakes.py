"""A tiny stand-in street scene with the dataset contract, for trainer tests that must not depend
on the real generator's look: flat-coloured regions whose depth follows a ground plane."""

from __future__ import annotations

import numpy as np

# KITTI-6 ids: 0 sky, 1 building, 2 road, 3 sidewalk, 4 vegetation, 5 car
COLOURS = np.array([[120, 170, 230], [150, 60, 50], [90, 90, 95], [170, 160, 140], [40, 140, 40], [200, 30, 30]],
                   np.uint8)


class FakeStreets:
    def __init__(self, *, size=(64, 48), length=16, seed=0, with_normals=False):
        self.width, self.height = size
        self.length = length
        self.seed = seed
        self.with_normals = with_normals

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        h, w = self.height, self.width
        fy = fx = 0.9 * w
        cy = h * rng.uniform(0.4, 0.5)
        rows = np.arange(h, dtype=np.float32)[:, None] + 0.5
        cols = np.arange(w, dtype=np.float32)[None, :] + 0.5
        labels = np.zeros((h, w), np.uint8)
        depth = np.zeros((h, w), np.float32)
        below = (rows > cy + 1) & (cols > -1)
        ground = np.where(below, 1.6 * fy / np.maximum(rows - cy, 1e-3), 0).astype(np.float32) * np.ones((1, w), np.float32)
        road_half = rng.uniform(0.25, 0.4) * w
        centre = w / 2 + rng.uniform(-0.1, 0.1) * w
        on_road = below & (np.abs(cols - centre) < road_half + (rows - cy) * 0.8)
        labels[below] = 3
        labels[on_road] = 2
        depth[below] = ground[below]
        wall = (~below) & (rows > cy - rng.uniform(0.15, 0.35) * h)
        side = np.abs(cols - centre) > rng.uniform(0.2, 0.35) * w
        labels[wall & side] = 1
        depth[wall & side] = rng.uniform(12, 25)
        tree = wall & ~side & (cols < centre - 0.1 * w)
        labels[tree] = 4
        depth[tree] = rng.uniform(20, 30)
        car_d = rng.uniform(6, 15)
        car_w = 1.8 * fx / car_d
        car_h = 1.5 * fy / car_d
        base = cy + 1.6 * fy / car_d
        cx = centre + rng.uniform(-0.2, 0.2) * w
        car = (np.abs(cols - cx) < car_w / 2) & (rows > base - car_h) & (rows < base)
        labels[car] = 5
        depth[car] = car_d
        image = COLOURS[labels].astype(np.int16) + rng.integers(-12, 12, (h, w, 3))
        image = np.clip(image * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
        depth[labels == 0] = np.nan  # sky: no measurement
        frame = {"image": image, "labels": labels, "depth_m": depth,
                 "camera_k": np.array([[fx, 0, w / 2], [0, fy, cy], [0, 0, 1]], np.float64)}
        if self.with_normals:
            normals = np.zeros((h, w, 3), np.float32)
            normals[below] = (0, -1, 0)
            normals[wall | car] = (0, 0, -1)
            frame["normals"] = normals
        return frame
