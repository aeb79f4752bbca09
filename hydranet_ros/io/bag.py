"""Offline replay of a rosbag2: the input bag plus what the perception node would publish.

Without ROS: the ``rosbags`` library reads and writes sqlite3 (.db3) and MCAP bags. Every input
message is copied unchanged; each frame of the chosen image topic goes through the pipeline and
its outputs are written under the camera's namespace with the input image's header and the
input message's bag timestamp, as the node does under ``ros2 bag play --clock``.
"""

from __future__ import annotations

import bisect
import collections
import errno
import functools
import logging
import os
import shutil
import sqlite3
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore
from tqdm import tqdm

from hydranet_ros.io import visuals
from hydranet_ros.io.camera_info import CameraInfoRejected, frame_focal_px, scale_camera_info
from hydranet_ros.io.message_defs import DefinitionMissing, register_output_types
from hydranet_ros.io.ros_image import ImageRejected, image_fields, message_to_frame
from hydranet_ros.ros import outputs, params, qos

log = logging.getLogger(__name__)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"

RESULT = "hydranet_ros/msg/HydraNetResult"
LABEL_INFO = "vision_msgs/msg/LabelInfo"

# What the node publishes (its own table: ros/outputs.py), relative to the camera namespace, with
# the message type of each; the node's defaults: every output on, depth as 32FC1. /diagnostics is
# left out: it reports on the live process (rates, drops), not on the recorded frames.
OUTPUT_TOPICS: dict[str, tuple[str, str]] = {
    **{key: (spec.topic, spec.message.replace("/", "/msg/")) for key, spec in outputs.OUTPUTS.items()},
    "label_info": (outputs.LABEL_INFO_TOPIC, LABEL_INFO),
}


class BagError(Exception):
    """The bag cannot be replayed; the message is one line for the user, ``reason`` a short key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class FramePipeline(Protocol):
    """The part of hydranet_ros.runtime.pipeline.Pipeline the replay uses."""

    preset: Any

    def submit(self, frame: np.ndarray, *, color_order: str = "rgb", outputs: frozenset[str] = ...,
               focal_px: float | None = None) -> Any:
        """Queue the frame; the returned object's ``result()`` gives the pipeline's Result.
        ``focal_px``: the camera's focal length in frame pixels (from its CameraInfo), or None."""


# The bag holds no normals topic, so the pipeline need not post-process them.
_PUBLISHED_RESULTS = frozenset({"labels", "depth"})
# Frames queued on the pipeline before the oldest one's messages are written (see _Replay.run),
# and the most writes (frames and copied messages behind them) held back at once.
FRAMES_IN_FLIGHT = 2
MAX_QUEUED_WRITES = 64


# The node's default output QoS (parameters output_qos / output_depth) and LabelInfo's own.
_OUTPUT_QOS = qos.qos_settings(params.defaults()["output_qos"], params.defaults()["output_depth"])
_NODE_QOS = {"label_info": qos.LABEL_INFO_QOS}


def _recorded_qos(settings: qos.QosSettings) -> Qos:
    unspecified = QosTime(0, 0)  # rmw's "unspecified": the middleware's default (infinite)
    return Qos(
        history=QosHistory[settings.history.upper()], depth=settings.depth,
        reliability=QosReliability[settings.reliability.upper()], durability=QosDurability[settings.durability.upper()],
        deadline=unspecified, lifespan=unspecified, liveliness=QosLiveliness.SYSTEM_DEFAULT,
        liveliness_lease_duration=unspecified, avoid_ros_namespace_conventions=False)


def _submit(pipeline: Any, frame: np.ndarray, **kwargs: Any) -> Any:
    """pipeline.submit; a pipeline-like object with only ``process`` runs the frame at once."""
    submit = getattr(pipeline, "submit", None)
    if submit is not None:
        return submit(frame, **kwargs)
    return _Done(pipeline.process(frame, **kwargs))


class _Done:
    def __init__(self, result: Any) -> None:
        self._result = result

    def result(self) -> Any:
        return self._result


class _FrameWrite:
    """A queued write of one frame's output messages (told apart from plain copies in the queue)."""

    def __init__(self, write: Callable[[], None]) -> None:
        self._write = write

    def __call__(self) -> None:
        self._write()


