"""Class colour tables (RGB), one entry per class id."""

from __future__ import annotations

import functools

import numpy as np

Palette = tuple[tuple[int, int, int], ...]

# KITTI-6 as drawn by the published model's authors (CamVid-style colours).
KITTI6: Palette = ((128, 128, 128), (128, 0, 0), (128, 64, 128), (0, 0, 192), (128, 128, 0), (64, 0, 128))

# Cityscapes' 19 training classes in their official colours.
CITYSCAPES19_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
CITYSCAPES19: Palette = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)


def pascal_voc(n: int = 256) -> Palette:
    """The PASCAL VOC colour map: the bits of the index spread over the high bits of R, G, B."""
    colours = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


# NYU-40 as the authors draw it: prediction k takes VOC colour k+1 (VOC colour 0 is black, void).
NYU40: Palette = pascal_voc(41)[1:]


@functools.lru_cache(maxsize=32)
def as_lut(palette: Palette, size: int = 256, fill: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """A 256x3 uint8 lookup table: ids past the palette (void, 255 = ignore) are drawn in ``fill``.

    Made once per palette (frames reuse it), so it is read-only.
    """
    lut = np.empty((size, 3), np.uint8)
    lut[:] = fill
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    lut.setflags(write=False)
    return lut
