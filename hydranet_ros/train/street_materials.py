"""Colour for synthetic streets: a deferred shading pass over the z-buffer.

Geometry first, colour after: once every pixel knows its depth, primitive and face, its 3D
point follows from the ray, so textures are anchored in the world (asphalt grain shrinks with
distance, windows sit on the facade, dashes on the road) at the cost of one pass per material
kind over the pixels of that kind, whatever the number of objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from hydranet_ros.train.street_raycast import FACE_NEG_S, FACE_NORMALS, FACE_UP, ZBuffer

# Material kinds.
ASPHALT, PAVING, GRASS, FACADE, PAINT, GLASS, RUBBER, FOLIAGE, BARK, METAL, SKYLINE_TREES, HEDGE, ROOF_TILES = range(13)

_TILE = 256  # noise tiles are 256x256 and wrap (index & 255)
PARAM_SLOTS = 16  # numbers a material row carries (see each kind's shading function)


@lru_cache(maxsize=1)
def noise_tiles() -> tuple[np.ndarray, np.ndarray]:
    """Two wrapping value-noise tiles in about [-1, 1]: smooth (grain, clumps) and white (sensor).

    Made once from a fixed seed: a frame's look comes from its own random colours, scales and
    offsets into these tiles, so frames stay deterministic in (seed, index).
    """
    rng = np.random.default_rng(20240605)
    smooth = np.zeros((_TILE, _TILE), np.float32)
    for cells, weight in ((8, 0.5), (16, 0.25), (32, 0.15), (64, 0.1)):
        grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
        # Wrap-around bilinear upsampling keeps the tile seamless.
        grid = np.pad(grid, ((0, 1), (0, 1)), mode="wrap")
        up = cv2.resize(grid, (_TILE + _TILE // cells, _TILE + _TILE // cells), interpolation=cv2.INTER_LINEAR)
        smooth += weight * up[:_TILE, :_TILE]
    smooth /= np.abs(smooth).max()
    white = rng.uniform(-1, 1, (_TILE, _TILE)).astype(np.float32)
    return smooth, white


def _sample(tile: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return tile[y.astype(np.int32) & (_TILE - 1), x.astype(np.int32) & (_TILE - 1)]


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


@dataclass
class MaterialTable:
    """Per-primitive facts the shading pass needs; row i describes primitive id i."""

    labels: list[int] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    colours: list[tuple[float, float, float]] = field(default_factory=list)
    accents: list[tuple[float, float, float]] = field(default_factory=list)
    params: list[tuple[float, ...]] = field(default_factory=list)

    def add(self, label: int, kind: int, colour, accent=(0.0, 0.0, 0.0), params=()) -> int:
        self.labels.append(label)
        self.kinds.append(kind)
        self.colours.append(tuple(float(c) for c in colour))
        self.accents.append(tuple(float(c) for c in accent))
        if len(params) > PARAM_SLOTS:
            raise ValueError(f"a material takes at most {PARAM_SLOTS} params, got {len(params)}")
        self.params.append(tuple(float(p) for p in params) + (0.0,) * (PARAM_SLOTS - len(params)))
        return len(self.labels) - 1


@dataclass(frozen=True)
class Lighting:
    sun: tuple[float, float, float]  # unit vector (l, s, up) towards the sun
    ambient: float
    direct: float
    sky_horizon: tuple[float, float, float]
    sky_zenith: tuple[float, float, float]
    cloud_cover: float
    haze_m: float  # distance at which haze has taken 63 % of the colour
    gains: tuple[float, float, float]  # white balance and exposure
    noise_level: float
    blur_sigma: float


@dataclass(frozen=True)
class LaneMark:
    lateral: float
    width: float
    period: float  # dash period in metres; 0 = solid
    duty: float


class _Canvas:
    """Flat, planar colour buffers: numpy's fancy indexing is fast on 1D arrays and several
    times slower on Nx3 rows, so each channel and the brightness factor are kept apart."""

    def __init__(self, rgb: list[np.ndarray]) -> None:
        self.rgb = rgb
        self.tex = np.ones_like(rgb[0])  # brightness factor from textures, per pixel

    def paint(self, idx: np.ndarray, colour) -> None:
        """Set the albedo of pixels ``idx``: one RGB triple, or an n x 3 array."""
        colour = np.asarray(colour, np.float32)
        for c in range(3):
            self.rgb[c][idx] = colour[..., c]


def cast_shadows(lateral: np.ndarray, along: np.ndarray, height: np.ndarray, sun: np.ndarray,
                 boxes: np.ndarray, *, chunk: int = 8192) -> np.ndarray:
    """Which points (l, s, height) see the sun blocked by one of ``boxes`` (Bx6: l0, l1, s0, s1,
    h0, h1): a slab test of the ray from each point towards the sun against every box. Real
    streets in sunshine are full of hard shadows (cars, houses, trees' trunks); a network that
    never saw one calls a shadowed road something darker."""
    shadow = np.zeros(lateral.shape, bool)
    if boxes.size == 0 or sun[2] <= 0:
        return shadow
    d = np.where(np.abs(sun) < 1e-6, 1e-6, sun).astype(np.float32)
    lo = (boxes[:, [0, 2, 4]]).astype(np.float32)  # B x 3
    hi = (boxes[:, [1, 3, 5]]).astype(np.float32)
    for start in range(0, lateral.size, chunk):
        p = np.stack([lateral[start:start + chunk], along[start:start + chunk], height[start:start + chunk]], 1)
        t0 = (lo[None] - p[:, None]) / d  # N x B x 3
        t1 = (hi[None] - p[:, None]) / d
        enter = np.minimum(t0, t1).max(axis=2)
        leave = np.maximum(t0, t1).min(axis=2)
        shadow[start:start + chunk] = ((leave > np.maximum(enter, 1e-3))).any(axis=1)
    return shadow


def shade(zb: ZBuffer, table: MaterialTable, light: Lighting, marks: list[LaneMark],
          mark_colour: tuple[float, float, float], rng: np.random.Generator,
          occluders: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 for a filled z-buffer; ``occluders`` (Bx6 boxes) cast shadows on the ground."""
    smooth, white = noise_tiles()
    h, w = zb.z.shape
    # Row 0 of each table is the sky, so (prim id + 1) indexes it directly.
    pid = zb.prim.ravel().astype(np.intp) + 1
    kinds = np.take(np.array([255] + table.kinds, np.uint8), pid)
    colours = np.array([(0.0, 0.0, 0.0)] + table.colours, np.float32)
    canvas = _Canvas([np.take(colours[:, c], pid) for c in range(3)])
    params = np.array([(0.0,) * PARAM_SLOTS] + table.params, np.float32)
    accents = np.array([(0.0, 0.0, 0.0)] + table.accents, np.float32)
    sky = pid == 0
    zz = np.where(sky.reshape(h, w), np.float32(0.0), zb.z)
    z = zz.ravel()
    lateral = (zb.camera_l + zz * zb.dl[None, :]).ravel()
    along = (zz * zb.ds[None, :]).ravel()
    height = (zb.camera.height_m + zz * zb.dh[:, None]).ravel()
    face = zb.face.ravel()

    sun = np.array(light.sun, np.float32)
    shade_lut = (light.ambient + light.direct * np.maximum(FACE_NORMALS @ sun, 0.0)).astype(np.float32)
    lum = np.take(shade_lut, face)
    if occluders is not None and light.direct > 0.2:
        ground = np.flatnonzero((face == FACE_UP) & ~sky & (height < 0.25))
        dark = cast_shadows(lateral[ground], along[ground], height[ground] + np.float32(0.01), sun, occluders)
        lum[ground[dark]] = light.ambient

    def pixels(kind: int) -> np.ndarray:
        return np.flatnonzero(kinds == kind)

    # Face-aligned coordinate: facades and boxes are textured in (along-the-face, height).
    def across(i: np.ndarray) -> np.ndarray:
        return np.where(face[i] == FACE_NEG_S, lateral[i], along[i])

    tex = canvas.tex
    i = pixels(ASPHALT)
    if i.size:
        li, si = lateral[i], along[i]
        tex[i] = 1.0 + 0.10 * _sample(smooth, li * 23 + 40, si * 23) + 0.07 * _sample(smooth, li * 2.1, si * 2.1 + 90)
        for mark in marks:
            on = np.abs(li - mark.lateral) < mark.width / 2
            if mark.period > 0:
                on &= _frac(si / mark.period) < mark.duty
            canvas.paint(i[on], mark_colour)
    i = pixels(PAVING)
    if i.size:
        tile = np.take(params[:, 0], pid[i])
        li, si = lateral[i] / tile, along[i] / tile
        joint = (_frac(li) < 0.06) | (_frac(si) < 0.06)
        tex[i] = np.where(joint, 0.72, 1.0) + 0.08 * _sample(smooth, li * 37, si * 37)
    i = pixels(GRASS)
    if i.size:
        tex[i] = (1.0 + 0.25 * _sample(smooth, lateral[i] * 9, along[i] * 9)
                  + 0.12 * _sample(white, lateral[i] * 40, along[i] * 40))
    i = pixels(FACADE)
    if i.size:
        _facade(canvas, i, across(i), height[i], pid[i], params, accents, smooth)
    i = pixels(PAINT)
    if i.size:
        _car_body(canvas, i, lateral[i], height[i], face[i], pid[i], params, accents)
    i = pixels(GLASS)
    if i.size:
        _car_cabin(canvas, i, across(i), height[i], face[i], pid[i], params, accents)
    for kind, scale, amount in ((RUBBER, 20, 0.1), (BARK, 12, 0.25), (METAL, 10, 0.08)):
        i = pixels(kind)
        if i.size:
            tex[i] = 1.0 + amount * _sample(smooth, across(i) * scale + 17, height[i] * scale)
    i = pixels(FOLIAGE)
    if i.size:
        p = params[pid[i]]
        normal = np.stack([(lateral[i] - p[:, 0]) / p[:, 3] ** 2, (along[i] - p[:, 1]) / p[:, 4] ** 2,
                           (height[i] - p[:, 2]) / p[:, 5] ** 2])
        lum[i] = light.ambient + light.direct * np.maximum(sun @ normal / (np.linalg.norm(normal, axis=0) + 1e-6), 0.0)
        tex[i] = _leaves(lateral[i] + along[i], height[i], smooth, white)
    i = pixels(ROOF_TILES)
    if i.size:
        # params: rise per metre across (l) and along (s), tile course (m along the slope), tile
        # width (m). Courses of clay or slate tiles read as paving to a network that has only
        # seen flat roofs; they are building.
        p = params[pid[i]]
        normal = np.stack([-p[:, 0], -p[:, 1], np.ones(i.size, np.float32)])
        lum[i] = light.ambient + light.direct * np.maximum(sun @ normal / np.linalg.norm(normal, axis=0), 0.0)
        runs_along_s = np.abs(p[:, 0]) > np.abs(p[:, 1])  # eaves along the street
        run = np.where(runs_along_s, along[i], lateral[i])
        slope = np.hypot(p[:, 0], p[:, 1])
        course = height[i] * np.sqrt(1 + slope ** 2) / slope / p[:, 2]
        tile = run / p[:, 3] + 0.5 * (np.floor(course) % 2)
        cell = np.floor(tile).astype(np.int32) * 17 + np.floor(course).astype(np.int32) * 59
        tex[i] = np.where(_frac(course) > 0.8, 0.62, 0.9 + 0.14 * _sample(white, cell * 3, cell * 7))
    for kind in (SKYLINE_TREES, HEDGE):  # leafy walls: textured along the wall and up
        i = pixels(kind)
        if i.size:
            tex[i] = _leaves(across(i), height[i], smooth, white)

    # Haze: far surfaces fade towards the horizon colour (a strong real-world depth cue).
    fog = 1.0 - np.exp(-z / np.float32(light.haze_m))
    keep = (tex * lum) * (1.0 - fog)
    out = np.empty((h, w, 3), np.float32)
    for c in range(3):
        out[:, :, c] = (canvas.rgb[c] * keep + np.float32(light.sky_horizon[c]) * fog).reshape(h, w)
    _sky(out, sky.reshape(h, w), zb, light, smooth, rng)

    out *= np.asarray(light.gains, np.float32)
    ox, oy = rng.integers(0, _TILE, 2)
    grain = white[(np.arange(h)[:, None] + oy) & 255, (np.arange(w)[None, :] * 3 + ox) & 255]
    out += (np.float32(light.noise_level) * grain)[:, :, None]
    if light.blur_sigma > 0:
        # Real lenses and demosaicing soften edges; a network trained on razor-sharp synthetic
        # edges transfers worse. Labels and depth stay exact at the pixel centres.
        out = cv2.GaussianBlur(out, (3, 3), light.blur_sigma)
    np.clip(out, 0.0, 1.0, out=out)
    return (out * 255.0 + 0.5).astype(np.uint8)


def _facade(canvas, i, along, height, pid, params, accents, smooth) -> None:
    # params: 0 window period, 1 floor height, 2 window width fraction, 3 window height fraction,
    #         4 ground floor height, 5 along offset, 6 roof height, 7 frame width (m, 0: none),
    #         8-10 frame and shutter colour, 11 shutters (1: yes), 12 the plinth's stone course
    #         height (m; 0: a plain darker band), 13-15 the stone's colour.
    # Real facades are not flat colour with dark holes: white frames, mullions and shutters are
    # bright, sky-like patches, and a plinth of stone blocks looks like paving. A network that
    # never saw them calls them sky and sidewalk on the first real street.
    p = params[pid]
    period, floor_h, wfrac, hfrac, ground, offset, roof = (p[:, k] for k in range(7))
    frame_w, shutters, stone = p[:, 7], p[:, 11] > 0.5, p[:, 12] > 0
    u = (along - offset) / period
    v = (height - ground) / floor_h
    # Metres from the centre of this cell's window, across and up.
    du = np.abs(_frac(u) - 0.5) * period
    dv = np.abs(_frac(v) - (0.25 + hfrac / 2)) * floor_h
    half_w, half_h = wfrac * period / 2, hfrac * floor_h / 2
    # Only whole windows: a storey whose window (and frame) would reach within 0.3 m of the
    # eaves has none, rather than a window cut off by the roof line.
    window_top = ground + (np.floor(v) + 0.25 + hfrac) * floor_h + frame_w
    storey = (height > ground) & (window_top < roof - 0.3)
    opening = storey & (du < half_w) & (dv < half_h)
    framed = storey & (frame_w > 0)
    frame = framed & ~opening & (du < half_w + frame_w) & (dv < half_h + frame_w)
    # A mullion down the middle and a transom a third from the top: the white cross of a
    # European window.
    transom = np.abs(_frac(v) - 0.25 - hfrac * 0.66) * floor_h < frame_w * 0.4
    mullion = opening & framed & ((du < frame_w * 0.4) | transom)
    shutter = (framed & shutters & ~opening & ~frame & (du < 2 * half_w + frame_w) & (dv < half_h + frame_w))
    window = opening & ~mullion

    wall = 1.0 + 0.06 * _sample(smooth, along * 9, height * 9)
    plinth = height < ground
    canvas.tex[i] = np.where(plinth & ~stone, wall * 0.78, wall)  # shop fronts / plinth: darker band
    # Stone blocks: joints staggered every other course, each block its own shade.
    blocks = plinth & stone
    if blocks.any():
        course = p[blocks, 12]
        bv = height[blocks] / course
        row = np.floor(bv)
        bu = along[blocks] / (course * 2.2) + 0.5 * (row % 2)
        joint = (_frac(bv) < 0.08) | (_frac(bu) < 0.04)
        cell = np.floor(bu).astype(np.int32) * 13 + row.astype(np.int32) * 71
        canvas.tex[i[blocks]] = np.where(joint, 0.6, 0.9 + 0.12 * _sample(smooth, cell * 7, cell * 5))
        canvas.paint(i[blocks], p[blocks, 13:16])
    u, v, j = u[window], v[window], i[window]
    cell = np.floor(u).astype(np.int32) * 7 + np.floor(v).astype(np.int32) * 131
    canvas.tex[j] = 0.55 + 0.25 * (_sample(smooth, cell * 5, cell * 3) + 1.0)
    canvas.paint(j, accents[pid[window]])
    trim = frame | mullion
    canvas.tex[i[trim]] = 1.0
    canvas.paint(i[trim], p[trim, 8:11])
    if shutter.any():
        # Louvres: thin horizontal slats, darker at each slat's lower edge.
        canvas.tex[i[shutter]] = np.where(_frac(height[shutter] / 0.06) < 0.3, 0.75, 0.97)
        canvas.paint(i[shutter], p[shutter, 8:11])


def _car_body(canvas, i, lateral, height, face, pid, params, accents) -> None:
    # params: l0, l1, h0, h1 of the body box
    p = params[pid]
    l0, l1, h0, h1 = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    rel_h = (height - h0) / (h1 - h0)
    rear = face == FACE_NEG_S
    light = rear & (rel_h > 0.62) & (rel_h < 0.85) & ((lateral - l0 < 0.3) | (l1 - lateral < 0.3))
    plate = rear & (rel_h > 0.25) & (rel_h < 0.45) & (np.abs(lateral - (l0 + l1) / 2) < 0.26)
    canvas.paint(i[light], accents[pid[light]])
    canvas.paint(i[plate], (0.85, 0.85, 0.8))
    canvas.tex[i[rel_h < 0.12]] = 0.35  # sills and bumper shadow


def _car_cabin(canvas, i, along, height, face, pid, params, accents) -> None:
    # params: face coordinate ranges l0, l1, s0, s1 and heights h0, h1 of the cabin box
    p = params[pid]
    lo = np.where(face == FACE_NEG_S, p[:, 0], p[:, 2])
    hi = np.where(face == FACE_NEG_S, p[:, 1], p[:, 3])
    glass = ((height > p[:, 4] + 0.04) & (height < p[:, 5] - 0.06) & (along > lo + 0.12) & (along < hi - 0.12)
             & (face != FACE_UP))
    canvas.tex[i[glass]] = (0.8 + 0.5 * (height - p[:, 4]) / (p[:, 5] - p[:, 4]))[glass]
    canvas.paint(i[glass], accents[pid[glass]])


def _leaves(u, v, smooth, white) -> np.ndarray:
    clumps = _sample(smooth, u * 3.0 + 11, v * 3.0)
    leaves = _sample(white, u * 25, v * 25)
    return 0.85 + 0.45 * clumps + 0.2 * leaves


def _sky(colour, sky, zb, light, smooth, rng) -> None:
    rows = np.flatnonzero(sky.any(axis=1))
    if rows.size == 0:
        return
    cam = zb.camera
    elevation = np.clip(zb.dh[rows], 0.0, None) / max(abs(float(zb.dh[0])), 1e-3)
    mix = np.sqrt(elevation)[:, None, None]
    grad = (1 - mix) * np.asarray(light.sky_horizon, np.float32) + mix * np.asarray(light.sky_zenith, np.float32)
    ox, oy = rng.integers(0, _TILE, 2)
    u = np.arange(cam.width, dtype=np.float32)[None, :] * (64.0 / cam.width) + ox
    v = rows.astype(np.float32)[:, None] * (128.0 / cam.height) + oy
    cloud = np.clip((_sample(smooth, u, v) + 1.0) / 2 - (1.0 - light.cloud_cover), 0.0, 1.0) * 2.5
    cloud = np.clip(cloud, 0.0, 1.0)[:, :, None]
    sky_rgb = (grad * (1 - cloud) + np.float32(0.92) * cloud).astype(np.float32)
    block = colour[rows]
    np.copyto(block, sky_rgb, where=sky[rows][:, :, None])
    colour[rows] = block