@dataclass(frozen=True)
class CameraTopics:
    """The image topic the replay reads, the CameraInfo beside it, and where outputs go."""

    image: str
    image_type: str
    camera_info: str | None
    namespace: str  # '' for a topic at the root, else '/cam' (no trailing slash)

    def output_topics(self) -> dict[str, tuple[str, str]]:
        """key -> (topic, message type) of every topic the node would publish for this camera."""
        return {key: (f"{self.namespace}/{relative}", msgtype) for key, (relative, msgtype) in OUTPUT_TOPICS.items()
                if self.camera_info or key not in outputs.CAMERA_INFO_OUTPUTS}


def camera_namespace(image_topic: str) -> str:
    """'/cam/image_raw' -> '/cam', '/cam/image/compressed' -> '/cam', '/image' -> ''."""
    base = image_topic[: -len("/compressed")] if image_topic.endswith("/compressed") else image_topic
    return base.rsplit("/", 1)[0]


def _list_topics(topics: dict[str, str]) -> str:
    return ", ".join(f"{name} ({msgtype})" for name, msgtype in sorted(topics.items())) or "none"


def choose_camera(topics: dict[str, str], *, topic: str | None = None, compressed: bool = False) -> CameraTopics:
    """Pick the image topic from ``topics`` (name -> message type), as the node would subscribe.

    ``topic`` names it (with ``compressed``, '<topic>/compressed' like image_transport);
    otherwise the bag must hold exactly one topic of the wanted type.
    """
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
                           f"the bag has several {wanted} topics ({', '.join(candidates)}); choose one with --topic")
        image = candidates[0]
    namespace = camera_namespace(image)
    info_topic = f"{namespace}/camera_info"
    return CameraTopics(image=image, image_type=wanted, camera_info=info_topic if topics.get(info_topic) == CAMERA_INFO else None,
                        namespace=namespace)


