"""Reading rosbag2 files without ROS: open a bag, decode its messages, find each frame's CameraInfo.

The ``rosbags`` library reads sqlite3 (.db3) and MCAP bags. Errors become a BagError with one
line naming the file; a damaged part of a bag ends the read with that line, not a traceback.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any, Iterator

from rosbags.rosbag2 import Reader, StoragePlugin
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from hydranet_ros.errors import HydraNetError
from hydranet_ros.io.message_defs import DefinitionMissing, register_output_types

__all__ = [
    "IMAGE", "COMPRESSED_IMAGE", "CAMERA_INFO", "BagError", "open_reader", "typestore", "storage_of",
    "messages", "stamp", "CameraInfos",
]

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


class BagError(HydraNetError):
    """The bag cannot be replayed; the message is one line for the user, ``reason`` a short key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def storage_of(path: Path) -> StoragePlugin:
    """The storage format of a bag folder or file, from its files' suffixes."""
    files = [path] if path.is_file() else list(path.iterdir())
    suffixes = {f.suffix for f in files}
    if ".mcap" in suffixes:
        return StoragePlugin.MCAP
    if ".db3" in suffixes:
        return StoragePlugin.SQLITE3
    raise BagError("unreadable_bag", f"{path} holds neither .db3 nor .mcap files")


def typestore(distro: str | None) -> Typestore:
    """Message types for a bag recorded on ``distro``, plus the non-core types the node publishes."""
    # Image, CameraInfo and Header are the same in Humble and Jazzy; the distro only decides the
    # definitions used for input topics whose bag carries none (Humble sqlite3 bags).
    store = get_typestore(Stores.ROS2_JAZZY if (distro or "").lower() == "jazzy" else Stores.ROS2_HUMBLE)
    try:
        register_output_types(store)
    except DefinitionMissing as exc:
        raise BagError("missing_definition", f"cannot write hydranet/result: {exc}") from None
    return store


def open_reader(source: Path) -> Reader:
    """An open Reader of ``source``, or a BagError naming the file and the cause."""
    try:
        reader = Reader(source)
        reader.open()
    except Exception as exc:  # rosbags raises ReaderError, sqlite3 and MCAP errors alike
        hint = ""
        if "magic" in str(exc).lower():
            hint = " (an MCAP file cut short, e.g. by a killed recorder, can be repaired with `mcap recover`)"
        raise BagError("unreadable_bag", f"cannot read {source}: {exc}{hint}") from exc
    return reader


def messages(reader: Reader, connections: list) -> Iterator[tuple[Any, int, bytes]]:
    """reader.messages, with storage errors turned into a BagError naming the file."""
    try:
        yield from reader.messages(connections=connections)
    except BagError:
        raise
    except Exception as exc:  # sqlite3/MCAP/zstd errors of a damaged file have no common base
        raise BagError("corrupt_bag", f"cannot read past a damaged part of {reader.path}: {exc}") from exc


def stamp(header: Any) -> tuple[int, int]:
    """(sec, nanosec) of a message header."""
    return int(header.stamp.sec), int(header.stamp.nanosec)


class CameraInfos:
    """CameraInfo for each frame: the one with the frame's stamp, else the latest before it.

    Drivers publish CameraInfo just after the image with the same stamp, so the matching
    message may come later in the bag than the frame: all of them are read first.
    """

    def __init__(self, entries: list[tuple[int, tuple[int, int], Any]]) -> None:
        self._by_stamp = {stamp: info for _, stamp, info in entries}
        by_time = sorted(((t, info) for t, _, info in entries), key=lambda e: e[0])
        self._times = [t for t, _ in by_time]
        self._infos = [info for _, info in by_time]

    def for_frame(self, bag_time: int, stamp: tuple[int, int]) -> Any | None:
        if stamp in self._by_stamp:
            return self._by_stamp[stamp]
        latest = bisect.bisect_right(self._times, bag_time)  # a search, not a scan: bags are long
        if latest:
            return self._infos[latest - 1]
        return self._infos[0] if self._infos else None  # calibration rarely changes: use the first
