"""Several cameras on one node: their names and the topics each one reads and publishes, no ROS.

A camera is a namespace relative to the node's: camera ``front`` reads ``front/image`` (or
``front/image/compressed``) and ``front/camera_info``, and publishes every output of the
single-camera node under ``front/`` (``front/semantic/labels``, ``front/depth/image``, ...,
``front/semantic/label_info``), so a consumer written for one camera serves each of them
unchanged. The launch file remaps the inputs onto the drivers' topics; the outputs stay under
the camera's name.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from hydranet_ros.outputs.plan import LABEL_INFO_TOPIC, OUTPUTS

__all__ = ["MAX_CAMERAS", "cameras_reason", "camera_topic", "input_topics", "output_topics"]

MAX_CAMERAS = 16  # more than a car carries (eight); each is a slot, publishers and a /diagnostics status
# A relative ROS name: tokens of letters, digits and single underscores, not starting with a digit.
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _name_reason(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return f"camera names must be non-empty strings, got {name!r}"
    if name.startswith("/"):
        return (f"camera {name!r} must be relative to the node's namespace (write {name.lstrip('/')!r}); "
                "the launch file remaps its inputs to the driver's topics")
    for token in name.split("/"):
        if not _TOKEN.match(token) or "__" in token:
            return (f"camera {name!r} is not a ROS name: each part of it letters, digits and single "
                    "underscores, not starting with a digit, parts separated by one '/'")
    return None


def cameras_reason(cameras: Any) -> str | None:
    """Why ``cameras`` is not a usable camera list, or None. Empty = the single-camera node."""
    if not isinstance(cameras, (list, tuple)):
        return f"cameras must be a list of camera names, got {type(cameras).__name__} {cameras!r}"
    if len(cameras) > MAX_CAMERAS:
        return f"cameras: at most {MAX_CAMERAS}, got {len(cameras)}"
    for name in cameras:
        if reason := _name_reason(name):
            return reason
    repeated = sorted({name for name in cameras if list(cameras).count(name) > 1})
    if repeated:
        return f"cameras must be distinct; repeated: {', '.join(repeated)}"
    return None


def camera_topic(camera: str, relative: str) -> str:
    """``relative`` (a topic of the single-camera node) for ``camera``; unchanged for '' (one camera)."""
    return f"{camera}/{relative}" if camera else relative


def input_topics(camera: str) -> dict[str, str]:
    """What the node subscribes to for ``camera``: image, image/compressed and camera_info."""
    return {name: camera_topic(camera, name) for name in ("image", "image/compressed", "camera_info")}


def output_topics(camera: str) -> dict[str, str]:
    """Output name (keys of plan.OUTPUTS, and 'label_info') -> topic for ``camera``."""
    topics = {name: camera_topic(camera, spec.topic) for name, spec in OUTPUTS.items()}
    topics["label_info"] = camera_topic(camera, LABEL_INFO_TOPIC)
    return topics


def camera_names(values: Sequence[str]) -> tuple[str, ...]:
    """The checked camera names as a tuple ('' alone for the single-camera node)."""
    return tuple(values) or ("",)