@dataclass
class ReplayReport:
    """What one replay did, for the summary line and for tests."""

    camera: CameraTopics | None = None
    storage: str = ""
    frames: int = 0  # image messages read
    processed: int = 0  # frames that produced outputs
    copied: int = 0  # input messages copied
    rejected: Counter = field(default_factory=Counter)  # reason -> frames dropped
    camera_info_problems: Counter = field(default_factory=Counter)  # reason -> frames without CameraInfo output
    skipped_topics: list[str] = field(default_factory=list)  # input topics that could not be copied

    def summary(self) -> str:
        parts = [f"{self.processed}/{self.frames} frame(s) of {self.camera.image if self.camera else '?'} processed",
                 f"{self.copied} input message(s) copied", f"storage {self.storage}"]
        if self.rejected:
            parts.append("dropped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(self.rejected.items())))
        if self.camera_info_problems:
            parts.append("no CameraInfo output: " + ", ".join(f"{n} {r}" for r, n in sorted(self.camera_info_problems.items())))
        if self.skipped_topics:
            parts.append("not copied (no type definition): " + ", ".join(self.skipped_topics))
        return "; ".join(parts)


def storage_of(path: Path) -> StoragePlugin:
    """The storage format of a bag folder or file, from its files' suffixes."""
    files = [path] if path.is_file() else list(path.iterdir())
    suffixes = {f.suffix for f in files}
    if ".mcap" in suffixes:
        return StoragePlugin.MCAP
    if ".db3" in suffixes:
        return StoragePlugin.SQLITE3
    raise BagError("unreadable_bag", f"{path} holds neither .db3 nor .mcap files")


def _typestore(distro: str | None) -> Typestore:
    # Image, CameraInfo and Header are the same in Humble and Jazzy; the distro only decides the
    # definitions used for input topics whose bag carries none (Humble sqlite3 bags).
    store = get_typestore(Stores.ROS2_JAZZY if (distro or "").lower() == "jazzy" else Stores.ROS2_HUMBLE)
    try:
        register_output_types(store)
    except DefinitionMissing as exc:
        raise BagError("missing_definition", f"cannot write hydranet/result: {exc}") from None
    return store


def check_paths(source: Path, target: Path, overwrite: bool) -> None:
    """Refuse an output that exists (unless overwrite, and then only a bag) or overlaps the input."""
    if not source.exists():
        raise BagError("input_missing", f"input bag {source} does not exist")
    src, dst = source.resolve(), target.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise BagError("output_is_input", f"output {target} would overlap the input bag {source}")
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise BagError("output_exists", f"output {target} exists; pass --overwrite to replace it")
        # --overwrite replaces a bag, never an arbitrary folder the user pointed at by mistake.
        if not target.is_dir() or (any(target.iterdir()) and not (target / "metadata.yaml").exists()):
            raise BagError("output_not_a_bag", f"refusing to overwrite {target}: it is not a rosbag2 folder")
    if not target.parent.exists():
        raise BagError("output_parent_missing", f"folder {target.parent} does not exist")


class _CameraInfos:
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


def _stamp(header: Any) -> tuple[int, int]:
    return int(header.stamp.sec), int(header.stamp.nanosec)


def _messages(reader: Reader, connections: list) -> Iterator[tuple[Any, int, bytes]]:
    """reader.messages, with storage errors turned into a BagError naming the file."""
    try:
        yield from reader.messages(connections=connections)
    except BagError:
        raise
    except Exception as exc:  # sqlite3/MCAP/zstd errors of a damaged file have no common base
        raise BagError("corrupt_bag", f"cannot read past a damaged part of {reader.path}: {exc}") from exc


class _Replay:
    """One pass over the input bag, writing the output bag."""

    def __init__(self, reader: Reader, writer: Writer, store: Typestore, pipeline: FramePipeline,
                 camera: CameraTopics, report: ReplayReport, *, alpha: float, max_pixels: int | None, progress: bool) -> None:
        self.reader, self.writer, self.store, self.pipeline = reader, writer, store, pipeline
        self.camera, self.report = camera, report
        self.alpha, self.max_pixels, self.progress = alpha, max_pixels, progress
        self.outputs: dict[str, Any] = {}
        self.copies: dict[int, Any] = {}
        self.labelled_frames: set[str] = set()  # frame_ids whose LabelInfo was written
        self.peak_queued_writes = 0  # most messages held back at once (bounded, see run)

    def add_connections(self) -> None:
        for connection in self.reader.connections:
            copy = self._copy_connection(connection)
            if copy is not None:
                self.copies[connection.id] = copy
        for key, (topic, msgtype) in self.camera.output_topics().items():
            # The QoS the node offers, recorded as rosbag2 records it: `ros2 bag play` offers the
            # same again, so LabelInfo stays latched for subscribers that join late.
            self.outputs[key] = self.writer.add_connection(
                topic, msgtype, typestore=self.store, offered_qos_profiles=[_recorded_qos(_NODE_QOS.get(key, _OUTPUT_QOS))])

    def _copy_connection(self, connection: Any) -> Any | None:
        ext = connection.ext
        offered = list(getattr(ext, "offered_qos_profiles", []) or [])
        fmt = getattr(ext, "serialization_format", "cdr")
        if connection.msgdef.data and connection.digest:
            return self.writer.add_connection(connection.topic, connection.msgtype, msgdef=connection.msgdef.data,
                                              rihs01=connection.digest, serialization_format=fmt, offered_qos_profiles=offered)
        if connection.msgtype in self.store.types:
            return self.writer.add_connection(connection.topic, connection.msgtype, typestore=self.store,
                                              serialization_format=fmt, offered_qos_profiles=offered)
        log.warning("not copying %s: the bag has no definition of %s and it is not a standard ROS 2 type",
                    connection.topic, connection.msgtype)
        self.report.skipped_topics.append(connection.topic)
        return None

    def read_camera_infos(self) -> _CameraInfos:
        entries = []
        if self.camera.camera_info:
            connections = [c for c in self.reader.connections if c.topic == self.camera.camera_info]
            for _, bag_time, raw in _messages(self.reader, connections):
                try:
                    info = self.store.deserialize_cdr(raw, CAMERA_INFO)
                except Exception:  # a damaged message must not end the replay
                    self.report.camera_info_problems["corrupt_message"] += 1
                    continue
                entries.append((bag_time, _stamp(info.header), info))
        return _CameraInfos(entries)

    def run(self) -> None:
        infos = self.read_camera_infos()
        image_connections = [c for c in self.reader.connections if c.topic == self.camera.image]
        total = sum(c.msgcount for c in image_connections)
        bar = tqdm(total=total, unit="frame", desc="bag", disable=None if self.progress else True)
        # Writes wait in order behind the frame before them, so that the next frame is on the GPU
        # while this one's messages are made and written, and the output bag holds every message
        # in the input's order all the same.
        writes: collections.deque[Callable[[], None]] = collections.deque()
        frames_waiting = 0
        try:
            for connection, bag_time, raw in _messages(self.reader, []):
                copy = self.copies.get(connection.id)
                if copy is not None:
                    writes.append(functools.partial(self._copy, copy, bag_time, raw))
                if connection.topic == self.camera.image:
                    self.report.frames += 1
                    bar.update(1)
                    finish = self._submit(bag_time, raw, infos)
                    if finish is not None:
                        writes.append(finish)
                        frames_waiting += 1
                frames_waiting -= self._write_ready(writes, frames_waiting)
                self.peak_queued_writes = max(self.peak_queued_writes, len(writes))
            self._write_ready(writes, frames_waiting, everything=True)
        finally:
            bar.close()

    @staticmethod
    def _write_ready(writes: collections.deque, frames_waiting: int, *, everything: bool = False) -> int:
        """Run the queued writes that need not wait: copies with no frame before them, a frame
        once the next is queued behind it, anything while the queue is over its bound (a camera
        that stopped while the lidar records on must not pile the bag up in memory). Returns
        the number of frames written."""
        written = 0
        while writes and (everything or not isinstance(writes[0], _FrameWrite)
                          or frames_waiting - written >= FRAMES_IN_FLIGHT or len(writes) > MAX_QUEUED_WRITES):
            write = writes.popleft()
            write()
            written += isinstance(write, _FrameWrite)
        return written

    def _copy(self, connection: Any, bag_time: int, raw: bytes) -> None:
        self.writer.write(connection, bag_time, raw)
        self.report.copied += 1

    def _submit(self, bag_time: int, raw: bytes, infos: _CameraInfos) -> "_FrameWrite | None":
        """Decode and queue one image message; None when it is dropped (counted by reason)."""
        try:
            msg = self.store.deserialize_cdr(raw, self.camera.image_type)
        except Exception:  # a damaged message must not end the replay
            self.report.rejected["corrupt_message"] += 1
            return None
        try:
            frame, order = message_to_frame(msg, compressed=self.camera.image_type == COMPRESSED_IMAGE,
                                            max_pixels=self.max_pixels)
        except ImageRejected as rejected:
            self.report.rejected[rejected.reason] += 1
            log.debug("frame at %d ns dropped: %s", bag_time, rejected)
            return None
        info = infos.for_frame(bag_time, _stamp(msg.header))
        # Metric depth for the recorded camera: its focal length from the frame's CameraInfo.
        focal = frame_focal_px(info, frame.shape[1], frame.shape[0])
        pending = _submit(self.pipeline, frame, color_order=order, outputs=_PUBLISHED_RESULTS, focal_px=focal)
        return _FrameWrite(lambda: self._write_frame(bag_time, msg, frame, order, pending.result(), info))

    def _write_frame(self, bag_time: int, msg: Any, frame: np.ndarray, order: str, result: Any, info: Any | None) -> None:
        for key, message in self._frame_outputs(msg.header, frame, order, result, info):
            connection = self.outputs[key]
            self.writer.write(connection, bag_time, self.store.serialize_cdr(message, connection.msgtype))
        self.report.processed += 1

    def _frame_outputs(self, header: Any, frame: np.ndarray, order: str, result: Any, info: Any | None) -> Iterator[tuple[str, Any]]:
        """(output key, message) for one frame, every message with the input image's header."""
        Image = self.store.types[IMAGE]
        preset = self.pipeline.preset
        labels = result.labels
        height, width = labels.shape
        # Once per frame_id for the whole bag (latched on replay); the live node repeats it
        # whenever the frame_id changes.
        if header.frame_id not in self.labelled_frames:
            self.labelled_frames.add(header.frame_id)
            yield "label_info", self._label_info(header, preset.class_names)
        labels_msg = Image(header=header, **image_fields(labels, "mono8"))
        depth_msg = Image(header=header, **image_fields(outputs.depth_image(result.depth_m, "32FC1"), "32FC1"))
        yield "labels", labels_msg
        colour = visuals.colorize_labels(labels, preset.palette)
        yield "color", Image(header=header, **image_fields(colour, "rgb8"))
        base = outputs.overlay_base(frame, order, (width, height))
        yield "overlay", Image(header=header, **image_fields(visuals.blend(base, colour, alpha=self.alpha), "rgb8"))
        yield "depth", depth_msg
        scaled = self._scaled_camera_info(header, info, width, height)
        if scaled is not None:
            yield "depth_camera_info", scaled
            yield "semantic_camera_info", scaled
        yield "fused", self._result(header, labels_msg, depth_msg, scaled, preset.class_names, result.timings_ms)

    def _scaled_camera_info(self, header: Any, info: Any | None, width: int, height: int) -> Any | None:
        if self.camera.camera_info is None:
            return None
        if info is None:
            self.report.camera_info_problems["no_camera_info_yet"] += 1
            return None
        try:
            fields = scale_camera_info(info, width, height)
        except CameraInfoRejected as rejected:
            self.report.camera_info_problems[rejected.reason] += 1
            return None
        roi = self.store.types["sensor_msgs/msg/RegionOfInterest"](**fields.pop("roi"))
        return self.store.types[CAMERA_INFO](header=header, roi=roi, **fields)

    def _label_info(self, header: Any, class_names: tuple[str, ...]) -> Any:
        VisionClass = self.store.types["vision_msgs/msg/VisionClass"]
        content = outputs.label_info_content(class_names)
        return self.store.types[LABEL_INFO](
            header=header, class_map=[VisionClass(class_id=i, class_name=n) for i, n in content["class_map"]],
            threshold=content["threshold"])

    def _result(self, header: Any, labels: Any, depth: Any, camera_info: Any | None, class_names, timings: dict) -> Any:
        """The fused message: both outputs of one frame, as the node's hydranet/result."""
        if camera_info is None:  # an all-zero CameraInfo with the frame's header, as rclpy's default
            zeros9, zeros12 = np.zeros(9), np.zeros(12)
            roi = self.store.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
            camera_info = self.store.types[CAMERA_INFO](
                header=header, height=0, width=0, distortion_model="", d=np.zeros(0), k=zeros9, r=zeros9, p=zeros12,
                binning_x=0, binning_y=0, roi=roi)
            has_info = False
        else:
            has_info = True
        return self.store.types[RESULT](
            header=header, labels=labels, depth=depth, has_camera_info=has_info, camera_info=camera_info,
            class_names=list(class_names), **outputs.stage_timings(timings))


def _open_reader(source: Path) -> Reader:
    try:
        reader = Reader(source)
        reader.open()
    except Exception as exc:  # rosbags raises ReaderError, sqlite3 and MCAP errors alike
        hint = ""
        if "magic" in str(exc).lower():
            hint = " (an MCAP file cut short, e.g. by a killed recorder, can be repaired with `mcap recover`)"
        raise BagError("unreadable_bag", f"cannot read {source}: {exc}{hint}") from exc
    return reader


def find_camera(source: Path | str, *, topic: str | None = None, compressed: bool = False) -> CameraTopics:
    """The camera topics replay_bag would use, read from the bag's metadata only (cheap)."""
    source = Path(source)
    if not source.exists():
        raise BagError("input_missing", f"input bag {source} does not exist")
    reader = _open_reader(source)
    try:
        return choose_camera({c.topic: c.msgtype for c in reader.connections}, topic=topic, compressed=compressed)
    finally:
        reader.close()


def replay_bag(source: Path | str, target: Path | str, pipeline: FramePipeline, *, topic: str | None = None,
               compressed: bool = False, overwrite: bool = False, storage: str | None = None, alpha: float = 0.5,
               max_pixels: int | None = None, progress: bool = True) -> ReplayReport:
    """Write ``target``: every message of ``source`` plus the node's outputs for its image topic.

    ``source`` is never written to. The new bag is built in a hidden folder beside ``target``
    and renamed into place only when complete, so an interrupted run leaves no half bag: after
    Ctrl-C (or SIGTERM through the `hydranet` command) the hidden folder is removed at once; after a kill (SIGKILL, power loss) it stays, holds
    no metadata.yaml (rosbag2 does not take it for a bag), and the next replay to ``target``
    removes it. ``storage`` is 'sqlite3' or 'mcap'; None keeps the input's. Raises BagError; a
    full disk or a folder that cannot be written is ``write_failed``.
    """
    source, target = Path(source), Path(target)
    if not 0.0 <= alpha <= 1.0:
        raise BagError("bad_alpha", f"overlay opacity must be within 0..1, got {alpha}")
    check_paths(source, target, overwrite)
    plugin = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}.get(storage or "") or storage_of(source)
    report = ReplayReport(storage=plugin.name.lower())
    reader = _open_reader(source)
    staging: Path | None = None
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        camera = choose_camera(topics, topic=topic, compressed=compressed)
        if set(topics) & {name for name, _ in camera.output_topics().values()}:
            raise BagError("outputs_in_input", f"the input already holds outputs for {camera.image} "
                           "(was it replayed before?); replay the original bag")
        report.camera = camera
        store = _typestore(reader.ros_distro)
        _remove_abandoned_staging(target)
        # The writer's pid in the name tells a later run whether the folder is abandoned.
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=_STAGING_SUFFIX,
                                        dir=target.parent))
        built = staging / target.name
        # Version 8 is the oldest rosbags writes; newer rosbag2 releases read it.
        with Writer(built, version=8, storage_plugin=plugin) as writer:
            replay = _Replay(reader, writer, store, pipeline, camera, report, alpha=alpha,
                             max_pixels=max_pixels, progress=progress)
            replay.add_connections()
            replay.run()
        _move_into_place(built, target, staging)
    except WriterError as exc:
        raise BagError("write_failed", f"cannot write {target}: {exc}") from exc
    except (OSError, sqlite3.Error) as exc:
        # Reading errors were already turned into BagError; what is left comes from writing.
        raise _write_failure(target, exc) from exc
    finally:
        reader.close()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("%s", report.summary())
    return report


