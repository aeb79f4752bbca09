"""Where a camera frame lands in the network's input, and how outputs go back: pure functions.

A frame is scaled by one factor (its aspect ratio kept, never stretched) to fit inside the
requested size, then padded to a multiple of the network's stride (32: the encoder halves the
resolution five times) with its edge pixels repeated, the frame centred in the padding. Outputs
are cut back to the frame's area and resized to the output size, so they undo exactly that
mapping. Everything that relates pixels of one to pixels of the other (the pipeline's resize and
crop, CameraInfo for the published images, the focal length at the network's input that metric
depth needs, and later point clouds and batched cameras) takes its numbers from here.

Pixel convention: a pixel's centre is at its integer index and an image of width W covers
[-0.5, W - 0.5]; a resize maps edges to edges (cv2.resize, torch interpolate with
align_corners=False), so u_out + 0.5 = (u_in + 0.5) * scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STRIDE = 32

__all__ = ["STRIDE", "InputGeometry", "plan_input", "resize_affine", "round_up"]


def round_up(value: int, multiple: int = STRIDE) -> int:
    return int(math.ceil(value / multiple) * multiple)


def resize_affine(source_size: tuple[int, int], target_size: tuple[int, int]) -> np.ndarray:
    """3x3 map of pixel coordinates of a whole image resized from source to target (w, h)."""
    sx = target_size[0] / source_size[0]
    sy = target_size[1] / source_size[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _translate(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class InputGeometry:
    """One frame size's mapping into the network. Sizes are (width, height) in pixels.

    frame_size:   the camera frame.
    scaled_size:  the frame after scaling (the same factor on both axes up to rounding to whole
                  pixels: under half a pixel over the frame's width or height).
    network_size: what the network sees: scaled_size padded to multiples of STRIDE.
    offset:       (x, y) of the scaled frame's top-left pixel inside the network input.
    """

    frame_size: tuple[int, int]
    scaled_size: tuple[int, int]
    network_size: tuple[int, int]
    offset: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): network pixels per frame pixel along each axis."""
        return self.scaled_size[0] / self.frame_size[0], self.scaled_size[1] / self.frame_size[1]

    @property
    def mean_scale(self) -> float:
        """One scale for lengths (a focal length): the geometric mean of sx and sy."""
        sx, sy = self.scale
        return math.sqrt(sx * sy)

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) pixels of padding around the scaled frame."""
        left, top = self.offset
        return (left, self.network_size[0] - self.scaled_size[0] - left,
                top, self.network_size[1] - self.scaled_size[1] - top)

    def frame_to_network(self) -> np.ndarray:
        """3x3 affine map: frame pixel coordinates -> network input pixel coordinates."""
        return _translate(*self.offset) @ resize_affine(self.frame_size, self.scaled_size)

    def network_to_output(self, output_size: tuple[int, int]) -> np.ndarray:
        """3x3 affine map: network input pixel coordinates -> output pixel coordinates (the
        frame's area of the network input, resized to output_size)."""
        return resize_affine(self.scaled_size, output_size) @ _translate(-self.offset[0], -self.offset[1])

    def frame_to_output(self, output_size: tuple[int, int]) -> np.ndarray:
        """3x3 affine map: frame pixel coordinates -> output pixel coordinates."""
        return self.network_to_output(output_size) @ self.frame_to_network()

    def camera_matrix(self, k: np.ndarray, target: str | tuple[int, int] = "network") -> np.ndarray:
        """The frame camera's 3x3 K (or 3x4 P) for the network input ('network') or for an
        output of size (w, h): the affine pixel map applied on the left."""
        mapping = self.frame_to_network() if target == "network" else self.frame_to_output(target)
        return mapping @ np.asarray(k, np.float64)


def plan_input(frame_size: tuple[int, int], request: tuple[int, int] | None, *,
               stride: int = STRIDE, fill_request: bool = False) -> InputGeometry:
    """The geometry for a frame of ``frame_size`` and a requested network size.

    request: (width, height): the frame is scaled by the largest factor that fits it inside;
        None: the frame's own size (scale 1).
    fill_request: pad to the whole request (rounded up to the stride) instead of just to the
        next stride multiple: for engines built for one fixed input size (TensorRT).
    """
    width, height = int(frame_size[0]), int(frame_size[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size {width}x{height} is empty")
    if request is None:
        scaled = (width, height)
    else:
        box_w, box_h = int(request[0]), int(request[1])
        if box_w <= 0 or box_h <= 0:
            raise ValueError(f"requested size {box_w}x{box_h} is empty")
        scale = min(box_w / width, box_h / height)
        # Rounded down where the request is the tighter side, so the frame never exceeds it.
        scaled = (max(1, min(box_w, round(width * scale))), max(1, min(box_h, round(height * scale))))
    if fill_request and request is not None:
        network = (round_up(max(request[0], scaled[0]), stride), round_up(max(request[1], scaled[1]), stride))
    else:
        network = (round_up(scaled[0], stride), round_up(scaled[1], stride))
    offset = ((network[0] - scaled[0]) // 2, (network[1] - scaled[1]) // 2)
    return InputGeometry(frame_size=(width, height), scaled_size=scaled, network_size=network, offset=offset)
