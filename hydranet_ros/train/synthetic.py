"""Synthetic street scenes with exact ground truth: RGB, KITTI-6 labels and metric depth.

A seeded generator of streets seen from a car: road with lane marks, kerbed sidewalks, building
rows with windows (some framed, with shutters, over a stone plinth; low houses under tiled gable
roofs), parked and moving cars, street and garden trees, hedges, poles, distant skylines and sky,
under varied light. Geometry is ray cast analytically (``street_raycast``), so each pixel's class
and depth are exact at its centre; colour comes from a deferred shading pass (``street_materials``).

Ground-truth conventions
- labels: KITTI-6 ids 0 sky, 1 building, 2 road, 3 sidewalk, 4 vegetation, 5 car.
  Lane marks are painted road and are labelled road (2). Grass verges are vegetation (4), paved
  verges sidewalk (3), kerbs sidewalk (3), hedges vegetation (4). Poles and lamp arms are 255
  (ignore): in the authors' KITTI ground truth (../shared/data/kitti/000099_segm_gt.png) poles
  and signs are void, so no KITTI-6 class is the right answer for them and a network trained
  here should not be taught one.
- depth_m: float32 metres along the optical axis (z, not the ray length). Sky has no depth: 0,
  the project's "invalid" value that losses and metrics mask. Every other pixel is valid; the
  scene is closed by distant skylines, so depths stay below about 250 m.
- camera_k: the 3x3 intrinsics; the camera is 1.65 m above flat ground, optical axis horizontal,
  so the horizon is the row cy and a ground pixel's depth is exactly fy * 1.65 / (v - cy).

Cameras. By default every frame has the KITTI-like camera of its size. With ``cameras`` (a
CameraVariation) each frame draws its own: focal length (log-uniform), mounting height, and a
principal point placed as if the frame were a random window of a KITTI-shaped view at that focal
length (a window of a bigger picture is the same pinhole camera with a shifted principal point),
with the horizon moved by a few degrees of pitch. That is what a network run on many cameras at
many sizes sees: objects from a few pixels to hundreds, horizons anywhere in the frame (a
``kitti_share`` of them may keep the KITTI-like camera instead). The
horizon of a pitched camera is approximated by the principal point's shift (exact for a level
camera with an off-centre sensor; depth along the axis differs by under 0.2 % at 3 degrees).
"""

from __future__ import annotations

import math

import numpy as np

from hydranet_ros.train import street_materials as mat
from hydranet_ros.train.datasets import IGNORE
from dataclasses import dataclass

from hydranet_ros.train.street_raycast import PinholeCamera, ZBuffer

SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, CAR = range(6)
POLE_LABEL = IGNORE  # see the module docstring: void in the authors' KITTI ground truth

__all__ = ["SyntheticStreets", "render_scene", "PinholeCamera", "CameraVariation", "IGNORE", "POLE_LABEL"]

# KITTI's view, in focal lengths: 1242 x 375 pixels at 721.5 px, horizon near the middle row.
_VIEW_WIDTH_F, _VIEW_HEIGHT_F, _VIEW_HORIZON = 1242 / 721.5, 375 / 721.5, 0.49