_STAGING_SUFFIX = ".partial"


def _write_failure(target: Path, exc: BaseException) -> BagError:
    """One line naming the output and the cause of a failed write (disk full, read-only folder)."""
    if isinstance(exc, OSError):
        cause = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            cause = f"{cause} (disk full)"
        where = f" ({exc.filename})" if exc.filename else ""
        return BagError("write_failed", f"cannot write {target}: {cause}{where}; the partial output was removed")
    # sqlite3 says "database or disk is full" or "attempt to write a readonly database".
    return BagError("write_failed", f"cannot write {target}: sqlite3: {exc}; the partial output was removed")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _remove_abandoned_staging(target: Path) -> None:
    """Delete hidden staging folders of earlier replays to ``target`` whose writer is gone (killed).

    A folder of a writer still running (its pid alive) is left alone: two replays to the same
    output must not delete each other's work. pid reuse can only make us keep a folder, not lose one.
    """
    for folder in target.parent.glob(f".{target.name}.*{_STAGING_SUFFIX}"):
        pid_text = folder.name[len(target.name) + 2:].split(".", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)) or not folder.is_dir():
            continue
        log.info("removing %s, left by an interrupted replay (pid %s)", folder, pid_text)
        shutil.rmtree(folder, ignore_errors=True)


def _move_into_place(built: Path, target: Path, staging: Path) -> None:
    """Rename the finished bag to ``target``; an old one (--overwrite) goes only once the new one is there."""
    if not (target.exists() or target.is_symlink()):
        os.replace(built, target)
        return
    old = staging / "replaced"
    os.replace(target, old)
    try:
        os.replace(built, target)
    except OSError:
        os.replace(old, target)  # put the old bag back rather than lose both
        raise


__all__ = [
    "BagError", "CameraTopics", "ReplayReport", "FramePipeline", "camera_namespace", "choose_camera", "find_camera",
    "replay_bag", "storage_of", "check_paths", "OUTPUT_TOPICS",
]
