"""Image sizes as users write them ('640x480', 'input', 'auto'), parsed and checked without torch,
so a command refuses an impossible size before it loads anything."""

from __future__ import annotations

from hydranet_ros.errors import UsageError
from hydranet_ros.runtime.choices import MAX_INPUT_SIDE, MIN_INPUT_SIDE

__all__ = ["AUTO_SIZE", "parse_size", "network_size", "frame_size"]

AUTO_SIZE = "auto"


def parse_size(text: str) -> tuple[int, int] | None | str:
    """'640x480' -> (640, 480); 'input' or 'frame' -> None (the frame's own size); 'auto'."""
    if text.lower() in ("input", "frame", "native"):
        return None
    if text.lower() == AUTO_SIZE:
        return AUTO_SIZE
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 640x480), 'input' or 'auto'") from None
    return w, h


def network_size(text: str) -> tuple[int, int] | None | str:
    """parse_size, refusing a network input the encoder cannot take (each side 32..8192)."""
    size = parse_size(text)
    if isinstance(size, tuple) and not all(MIN_INPUT_SIDE <= side <= MAX_INPUT_SIDE for side in size):
        raise UsageError(f"network input size {text} is impossible: each side must be {MIN_INPUT_SIDE}..{MAX_INPUT_SIDE} "
                         f"(or 'auto': the weights' training size, what the node's 0x0 means)")
    return size


def frame_size(text: str) -> tuple[int, int]:
    """A camera frame size WIDTHxHEIGHT: each side at least 1 (a frame has pixels) and at most 8192."""
    size = parse_size(text)
    if not isinstance(size, tuple):
        raise UsageError(f"frame size must be WIDTHxHEIGHT, not {text!r}")
    if not all(1 <= side <= MAX_INPUT_SIDE for side in size):
        raise UsageError(f"frame size {text} is impossible: each side must be 1..{MAX_INPUT_SIDE}")
    return size
