"""Offline replay of a rosbag2: the input bag plus what the perception node would publish.

The bag shell beside the rclpy one: without ROS, the ``rosbags`` library reads and writes
sqlite3 (.db3) and MCAP bags (hydranet_ros/io/bag_reader.py, bag_topics.py). Every input message
is copied unchanged; each frame of the chosen image topic goes through the pipeline and its
outputs are written under the camera's namespace with the input image's header and the input
message's bag timestamp, as the node does under ``ros2 bag play --clock``. The output bag is
staged (hydranet_ros/io/staging.py) and appears complete or not at all.
"""

from __future__ import annotations

import collections
import functools
import logging
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError
from rosbags.typesys.store import Typestore
from tqdm import tqdm

from hydranet_ros.io import staging as staged, visuals
from hydranet_ros.io.bag_reader import (
    CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, BagError, CameraInfos, messages, open_reader, stamp, storage_of, typestore,
)
from hydranet_ros.io.bag_topics import CameraTopics, choose_camera
from hydranet_ros.io.camera_info import CameraInfoRejected, scale_camera_info
from hydranet_ros.io.ros_image import ImageRejected, image_fields, message_to_frame
from hydranet_ros.outputs import fields as output_fields, params, plan as output_plan, qos

log = logging.getLogger(__name__)

RESULT = "hydranet_ros/msg/HydraNetResult"
LABEL_INFO = "vision_msgs/msg/LabelInfo"

# What the node publishes (its own table: outputs/plan.py), relative to the camera namespace, with
# the message type of each; the node's defaults: every output on, depth as 32FC1. /diagnostics is
# left out: it reports on the live process (rates, drops), not on the recorded frames.
OUTPUT_TOPICS: dict[str, tuple[str, str]] = {
    **{key: (spec.topic, spec.message.replace("/", "/msg/")) for key, spec in output_plan.OUTPUTS.items()},
    "label_info": (output_plan.LABEL_INFO_TOPIC, LABEL_INFO),
}


class FramePipeline(Protocol):
    """The part of hydranet_ros.runtime.pipeline.Pipeline the replay uses."""

    preset: Any

    def submit(self, frame: np.ndarray, *, color_order: str = "rgb", outputs: frozenset[str] = ...) -> Any:
        """Queue the frame; the returned object's ``result()`` gives the pipeline's Result."""


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


def output_topics(camera: CameraTopics) -> dict[str, tuple[str, str]]:
    """key -> (topic, message type) of every topic the node would publish for this camera."""
    return {key: (f"{camera.namespace}/{relative}", msgtype) for key, (relative, msgtype) in OUTPUT_TOPICS.items()
            if camera.camera_info or key not in output_plan.CAMERA_INFO_OUTPUTS}


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
        for key, (topic, msgtype) in output_topics(self.camera).items():
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

    def read_camera_infos(self) -> CameraInfos:
        entries = []
        if self.camera.camera_info:
            connections = [c for c in self.reader.connections if c.topic == self.camera.camera_info]
            for _, bag_time, raw in messages(self.reader, connections):
                try:
                    info = self.store.deserialize_cdr(raw, CAMERA_INFO)
                except Exception:  # a damaged message must not end the replay
                    self.report.camera_info_problems["corrupt_message"] += 1
                    continue
                entries.append((bag_time, stamp(info.header), info))
        return CameraInfos(entries)

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
            for connection, bag_time, raw in messages(self.reader, []):
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

    def _submit(self, bag_time: int, raw: bytes, infos: CameraInfos) -> "_FrameWrite | None":
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
        pending = _submit(self.pipeline, frame, color_order=order, outputs=_PUBLISHED_RESULTS)
        info = infos.for_frame(bag_time, stamp(msg.header))
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
        depth_msg = Image(header=header, **image_fields(output_fields.depth_image(result.depth_m, "32FC1"), "32FC1"))
        yield "labels", labels_msg
        colour = visuals.colorize_labels(labels, preset.palette)
        yield "color", Image(header=header, **image_fields(colour, "rgb8"))
        base = output_fields.overlay_base(frame, order, (width, height))
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
        content = output_fields.label_info_content(class_names)
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
            class_names=list(class_names), **output_fields.stage_timings(timings))


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
    reader = open_reader(source)
    staging: Path | None = None
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        camera = choose_camera(topics, topic=topic, compressed=compressed)
        if set(topics) & {name for name, _ in output_topics(camera).values()}:
            raise BagError("outputs_in_input", f"the input already holds outputs for {camera.image} "
                           "(was it replayed before?); replay the original bag")
        report.camera = camera
        store = typestore(reader.ros_distro)
        staged.remove_abandoned(target)
        staging = staged.make_staging(target)
        built = staging / target.name
        # Version 8 is the oldest rosbags writes; newer rosbag2 releases read it.
        with Writer(built, version=8, storage_plugin=plugin) as writer:
            replay = _Replay(reader, writer, store, pipeline, camera, report, alpha=alpha,
                             max_pixels=max_pixels, progress=progress)
            replay.add_connections()
            replay.run()
        staged.move_into_place(built, target, staging)
    except WriterError as exc:
        raise BagError("write_failed", f"cannot write {target}: {exc}") from exc
    except (OSError, sqlite3.Error) as exc:
        # Reading errors were already turned into BagError; what is left comes from writing.
        raise BagError("write_failed", staged.write_failure(target, exc)) from exc
    finally:
        reader.close()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("%s", report.summary())
    return report


__all__ = ["BagError", "ReplayReport", "FramePipeline", "OUTPUT_TOPICS", "output_topics", "check_paths", "replay_bag"]