@dataclass(frozen=True)
class CameraVariation:
    """Ranges the per-frame camera is drawn from (see the module docstring)."""

    focal_px: tuple[float, float] = (150.0, 820.0)
    height_m: tuple[float, float] = (1.45, 1.85)
    pitch_deg: float = 3.0
    # The fraction of frames seen through the KITTI-like camera of their size (the whole view,
    # 1.65 m high, level) instead of a drawn one: the camera of `--size auto` and of KITTI itself
    # can be weighted without giving up the others. At 0 nothing extra is drawn, so frames drawn
    # before this existed stay the same.
    kitti_share: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.focal_px
        if not 0 < lo <= hi:
            raise ValueError(f"focal_px must satisfy 0 < low <= high, got {self.focal_px}")
        if not 0 < self.height_m[0] <= self.height_m[1]:
            raise ValueError(f"height_m must satisfy 0 < low <= high, got {self.height_m}")
        if not 0 <= self.pitch_deg < 20:
            raise ValueError(f"pitch_deg must be within 0..20, got {self.pitch_deg}")
        if not 0 <= self.kitti_share <= 1:
            raise ValueError(f"kitti_share must be within 0..1, got {self.kitti_share}")

    def draw(self, rng: np.random.Generator, size: tuple[int, int]) -> PinholeCamera:
        width, height = int(size[0]), int(size[1])
        if self.kitti_share > 0 and rng.uniform() < self.kitti_share:
            return PinholeCamera.kitti_like((width, height))
        focal = float(np.exp(rng.uniform(np.log(self.focal_px[0]), np.log(self.focal_px[1]))))
        # The frame is a window of a KITTI-shaped view at this focal length (or the whole view
        # and more, when the view is smaller than the frame).
        view_w, view_h = max(_VIEW_WIDTH_F * focal, width), max(_VIEW_HEIGHT_F * focal, height)
        cx = view_w / 2 - rng.uniform(0, view_w - width) - 0.5
        cy = view_h * _VIEW_HORIZON - rng.uniform(0, view_h - height) - 0.5
        cy += focal * math.tan(math.radians(rng.uniform(-self.pitch_deg, self.pitch_deg)))
        return PinholeCamera(width=width, height=height, fx=focal, fy=focal, cx=cx, cy=cy,
                             height_m=float(rng.uniform(*self.height_m)))

_BUILDING_COLOURS = (
    (0.82, 0.72, 0.56), (0.86, 0.82, 0.72), (0.74, 0.74, 0.72), (0.62, 0.33, 0.25), (0.55, 0.55, 0.56),
    (0.85, 0.70, 0.40), (0.72, 0.76, 0.82), (0.84, 0.68, 0.64), (0.92, 0.90, 0.86), (0.45, 0.40, 0.36),
)
_CAR_COLOURS = (
    (0.92, 0.92, 0.92), (0.70, 0.71, 0.73), (0.08, 0.08, 0.09), (0.70, 0.08, 0.06), (0.10, 0.18, 0.45),
    (0.30, 0.31, 0.33), (0.90, 0.78, 0.10), (0.12, 0.32, 0.18), (0.50, 0.36, 0.22), (0.85, 0.35, 0.08),
)


def _jitter(rng: np.random.Generator, colour, amount: float = 0.06) -> tuple[float, ...]:
    return tuple(np.clip(np.asarray(colour) * rng.uniform(0.85, 1.12) + rng.uniform(-amount, amount, 3), 0.02, 1.0))


def render_scene(rng: np.random.Generator, *, size: tuple[int, int] = (640, 192),
                 camera: PinholeCamera | None = None) -> dict:
    """One random street. ``size`` = (width, height); ``camera`` defaults to KITTI-like for it."""
    camera = camera or PinholeCamera.kitti_like(size)
    if (camera.width, camera.height) != (int(size[0]), int(size[1])):
        raise ValueError(f"camera is {camera.width}x{camera.height} but size is {size}")
    street = _Street(rng, camera)
    street.build()
    zb, table = street.zb, street.table
    image = mat.shade(zb, table, street.light, street.marks, street.mark_colour, rng,
                      occluders=np.asarray(street._box_bounds + street._shadow_only, np.float32).reshape(-1, 6))
    labels = np.array(table.labels + [SKY], np.uint8)[zb.prim]
    sky = zb.prim < 0
    depth = np.where(sky, np.float32(0.0), zb.z).astype(np.float32)
    return {"image": image, "labels": labels, "depth_m": depth, "camera_k": camera.k}


