"""Reading rosbag2 files without ROS: open a bag, decode its messages, find each frame's CameraInfo.

The ``rosbags`` library reads sqlite3 (.db3) and MCAP bags. Errors become a BagError with one
line naming the file. A damaged part of a bag (an MCAP chunk whose record lengths are forged, a
corrupt sqlite page) either ends the read with that line or, when the caller collects damage, is
skipped: reading resumes at the first bag time past it, and the skipped range is reported.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from rosbags.rosbag2 import Reader, StoragePlugin
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from hydranet_ros.errors import HydraNetError, first_line
from hydranet_ros.io.message_defs import DefinitionMissing, register_output_types

__all__ = [
    "IMAGE", "COMPRESSED_IMAGE", "CAMERA_INFO", "BagError", "Damage", "open_reader", "typestore", "storage_of",
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


@dataclass(frozen=True)
class Damage:
    """A stretch of bag time that could not be read: its messages are missing from the replay."""

    first_ns: int  # after the last message read before it
    last_ns: int  # before the first message read after it (the bag's end when nothing is)
    cause: str

    def __str__(self) -> str:
        return f"bag time {self.first_ns / 1e9:.3f}-{self.last_ns / 1e9:.3f} s ({self.cause})"


def messages(reader: Reader, connections: list, *, damaged: list[Damage] | None = None) -> Iterator[tuple[Any, int, bytes]]:
    """reader.messages in bag-time order. A storage error becomes a BagError naming the file, or,
    with ``damaged`` a list, a Damage appended there and reading resumed past the damaged part."""
    start: int | None = None
    while True:
        last = None
        try:
            for connection, bag_time, raw in reader.messages(connections=connections, start=start):
                last = bag_time
                yield connection, bag_time, raw
            return
        except BagError:
            raise
        except Exception as exc:  # sqlite3/MCAP/zstd errors of a damaged file have no common base
            if damaged is None:
                raise BagError("corrupt_bag", f"cannot read past a damaged part of {reader.path}: {exc}") from exc
            first = last + 1 if last is not None else (start if start is not None else reader.start_time)
            resume = max(_first_readable(reader, connections, first), first + 1)  # always forward
            damaged.append(Damage(first, resume - 1, f"{type(exc).__name__}: {first_line(exc)}"))
            start = resume


def _readable_from(reader: Reader, connections: list, start: int) -> bool:
    """Whether reading from bag time ``start`` gets its first message (or the end) without an error."""
    try:
        next(iter(reader.messages(connections=connections, start=start)), None)
    except Exception:  # noqa: BLE001 - any storage error means "not here"
        return False
    return True


def _chunk_ends(reader: Reader) -> list[int]:
    """The bag time just after each MCAP chunk, from the reader's chunk index ([] for sqlite3, or
    where this rosbags version keeps it elsewhere: the search below then bisects)."""
    storage = getattr(reader, "storage", None)
    storages = getattr(storage, "storages", None) or [storage]
    return sorted({chunk.message_end_time + 1 for part in storages for chunk in (getattr(part, "chunks", None) or ())})


def _first_readable(reader: Reader, connections: list, after: int) -> int:
    """The earliest bag time from which the bag reads again, past a damaged part starting at ``after``.

    Readers pick what to read by time (an MCAP reader every chunk whose time span reaches the
    start time), so reading fails from any start up to the end of the damaged chunk. The first
    chunk end past ``after`` that reads is the answer; without a chunk index (sqlite3), a
    bisection for the first start time that reads (about 60 tries).
    """
    end = max(after, reader.end_time) + 1  # reading from here finds nothing: readable
    for candidate in _chunk_ends(reader):
        if candidate > after and _readable_from(reader, connections, candidate):
            return candidate
    low, high = after, end
    while low < high:
        middle = (low + high) // 2
        if _readable_from(reader, connections, middle):
            high = middle
        else:
            low = middle + 1
    return low


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
