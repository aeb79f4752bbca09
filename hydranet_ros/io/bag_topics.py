"""Which topics of a bag are the cameras: the image topic to read, its CameraInfo and namespace.

Chosen as the node would subscribe: ``--topic`` names it (with ``compressed``, '<topic>/compressed'
like image_transport); otherwise the bag must hold exactly one topic of the wanted type. Several
cameras (``choose_cameras``): each ``--topic`` named, or every image topic of the wanted type;
each camera's outputs go under its own namespace, so two cameras may not share one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydranet_ros.io.bag_reader import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, BagError, open_reader

__all__ = ["CameraTopics", "camera_namespace", "choose_camera", "choose_cameras", "find_camera", "find_cameras"]


@dataclass(frozen=True)
class CameraTopics:
    """The image topic the replay reads, the CameraInfo beside it, and where outputs go."""

    image: str
    image_type: str
    camera_info: str | None
    namespace: str  # '' for a topic at the root, else '/cam' (no trailing slash)

    @property
    def compressed(self) -> bool:
        return self.image_type == COMPRESSED_IMAGE


def camera_namespace(image_topic: str) -> str:
    """'/cam/image_raw' -> '/cam', '/cam/image/compressed' -> '/cam', '/image' -> ''."""
    base = image_topic[: -len("/compressed")] if image_topic.endswith("/compressed") else image_topic
    return base.rsplit("/", 1)[0]


def _list_topics(topics: dict[str, str]) -> str:
    return ", ".join(f"{name} ({msgtype})" for name, msgtype in sorted(topics.items())) or "none"


def choose_camera(topics: dict[str, str], *, topic: str | None = None, compressed: bool = False) -> CameraTopics:
    """Pick the image topic from ``topics`` (name -> message type), as the node would subscribe."""
    wanted = COMPRESSED_IMAGE if compressed else IMAGE
    if topic is not None:
        if not topic.startswith("/"):
            topic = "/" + topic
        # Like image_transport: --topic /cam/image --compressed reads /cam/image/compressed.
        if compressed and not topic.endswith("/compressed") and topics.get(topic + "/compressed") == COMPRESSED_IMAGE:
            topic += "/compressed"
        if topic not in topics:
            raise BagError("topic_not_found", f"the bag has no topic {topic}; its topics: {_list_topics(topics)}")
        if topics[topic] != wanted:
            hint = " (drop --compressed)" if topics[topic] == IMAGE else " (add --compressed)" if topics[topic] == COMPRESSED_IMAGE else ""
            raise BagError("wrong_topic_type", f"{topic} carries {topics[topic]}, not {wanted}{hint}")
        image = topic
    else:
        candidates = sorted(name for name, msgtype in topics.items() if msgtype == wanted)
        if not candidates:
            other = COMPRESSED_IMAGE if wanted == IMAGE else IMAGE
            hint = (" (there are " + ("compressed" if not compressed else "raw") + " image topics: "
                    + ("add" if not compressed else "drop") + " --compressed)") if other in topics.values() else ""
            raise BagError("no_image_topic", f"no {wanted} topic in the bag{hint}; topics found: {_list_topics(topics)}")
        if len(candidates) > 1:
            raise BagError("several_image_topics",
                           f"several {wanted} topics: choose with --topic (repeat it for several cameras) or "
                           f"--all-cameras; found {', '.join(candidates)}")
        image = candidates[0]
    namespace = camera_namespace(image)
    info_topic = f"{namespace}/camera_info"
    return CameraTopics(image=image, image_type=wanted, camera_info=info_topic if topics.get(info_topic) == CAMERA_INFO else None,
                        namespace=namespace)


def choose_cameras(topics: dict[str, str], *, chosen: list[str] | None = None, compressed: bool = False,
                   all_cameras: bool = False) -> list[CameraTopics]:
    """The cameras to replay: each topic in ``chosen`` (as ``choose_camera`` takes ``topic``), every
    image topic of the wanted type with ``all_cameras``, else the bag's only one. Refuses two
    cameras in one namespace: their outputs would land on the same topics."""
    if all_cameras:
        if chosen:
            raise BagError("bad_arguments", "--all-cameras takes every image topic: leave --topic out")
        wanted = COMPRESSED_IMAGE if compressed else IMAGE
        chosen = sorted(name for name, msgtype in topics.items() if msgtype == wanted)
        if not chosen:
            return [choose_camera(topics, compressed=compressed)]  # its error names what the bag has
    cameras = [choose_camera(topics, topic=topic, compressed=compressed) for topic in chosen] if chosen else \
        [choose_camera(topics, compressed=compressed)]
    by_namespace: dict[str, list[str]] = {}
    for camera in cameras:
        by_namespace.setdefault(camera.namespace, []).append(camera.image)
    if clash := {ns: images for ns, images in by_namespace.items() if len(images) > 1}:
        namespace, images = next(iter(clash.items()))
        if len(set(images)) < len(images):
            raise BagError("bad_arguments", f"{images[0]} is named twice")
        raise BagError("cameras_share_a_namespace",
                       f"{' and '.join(images)} are in one namespace ({namespace or '/'}): their outputs would be "
                       "written to the same topics; replay them one at a time")
    return cameras


def find_camera(source: Path | str, *, topic: str | None = None, compressed: bool = False) -> CameraTopics:
    """The camera topics a replay of ``source`` would use, read from the bag's metadata only (cheap)."""
    return find_cameras(source, chosen=[topic] if topic else None, compressed=compressed)[0]


def find_cameras(source: Path | str, *, chosen: list[str] | None = None, compressed: bool = False,
                 all_cameras: bool = False) -> list[CameraTopics]:
    """``choose_cameras`` for ``source``, read from the bag's metadata only (cheap)."""
    source = Path(source)
    if not source.exists():
        raise BagError("input_missing", f"input bag {source} does not exist")
    reader = open_reader(source)
    try:
        return choose_cameras({c.topic: c.msgtype for c in reader.connections}, chosen=chosen, compressed=compressed,
                              all_cameras=all_cameras)
    finally:
        reader.close()