class SyntheticStreets:
    """An indexable, torch-free dataset of ``length`` streets; frame i depends only on (seed, i).

    ``sizes`` (a list of (width, height), with optional ``size_weights``) makes frames of several
    sizes: frame i has size ``size_of(i)``, drawn once from (seed, i). A network trained only on
    short frames learns where the frame's top and bottom edges are (with 128 rows every pixel
    sees both) and mislabels the middle of a taller frame; tall frames among the short ones take
    that cue away. The trainer batches frames of one size together (data.SizeBuckets). The first
    size is the dataset's ``size``: the trained input size its weights record.
    """

    def __init__(self, *, size: tuple[int, int] | None = None, length: int = 1000, seed: int = 0,
                 cameras: CameraVariation | dict | None = None, sizes: list | None = None,
                 size_weights: list | None = None) -> None:
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.sizes = _frame_sizes(size, sizes)
        self.size = self.sizes[0]
        self.length = int(length)
        self.seed = int(seed)
        self._kitti_cameras = {size: PinholeCamera.kitti_like(size) for size in self.sizes}  # without `cameras`
        if isinstance(cameras, dict):  # from a YAML config
            cameras = CameraVariation(**{k: tuple(v) if isinstance(v, list) else v for k, v in cameras.items()})
        self.cameras = cameras
        self._size_table = None
        if len(self.sizes) > 1:
            weights = _size_weights(size_weights, len(self.sizes))
            # One draw per frame, in frame order: frame i's size depends only on (seed, i), never on
            # the length or on the scene's randomness. (The key equals frame 20819's scene
            # generator's; that one frame's scene and the size table are then correlated, which
            # is harmless, and changing the key would change every size drawn so far.)
            table_rng = np.random.default_rng([self.seed, 0x5153])
            self._size_table = table_rng.choice(len(self.sizes), size=self.length, p=weights / weights.sum())
        elif size_weights is not None:
            raise ValueError("size_weights needs two or more sizes")

    def __len__(self) -> int:
        return self.length

    def size_of(self, index: int) -> tuple[int, int]:
        """(width, height) of frame ``index``."""
        return self.size if self._size_table is None else self.sizes[int(self._size_table[index])]

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"frame {index} out of range for {self.length} synthetic frames")
        # A generator seeded from (seed, index) makes a frame independent of access order,
        # of worker processes and of the other frames.
        rng = np.random.default_rng([self.seed, index])
        size = self.size_of(index)
        camera = self._kitti_cameras[size] if self.cameras is None else self.cameras.draw(rng, size)
        return render_scene(rng, size=size, camera=camera)


def _frame_sizes(size, sizes) -> list[tuple[int, int]]:
    """The dataset's frame sizes as (width, height) tuples; ``size`` alone means one size."""
    if sizes is None:
        return [tuple(int(v) for v in (size or (640, 192)))]
    try:
        out = [(w, h) for w, h in sizes]
    except (TypeError, ValueError):
        raise ValueError(f"sizes must be a list of [width, height], got {sizes!r}") from None
    if not out or len(set(out)) != len(out):
        raise ValueError(f"sizes must be distinct [width, height] pairs, at least one, got {sizes!r}")
    for w, h in out:
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 8 for v in (w, h)):
            raise ValueError(f"sizes: {w}x{h} is not a frame size (whole pixels, at least 8x8)")
    out = [(int(w), int(h)) for w, h in out]
    if size is not None and tuple(int(v) for v in size) != out[0]:
        raise ValueError(f"size {tuple(size)} differs from the first of sizes {out[0]}; give one of them")
    return out


def _size_weights(size_weights, count: int) -> np.ndarray:
    """Weights of ``count`` sizes: finite, >= 0, the first > 0 (it is the trained size). None: equal."""
    if size_weights is None:
        return np.ones(count)
    try:
        weights = np.asarray(size_weights, np.float64)
    except (TypeError, ValueError):
        weights = None
    if weights is None or weights.shape != (count,) or not np.all(np.isfinite(weights)) or not np.all(weights >= 0):
        raise ValueError(f"size_weights must be {count} finite non-negative numbers, got {size_weights!r}")
    if not weights[0] > 0:
        raise ValueError("size_weights: the first size is the trained input size; its weight must be > 0")
    return weights


