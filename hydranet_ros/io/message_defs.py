"""Message definitions for writing bags without ROS: our own and the few non-core ones we publish.

The package's own messages live in the repository's top-level msg/ (rosidl builds them on a ROS
machine). Offline tools find the same text in a source checkout, in a pip install (setup.py
copies msg/*.msg into hydranet_ros/msg_defs/), or in an ament install's share/hydranet_ros/msg.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = "hydranet_ros"

# vision_msgs (4.x, Humble and Jazzy); not among rosbags' built-in types.
VISION_CLASS = "uint16 class_id\nstring class_name\n"
LABEL_INFO = "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\nfloat32 threshold\n"


class DefinitionMissing(FileNotFoundError):
    """The package's .msg file is in none of the places an install puts it."""


def _candidates(filename: str) -> list[Path]:
    here = Path(__file__).resolve()
    places = [here.parents[1] / "msg_defs" / filename, here.parents[2] / "msg" / filename]
    try:
        from ament_index_python.packages import get_package_share_directory

        places.append(Path(get_package_share_directory(PACKAGE)) / "msg" / filename)
    except Exception:  # no ROS, or the package is not in the ament index: the other places serve
        pass
    return places


def own_definition(name: str) -> str:
    """The text of msg/<name>.msg."""
    places = _candidates(f"{name}.msg")
    for place in places:
        if place.is_file():
            return place.read_text()
    raise DefinitionMissing(f"msg/{name}.msg not found (looked in {', '.join(str(p) for p in places)})")


def register_output_types(store) -> None:
    """Teach a rosbags typestore the non-core types the node publishes."""
    from rosbags.typesys import get_types_from_msg

    types = {}
    if "vision_msgs/msg/LabelInfo" not in store.types:
        types.update(get_types_from_msg(VISION_CLASS, "vision_msgs/msg/VisionClass"))
        types.update(get_types_from_msg(LABEL_INFO, "vision_msgs/msg/LabelInfo"))
    name = f"{PACKAGE}/msg/HydraNetResult"
    if name not in store.types:
        types.update(get_types_from_msg(own_definition("HydraNetResult"), name))
    store.register(types)