class _Street:
    """Samples one street's layout and draws it into a z-buffer."""

    def __init__(self, rng: np.random.Generator, camera: PinholeCamera) -> None:
        self.rng = rng
        self.camera = camera
        self.table = mat.MaterialTable()
        self._box_prims: list[int] = []
        self._box_bounds: list[tuple[float, ...]] = []
        self._shadow_only: list[tuple[float, ...]] = []  # boxes that shade the ground but are drawn otherwise
        r = rng
        self.road_half = r.uniform(3.0, 7.0)
        self.parking = (r.random() < 0.6, r.random() < 0.7)  # (left, right) parked rows
        driving_right = self.road_half - (2.2 if self.parking[1] else 0.3)
        camera_l = float(np.clip(driving_right / 2 + r.normal(0, 0.35), 0.6, max(driving_right - 0.8, 0.7)))
        self.zb = ZBuffer(camera, yaw_rad=math.radians(r.uniform(-7, 7)), camera_l=camera_l)
        self.s_end = r.uniform(55, 170)
        self.sidewalk = (r.uniform(1.5, 4.5), r.uniform(1.5, 4.5))
        self.kerb = r.uniform(0.08, 0.17)
        self.grass_verge = (r.random() < 0.45, r.random() < 0.45)
        self.light = self._lighting()
        self.mark_colour = _jitter(r, (0.88, 0.88, 0.84) if r.random() < 0.85 else (0.9, 0.78, 0.25), 0.03)
        self.marks = self._lane_marks()

    # -- layout ------------------------------------------------------------------------------
    def build(self) -> None:
        self._ground()
        for side in (-1, 1):
            self._sidewalk(side)
            self._buildings(side)
            self._hedges(side)
            self._trees(side)
            self._poles(side)
            self._parked_cars(side)
        self._traffic()
        self._backdrop()
        self.zb.boxes(np.asarray(self._box_prims, np.int16), np.asarray(self._box_bounds, np.float32))

    def _box(self, prim: int, l0: float, l1: float, s0: float, s1: float, h0: float, h1: float) -> None:
        self._box_prims.append(prim)
        self._box_bounds.append((l0, l1, s0, s1, h0, h1))

    def _lighting(self) -> mat.Lighting:
        r = self.rng
        overcast = r.random() < 0.3
        elevation, azimuth = math.radians(r.uniform(15, 65)), r.uniform(0, 2 * math.pi)
        sun = (math.cos(elevation) * math.sin(azimuth), math.cos(elevation) * math.cos(azimuth), math.sin(elevation))
        zenith = _jitter(r, (0.78, 0.80, 0.83) if overcast else (0.30, 0.50, 0.88), 0.05)
        horizon = _jitter(r, (0.86, 0.87, 0.88) if overcast else (0.75, 0.84, 0.94), 0.04)
        return mat.Lighting(
            sun=sun, ambient=r.uniform(0.55, 0.75) if overcast else r.uniform(0.38, 0.55),
            direct=r.uniform(0.05, 0.15) if overcast else r.uniform(0.45, 0.7),
            sky_horizon=horizon, sky_zenith=zenith, cloud_cover=r.uniform(0.0, 0.6),
            haze_m=r.uniform(250, 1500), gains=tuple(r.uniform(0.9, 1.1) * r.uniform(0.94, 1.06, 3)),
            noise_level=r.uniform(0.005, 0.025), blur_sigma=r.uniform(0.0, 0.8),
        )

    def _lane_marks(self) -> list[mat.LaneMark]:
        r, marks = self.rng, []
        if r.random() < 0.8:
            marks.append(mat.LaneMark(0.0, r.uniform(0.1, 0.16), r.uniform(6, 12), r.uniform(0.3, 0.6)))
        if r.random() < 0.5:
            edge = self.road_half - r.uniform(0.25, 0.5)
            width = r.uniform(0.1, 0.2)
            marks += [mat.LaneMark(-edge, width, 0.0, 1.0), mat.LaneMark(edge, width, 0.0, 1.0)]
        return marks

    def _ground(self) -> None:
        r, t = self.rng, self.table
        road = t.add(ROAD, mat.ASPHALT, _jitter(r, (0.34, 0.34, 0.36) if r.random() < 0.7 else (0.45, 0.44, 0.43)))
        verges = []
        for grass in self.grass_verge:
            if grass:
                verges.append(t.add(VEGETATION, mat.GRASS, _jitter(r, (0.30, 0.45, 0.18), 0.05)))
            else:
                verges.append(t.add(SIDEWALK, mat.PAVING, _jitter(r, (0.55, 0.54, 0.52)), params=(r.uniform(0.3, 1.0),)))
        left, right = verges
        half = np.float32(self.road_half)
        self.zb.ground(lambda lat: np.where(np.abs(lat) <= half, road, np.where(lat < 0, left, right)).astype(np.int16))

    def _sidewalk(self, side: int) -> None:
        r = self.rng
        # Pale slabs, red brick, or grey asphalt-like paving about as dark as the road: German and
        # many other sidewalks are the last kind, and a network that only ever saw pale sidewalks
        # calls every real grey one road. Then only the kerb, the texture and the layout tell.
        kind = r.random()
        if kind < 0.45:
            colour, tile = _jitter(r, (0.62, 0.60, 0.58)), r.uniform(0.25, 0.8)
        elif kind < 0.8:
            colour, tile = _jitter(r, (0.40, 0.40, 0.41), 0.03), r.uniform(0.1, 0.35)
        else:
            colour, tile = _jitter(r, (0.62, 0.45, 0.42)), r.uniform(0.2, 0.5)
        prim = self.table.add(SIDEWALK, mat.PAVING, colour, params=(tile,))
        inner, outer = self.road_half, self.road_half + self.sidewalk[side > 0]
        l0, l1 = (inner, outer) if side > 0 else (-outer, -inner)
        self._box(prim, l0, l1, 0.5, self.s_end + 5, 0.0, self.kerb)

    def _buildings(self, side: int) -> None:
        r = self.rng
        if r.random() < 0.12:
            return  # an open side: park or field, trees and the far skyline only
        s = r.uniform(-5, 10)
        inner_base = self.road_half + self.sidewalk[side > 0]
        row_colour = _BUILDING_COLOURS[r.integers(len(_BUILDING_COLOURS))]
        setback_base = r.uniform(0.0, 6.0) if self.grass_verge[side > 0] else r.uniform(0.0, 1.5)
        while s < self.s_end:
            length = r.uniform(7, 28)
            if r.random() < 0.25:
                s += r.uniform(3, 14)  # a gap between houses
                continue
            colour = row_colour if r.random() < 0.4 else _BUILDING_COLOURS[r.integers(len(_BUILDING_COLOURS))]
            inner = inner_base + setback_base + r.uniform(0, 1.5)
            depth, roof = r.uniform(8, 16), r.uniform(5, 24)
            floor_h = r.uniform(2.8, 3.6)
            window_colour = _jitter(r, (0.16, 0.20, 0.26) if r.random() < 0.7 else (0.45, 0.52, 0.6), 0.05)
            period, wfrac, hfrac = r.uniform(1.8, 3.5), r.uniform(0.3, 0.6), r.uniform(0.35, 0.55)
            ground, offset = r.uniform(0.0, 4.0), r.uniform(0, 3)
            detail = self._facade_detail()
            shutters, stone_course = detail[4], detail[5]
            if shutters:  # shutters need room beside the window
                wfrac = min(wfrac, 0.42)
            if stone_course:  # a stone plinth is a low band, not a shop front
                ground = r.uniform(0.4, 1.3)
            params = (period, floor_h, wfrac, hfrac, ground, offset, roof) + detail
            prim = self.table.add(BUILDING, mat.FACADE, _jitter(r, colour), window_colour, params)
            l0, l1 = (inner, inner + depth) if side > 0 else (-inner - depth, -inner)
            self._box(prim, l0, l1, max(s, 1.0), s + length, 0.0, roof)
            if roof < 16 and r.random() < 0.55:
                self._pitched_roof(prim, side, (l0, l1, s, s + length), roof)
            s += length + (r.uniform(0.0, 1.0) if r.random() < 0.5 else 0.0)

    def _pitched_roof(self, facade: int, side: int, box: tuple[float, float, float, float], eave_h: float) -> None:
        """A tiled gable roof on a house: eaves along the street, or a gable end facing it. Only
        the slope facing the street is drawn (from below the eaves the far one never shows); the
        gable triangle is facade. Red, brown or anthracite tiles, the most common roofs on German
        streets, which a network that only knew flat roofs called sidewalk."""
        r = self.rng
        l0, l1, s0, s1 = box
        pitch = math.tan(math.radians(r.uniform(28, 50)))
        colour = _jitter(r, ((0.55, 0.26, 0.18), (0.42, 0.28, 0.22), (0.22, 0.22, 0.24))[r.integers(3)], 0.04)
        near_l = l0 if side > 0 else l1
        mid_l, mid_s = (l0 + l1) / 2, (s0 + s1) / 2
        along_street = s1 - s0 > 14 or r.random() < 0.6  # the ridge; else a gable end faces the street
        rise = (side * pitch, 0.0) if along_street else (0.0, pitch)  # metres up per metre across, along
        course, tile_w = r.uniform(0.25, 0.4), r.uniform(0.2, 0.35)
        tiles = self.table.add(BUILDING, mat.ROOF_TILES, colour, params=(*rise, course, tile_w))
        if along_street:  # gable ends fore and aft
            ridge = eave_h + pitch * (l1 - l0) / 2
            footprint = (min(near_l, mid_l), max(near_l, mid_l), s0, s1)
            self.zb.slope(tiles, footprint, (eave_h, near_l, s0), rise, ridge)
            self.zb.wall_across(facade, s0, np.array([l0, mid_l, l1]), np.array([eave_h, ridge, eave_h]))
        else:  # the slope rising away from the camera
            ridge = eave_h + pitch * (s1 - s0) / 2
            self.zb.slope(tiles, (l0, l1, s0, mid_s), (eave_h, near_l, s0), rise, ridge)
            self.zb.wall_along(facade, near_l, np.array([s0, mid_s, s1]), np.array([eave_h, ridge, eave_h]))
        # The roof's shadow on the street, roughly: a block to half the ridge's height.
        self._shadow_only.append((l0, l1, s0, s1, eave_h, (eave_h + ridge) / 2))

    def _facade_detail(self) -> tuple[float, ...]:
        """Facade params 7-15 (street_materials._facade): window frames, shutters, stone plinth."""
        r = self.rng
        frame_w, frame_colour, shutters = 0.0, (0.0, 0.0, 0.0), 0.0
        if r.random() < 0.55:
            frame_w = r.uniform(0.06, 0.14)
            white = r.random() < 0.7  # mostly white, some dark wood or grey metal
            frame_colour = _jitter(r, (0.93, 0.93, 0.91) if white else (0.30, 0.24, 0.20), 0.04)
            shutters = float(r.random() < 0.3)
        course, stone = 0.0, (0.0, 0.0, 0.0)
        if r.random() < 0.35:
            course = r.uniform(0.22, 0.4)
            stone = _jitter(r, ((0.50, 0.36, 0.30), (0.50, 0.50, 0.50), (0.70, 0.62, 0.50))[r.integers(3)], 0.04)
        return (frame_w, *frame_colour, shutters, course, *stone)

    def _trees(self, side: int) -> None:
        r = self.rng
        count = int(r.integers(0, 9))
        edge = self.road_half + self.sidewalk[side > 0]
        bark = self.table.add(VEGETATION, mat.BARK, _jitter(r, (0.30, 0.24, 0.18), 0.04))
        for _ in range(count):
            s = r.uniform(6, self.s_end)
            on_sidewalk = r.random() < 0.6
            # Street trees on the sidewalk; garden trees behind it grow taller (real residential
            # streets show 10-20 m crowns above the roofs, which a network must not call building).
            offset = (self.road_half + r.uniform(0.6, max(self.sidewalk[side > 0] - 0.5, 0.7))
                      if on_sidewalk else edge + r.uniform(0.5, 12.0))
            grow = 1.0 if on_sidewalk else r.uniform(1.0, 1.8)
            lateral = side * offset
            trunk_h = r.uniform(1.8, 3.5) * grow
            radii = grow * np.array((r.uniform(1.3, 3.2), r.uniform(1.3, 3.2), r.uniform(1.5, 3.5)))
            self._box(bark, lateral - 0.15, lateral + 0.15, s - 0.15, s + 0.15, 0.0, trunk_h + radii[2] * 0.5)
            colour = _jitter(r, (0.22, 0.38, 0.12), 0.06)
            centre = np.array((lateral, s, trunk_h + radii[2] * 0.8))
            self._crown(colour, centre, radii)
            # Lobes break the ellipsoid's smooth outline into the lumpy one of a real crown.
            for _ in range(int(r.integers(0, 5))):
                direction = r.normal(0, 1, 3)
                direction[2] = abs(direction[2]) * 0.5
                direction /= np.linalg.norm(direction) + 1e-9
                lobe = radii * r.uniform(0.4, 0.65)
                self._crown(colour, centre + direction * radii * 0.75, lobe)

    def _crown(self, colour, centre: np.ndarray, radii: np.ndarray) -> None:
        # Each lobe its own row: the foliage shading takes its normals from the row's ellipsoid.
        crown = self.table.add(VEGETATION, mat.FOLIAGE, colour, params=(*centre, *radii))
        self.zb.ellipsoid(crown, centre, radii)

    def _hedges(self, side: int) -> None:
        """Hedges and bushes along the property line: low vegetation with a ragged top, beside
        sidewalks and in front of houses, the vegetation a car camera sees most of."""
        r = self.rng
        if r.random() < 0.45:
            return
        lateral = side * (self.road_half + self.sidewalk[side > 0] + r.uniform(0.0, 0.5))
        prim = self.table.add(VEGETATION, mat.HEDGE, _jitter(r, (0.17, 0.30, 0.10), 0.05))
        s = r.uniform(-2, 15)
        while s < self.s_end:
            length = r.uniform(4, 30)
            if r.random() < 0.35:
                s += r.uniform(2, 12)  # a gate, a drive, a gap
                continue
            knots = np.arange(s, s + length + 0.3, 0.3)
            base = r.uniform(0.6, 2.4)
            bumps = np.convolve(r.normal(0, 0.25, knots.size + 4), np.ones(5) / 5, mode="valid")
            tops = np.clip(base + bumps + r.normal(0, 0.05, knots.size), 0.3, 3.5)
            self.zb.wall_along(prim, lateral, knots, tops)
            # A hedge is a thick block to the sun: it shades the sidewalk in front of it.
            l0, l1 = sorted((lateral, lateral + side * 0.8))
            self._shadow_only.append((l0, l1, s, s + length, 0.0, float(base)))
            s += length

    def _poles(self, side: int) -> None:
        r = self.rng
        metal = self.table.add(POLE_LABEL, mat.METAL, _jitter(r, (0.45, 0.46, 0.47), 0.05))
        for _ in range(int(r.integers(0, 5))):
            s = r.uniform(5, self.s_end * 0.7)
            lateral = side * (self.road_half + 0.45)
            top = r.uniform(4.5, 8.5)
            self._box(metal, lateral - 0.08, lateral + 0.08, s - 0.08, s + 0.08, 0.0, top)
            if r.random() < 0.6:  # street lamp arm over the road
                reach = r.uniform(1.0, 2.5)
                l0, l1 = sorted((lateral, lateral - side * reach))
                self._box(metal, l0, l1, s - 0.06, s + 0.06, top - 0.15, top)

    def _car(self, lateral: float, s: float, *, length: float | None = None) -> None:
        r, t = self.rng, self.table
        width = r.uniform(1.6, 1.95)
        length = length or r.uniform(3.7, 4.9)
        tall = r.random() < 0.15  # vans and SUVs
        sill, belt = r.uniform(0.25, 0.35), r.uniform(0.85, 1.0) + (0.3 if tall else 0.0)
        roof = belt + r.uniform(0.4, 0.55)
        paint = _jitter(r, _CAR_COLOURS[r.integers(len(_CAR_COLOURS))], 0.04)
        l0, l1 = lateral - width / 2, lateral + width / 2
        body = t.add(CAR, mat.PAINT, paint, _jitter(r, (0.75, 0.08, 0.05), 0.05), (l0, l1, sill, belt))
        self._box(body, l0, l1, s, s + length, sill, belt)
        inset = r.uniform(0.08, 0.16)
        c0, c1 = s + length * r.uniform(0.12, 0.3), s + length * r.uniform(0.65, 0.8)
        cabin = t.add(CAR, mat.GLASS, paint, _jitter(r, (0.12, 0.14, 0.17), 0.03),
                      (l0 + inset, l1 - inset, c0, c1, belt, roof))
        self._box(cabin, l0 + inset, l1 - inset, c0, c1, belt, roof)
        tyre = t.add(CAR, mat.RUBBER, (0.06, 0.06, 0.06))
        radius = r.uniform(0.3, 0.36)
        for axle in (s + 0.75, s + length - 0.75):
            for wl in (l0 + 0.02, l1 - 0.24):
                self._box(tyre, wl, wl + 0.22, axle - radius, axle + radius, 0.0, 2 * radius)

    def _parked_cars(self, side: int) -> None:
        r = self.rng
        if not self.parking[side > 0]:
            return
        lateral = side * (self.road_half - r.uniform(1.0, 1.25))
        s = r.uniform(2, 12)
        while s < self.s_end * 0.8:
            if r.random() < 0.7:
                length = r.uniform(3.7, 4.9)
                self._car(lateral + r.normal(0, 0.08), s, length=length)
                s += length + r.uniform(0.6, 3.0)
            else:
                s += r.uniform(4, 15)

    def _traffic(self) -> None:
        r = self.rng
        lane = self.zb.camera_l
        for _ in range(int(r.integers(0, 3))):
            self._car(lane + r.normal(0, 0.2), r.uniform(7, 60))
        for _ in range(int(r.integers(0, 3))):
            self._car(-abs(lane) + r.normal(0, 0.2), r.uniform(5, 70))

    def _backdrop(self) -> None:
        """Close the scene: a skyline across the road's end and behind each building row."""
        r, t = self.rng, self.table
        knots = np.arange(-150.0, 151.0, 2.5)
        if r.random() < 0.5:
            tops = np.repeat(r.uniform(6, 30, knots.size // 4 + 1), 4)[: knots.size]
            prim = t.add(BUILDING, mat.FACADE, _jitter(r, _BUILDING_COLOURS[r.integers(10)]),
                         (0.3, 0.35, 0.4), (3.0, 3.2, 0.4, 0.4, 0.5, 0.0, 1e3))
        else:
            tops = np.clip(r.uniform(6, 16) + np.cumsum(r.normal(0, 1.2, knots.size)), 3, 30)
            prim = t.add(VEGETATION, mat.SKYLINE_TREES, _jitter(r, (0.2, 0.33, 0.14), 0.05))
        self.zb.wall_across(prim, self.s_end, knots, tops)
        along = np.arange(-10.0, self.s_end + 10.0, 2.5)
        for side in (-1, 1):
            lateral = side * (self.road_half + self.sidewalk[side > 0] + r.uniform(20, 45))
            if r.random() < 0.5:
                tops = np.clip(r.uniform(8, 16) + np.cumsum(r.normal(0, 1.0, along.size)), 4, 25)
                prim = t.add(VEGETATION, mat.SKYLINE_TREES, _jitter(r, (0.2, 0.33, 0.14), 0.05))
            else:
                tops = np.repeat(r.uniform(8, 30, along.size // 5 + 1), 5)[: along.size]
                prim = t.add(BUILDING, mat.FACADE, _jitter(r, _BUILDING_COLOURS[r.integers(10)]),
                             (0.3, 0.35, 0.4), (3.0, 3.2, 0.4, 0.4, 0.5, 0.0, 1e3))
            self.zb.wall_along(prim, lateral, along, tops)
