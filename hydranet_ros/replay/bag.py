"""Offline replay of a rosbag2: the input bag plus what the perception node would publish.

The bag shell beside the rclpy one: without ROS, the ``rosbags`` library reads and writes
sqlite3 (.db3) and MCAP bags (hydranet_ros/io/bag_reader.py, bag_topics.py). Every input message
is copied unchanged; each frame of the chosen image topic (or topics: several cameras, batched
through the network in one pass) goes through the pipeline and its outputs are written under the
camera's namespace with the input image's header and the input message's bag timestamp, as the
node does under ``ros2 bag play --clock``. The output bag is
staged (hydranet_ros/io/staging.py) and appears complete or not at all.
"""

from __future__ import annotations

import array
import collections
import functools
import logging
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError
from rosbags.typesys.store import Typestore
from tqdm import tqdm

from hydranet_ros.io import staging as staged
from hydranet_ros.io.bag_reader import (
    CAMERA_INFO, BagError, CameraInfos, Damage, messages, open_reader, stamp, storage_of, typestore,
)
from hydranet_ros.io.bag_topics import CameraTopics, choose_cameras
from hydranet_ros.io.ros_image import ImageRejected, message_to_frame
from hydranet_ros.outputs import fields as output_fields, params, plan as output_plan, qos, render as rendering
from hydranet_ros.runtime.intake import Frame
from hydranet_ros.runtime.result import FrameRequest

log = logging.getLogger(__name__)

# What the node publishes (its own table: outputs/plan.py), relative to the camera namespace, with
# the message type of each. /diagnostics is left out: it reports on the live process (rates,
# drops), not on the recorded frames.
OUTPUT_TOPICS: dict[str, tuple[str, str]] = {
    **{key: (spec.topic, spec.message) for key, spec in output_plan.OUTPUTS.items()},
    "label_info": (output_plan.LABEL_INFO_TOPIC, output_plan.LABEL_INFO_MESSAGE),
}
_SWITCHES = {**{key: spec.switch for key, spec in output_plan.OUTPUTS.items()}, "label_info": "label_info"}
# A recording listens to every topic it records.
_EVERYONE = {key: 1 for key in output_plan.OUTPUTS}


class FramePipeline(Protocol):
    """The part of hydranet_ros.runtime.pipeline.Pipeline the replay uses."""

    preset: Any

    def submit(self, frame: np.ndarray, *, color_order: str = "rgb", outputs: frozenset[str] = ...,
               focal_px: float | None = None) -> Any:
        """Queue the frame; the returned object's ``result()`` gives the pipeline's Result.
        ``focal_px``: the camera's focal length in frame pixels (from its CameraInfo), or None."""


# Frames queued on the pipeline before the oldest one's messages are written (see _Replay.run),
# and the most writes (frames and copied messages behind them) held back at once.
FRAMES_IN_FLIGHT = 2
MAX_QUEUED_WRITES = 64




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


def _submit_batch(pipeline: Any, requests: list[FrameRequest]) -> list[Any]:
    """pipeline.submit_batch; a pipeline-like object without it runs the frames one at a time."""
    submit_batch = getattr(pipeline, "submit_batch", None)
    if submit_batch is not None:
        return submit_batch(requests)
    return [_submit(pipeline, r.pixels, color_order=r.color_order, outputs=r.outputs, focal_px=r.focal_px)
            for r in requests]


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


def output_topics(camera: CameraTopics, publish: Mapping[str, bool] | None = None) -> dict[str, tuple[str, str]]:
    """key -> (topic, message type) of every topic the node would publish for this camera, with
    the publish_* switches ``publish`` (switch name -> bool; None: all on, the node's default)."""
    return {key: (f"{camera.namespace}/{relative}", msgtype) for key, (relative, msgtype) in OUTPUT_TOPICS.items()
            if (camera.camera_info or key not in output_plan.NEED_CAMERA_INFO)
            and (publish is None or publish.get(_SWITCHES[key], False))}


def replay_parameters(parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The node's parameter values with ``parameters`` over its defaults, checked by the node's own
    rules; a BagError names every refused value. The replay reads the per-frame ones (publish_*,
    depth_encoding, overlay_alpha, max_input_pixels) and records output_qos / output_depth."""
    values = {**params.defaults(), **(parameters or {})}
    problems = params.validate_all(values)
    if problems:
        raise BagError("bad_parameters", "; ".join(problems.values()))
    return values


def _to_bag(store: Typestore, message: rendering.Message) -> Any:
    """The rosbags message for a rendered Message: rosbags serialises numpy arrays where rclpy
    takes array.array, so those become numpy views of the same bytes; all else is copied."""
    def value(item: Any) -> Any:
        if isinstance(item, rendering.Message):
            return _to_bag(store, item)
        if isinstance(item, list):
            return [value(x) for x in item]
        if isinstance(item, array.array):
            return np.frombuffer(item, dtype=item.typecode)  # 'B' -> uint8, 'd' -> float64
        return item

    return store.types[message.type](**{name: value(item) for name, item in message.fields.items()})


@dataclass
class CameraReport:
    """One camera's part of a replay."""

    frames: int = 0  # image messages read
    processed: int = 0  # frames that produced outputs
    rejected: Counter = field(default_factory=Counter)  # reason -> frames dropped
    camera_info_problems: Counter = field(default_factory=Counter)  # reason -> frames without CameraInfo output


@dataclass
class ReplayReport:
    """What one replay did, for the summary line and for tests. The totals add up every camera's
    (``per_camera``, by image topic); ``camera`` is the first (the only one, usually)."""

    camera: CameraTopics | None = None
    cameras: list[CameraTopics] = field(default_factory=list)
    storage: str = ""
    frames: int = 0  # image messages read
    processed: int = 0  # frames that produced outputs
    copied: int = 0  # input messages copied
    rejected: Counter = field(default_factory=Counter)  # reason -> frames dropped
    camera_info_problems: Counter = field(default_factory=Counter)  # reason -> frames without CameraInfo output
    skipped_topics: list[str] = field(default_factory=list)  # input topics that could not be copied
    per_camera: dict[str, CameraReport] = field(default_factory=dict)
    batches: int = 0  # network passes (several cameras' frames in each when batched)
    damaged: list[Damage] = field(default_factory=list)  # parts of the input that could not be read

    def summary(self) -> str:
        if len(self.cameras) > 1:
            frames = ", ".join(f"{topic} {r.processed}/{r.frames}" for topic, r in self.per_camera.items())
            parts = [f"{self.processed}/{self.frames} frame(s) of {len(self.cameras)} cameras processed "
                     f"({frames}) in {self.batches} batch(es)"]
        else:
            parts = [f"{self.processed}/{self.frames} frame(s) of {self.camera.image if self.camera else '?'} processed"]
        parts += [f"{self.copied} input message(s) copied", f"storage {self.storage}"]
        if self.rejected:
            parts.append("dropped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(self.rejected.items())))
        if self.camera_info_problems:
            parts.append("no CameraInfo output: " + ", ".join(f"{n} {r}" for r, n in sorted(self.camera_info_problems.items())))
        if self.skipped_topics:
            parts.append("not copied (no type definition): " + ", ".join(self.skipped_topics))
        if self.damaged:
            parts.append(f"{len(self.damaged)} damaged part(s) of the input skipped: "
                         + ", ".join(str(damage) for damage in self.damaged))
        return "; ".join(parts)

    def count(self, camera: CameraTopics, what: str, reason: str | None = None) -> None:
        """Count one frame's outcome for ``camera`` and in the totals."""
        own = self.per_camera.setdefault(camera.image, CameraReport())
        if reason is None:
            setattr(own, what, getattr(own, what) + 1)
            setattr(self, what, getattr(self, what) + 1)
        else:
            getattr(own, what)[reason] += 1
            getattr(self, what)[reason] += 1


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
        problem = _not_only_a_bag(target)
        if problem:
            raise BagError("output_not_a_bag", f"refusing to overwrite {target}: {problem}")
    if not target.parent.exists():
        raise BagError("output_parent_missing", f"folder {target.parent} does not exist")


class _Camera:
    """One camera's state in a replay: its output connections, CameraInfos and the LabelInfo last written."""

    def __init__(self, topics: CameraTopics, use_camera_info: bool) -> None:
        self.topics = topics
        self.use_camera_info = use_camera_info and topics.camera_info is not None
        self.outputs: dict[str, Any] = {}
        self.infos = CameraInfos([])
        # (frame id, min_confidence) LabelInfo was last written for: a new threshold is a new LabelInfo.
        self.label_info_sent: tuple[str, float] | None = None


class _Slot:
    """A frame's place in a batch: its pending result once the batch is submitted."""

    def __init__(self, replay: "_Replay") -> None:
        self._replay, self.pending = replay, None

    def result(self) -> Any:
        if self.pending is None:  # its batch is still open: run it now (only when writes are forced)
            self._replay.flush_batch()
        return self.pending.result()


def _not_only_a_bag(folder: Path) -> str:
    """Why ``folder`` may not be replaced by --overwrite ('' when it may): it must be empty, or a
    rosbag2 bag and nothing else (a metadata.yaml that reads as one, and exactly the files it lists),
    so that no file of the user's goes with it."""
    if not folder.is_dir():
        return "it is not a folder"
    entries = {entry.name for entry in folder.iterdir()}
    if not entries:
        return ""
    if "metadata.yaml" not in entries:
        return "it is not a rosbag2 folder (no metadata.yaml)"
    try:
        info = yaml.safe_load((folder / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        files = {str(name) for name in info["relative_file_paths"]}
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        return f"its metadata.yaml is not a rosbag2 bag's ({type(exc).__name__}: {str(exc)[:80]})"
    others = sorted(entries - files - {"metadata.yaml"})
    if others:
        return f"it holds files that are not part of its bag ({', '.join(others[:5])}{' ...' if len(others) > 5 else ''})"
    return ""


class _Replay:
    """One pass over the input bag, writing the output bag.

    Several cameras are batched as the node batches them, except that offline every frame counts:
    frames of different cameras that follow each other in the bag form one batch, closed when a
    camera comes round again or every camera has a frame in it, then run in one network pass.
    """

    def __init__(self, reader: Reader, writer: Writer, store: Typestore, pipeline: FramePipeline,
                 cameras: list[CameraTopics], report: ReplayReport, *, parameters: Mapping[str, Any],
                 progress: bool) -> None:
        self.reader, self.writer, self.store, self.pipeline = reader, writer, store, pipeline
        self.report, self.progress = report, progress
        self.live = params.LiveSettings.from_values(parameters)  # what the node reads for every frame
        self.cameras = {topics.image: _Camera(topics, bool(parameters["use_camera_info"])) for topics in cameras}
        self.output_qos = qos.qos_settings(parameters["output_qos"], parameters["output_depth"])
        self.copies: dict[int, Any] = {}
        self.peak_queued_writes = 0  # most messages held back at once (bounded, see run)
        self._open: list[tuple[_Camera, FrameRequest, _Slot]] = []  # the batch being gathered

    def add_connections(self) -> None:
        for connection in self.reader.connections:
            copy = self._copy_connection(connection)
            if copy is not None:
                self.copies[connection.id] = copy
        for camera in self.cameras.values():
            # Without CameraInfo (none in the bag, or use_camera_info off) no CameraInfo is republished
            # and no point cloud made.
            publish = {**self.live.publish, **{switch: self.live.publish[switch] and camera.use_camera_info
                                               for switch in {output_plan.OUTPUTS[name].switch
                                                              for name in output_plan.NEED_CAMERA_INFO}}}
            for key, (topic, msgtype) in output_topics(camera.topics, publish).items():
                # The QoS the node offers, recorded as rosbag2 records it: `ros2 bag play` offers the
                # same again, so LabelInfo stays latched for subscribers that join late.
                offered = qos.LABEL_INFO_QOS if key == "label_info" else self.output_qos
                camera.outputs[key] = self.writer.add_connection(
                    topic, msgtype, typestore=self.store, offered_qos_profiles=[_recorded_qos(offered)])

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

    def read_camera_infos(self) -> None:
        for camera in self.cameras.values():
            entries = []
            if camera.topics.camera_info:
                connections = [c for c in self.reader.connections if c.topic == camera.topics.camera_info]
                # A damaged part is skipped here as in run(), which reports it.
                for _, bag_time, raw in messages(self.reader, connections, damaged=[]):
                    try:
                        info = self.store.deserialize_cdr(raw, CAMERA_INFO)
                    except Exception:  # a damaged message must not end the replay
                        self.report.count(camera.topics, "camera_info_problems", "corrupt_message")
                        continue
                    entries.append((bag_time, stamp(info.header), info))
            camera.infos = CameraInfos(entries)

    def run(self) -> None:
        self.read_camera_infos()
        total = sum(c.msgcount for c in self.reader.connections if c.topic in self.cameras)
        bar = tqdm(total=total, unit="frame", desc="bag", disable=None if self.progress else True)
        # Writes wait in order behind the frames after them, so that the next batch is on the GPU
        # while this one's messages are made and written, and the output bag holds every message
        # in the input's order all the same.
        writes: collections.deque[Callable[[], None]] = collections.deque()
        frames_waiting = 0
        in_flight = FRAMES_IN_FLIGHT * len(self.cameras)
        try:
            for connection, bag_time, raw in messages(self.reader, [], damaged=self.report.damaged):
                copy = self.copies.get(connection.id)
                if copy is not None:
                    writes.append(functools.partial(self._copy, copy, bag_time, raw))
                camera = self.cameras.get(connection.topic)
                if camera is not None:
                    self.report.count(camera.topics, "frames")
                    bar.update(1)
                    finish = self._submit(camera, bag_time, raw)
                    if finish is not None:
                        writes.append(finish)
                        frames_waiting += 1
                frames_waiting -= self._write_ready(writes, frames_waiting, in_flight)
                self.peak_queued_writes = max(self.peak_queued_writes, len(writes))
            self.flush_batch()
            self._write_ready(writes, frames_waiting, in_flight, everything=True)
        finally:
            bar.close()

    @staticmethod
    def _write_ready(writes: collections.deque, frames_waiting: int, in_flight: int, *, everything: bool = False) -> int:
        """Run the queued writes that need not wait: copies with no frame before them, a frame
        once enough are queued behind it, anything while the queue is over its bound (a camera
        that stopped while the lidar records on must not pile the bag up in memory). Returns
        the number of frames written."""
        written = 0
        while writes and (everything or not isinstance(writes[0], _FrameWrite)
                          or frames_waiting - written >= in_flight or len(writes) > MAX_QUEUED_WRITES):
            write = writes.popleft()
            write()
            written += isinstance(write, _FrameWrite)
        return written

    def _copy(self, connection: Any, bag_time: int, raw: bytes) -> None:
        self.writer.write(connection, bag_time, raw)
        self.report.copied += 1

    def _submit(self, camera: _Camera, bag_time: int, raw: bytes) -> "_FrameWrite | None":
        """Decode one image message as the node would and add it to the batch being gathered;
        None when it is dropped (counted)."""
        topics = camera.topics
        try:
            msg = self.store.deserialize_cdr(raw, topics.image_type)
        except Exception:  # a damaged message must not end the replay
            self.report.count(topics, "rejected", "corrupt_message")
            return None
        try:
            pixels, order = message_to_frame(msg, compressed=topics.compressed, max_pixels=self.live.max_input_pixels)
        except ImageRejected as rejected:
            self.report.count(topics, "rejected", rejected.reason)
            log.debug("frame of %s at %d ns dropped: %s", topics.image, bag_time, rejected)
            return None
        # As the node: the newest CameraInfo goes with the frame whenever it subscribes to them.
        info = camera.infos.for_frame(bag_time, stamp(msg.header)) if camera.use_camera_info else None
        if info is None and camera.use_camera_info:
            self.report.count(topics, "camera_info_problems", "no_camera_info_yet")
        frame = Frame(pixels, order, msg.header, info)
        # The node's plan for a frame every output topic listens to; LabelInfo when the frame id is
        # new (frames are written in the order they are submitted).
        label_info_due = output_fields.label_info_due(camera.label_info_sent, msg.header.frame_id,
                                                      self.live.min_confidence)
        plan = output_plan.plan_frame(self.live.publish, _EVERYONE, have_camera_info=info is not None,
                                      label_info_due=label_info_due, min_confidence=self.live.min_confidence)
        if not plan.publishes:
            return None
        if plan.label_info:
            camera.label_info_sent = (msg.header.frame_id, plan.min_confidence)
        slot = None
        if plan.run_inference:
            if any(other is camera for other, _, _ in self._open):
                self.flush_batch()  # this camera comes round again: the batch so far runs first
            # Metric depth for the recorded camera: its focal length from the frame's CameraInfo.
            slot = _Slot(self)
            self._open.append((camera, FrameRequest(pixels, order, plan.network_outputs, rendering.frame_focal(frame)), slot))
            if len(self._open) == len(self.cameras):
                self.flush_batch()
        return _FrameWrite(lambda: self._write_frame(camera, bag_time, frame, plan, slot))

    def flush_batch(self) -> None:
        """Run the gathered frames (one per camera) through the network in one pass."""
        if not self._open:
            return
        batch, self._open = self._open, []
        for (_, _, slot), pending in zip(batch, _submit_batch(self.pipeline, [request for _, request, _ in batch])):
            slot.pending = pending
        self.report.batches += 1

    def _write_frame(self, camera: _Camera, bag_time: int, frame: Frame, plan: output_plan.FramePlan,
                     slot: _Slot | None) -> None:
        result = slot.result() if slot is not None else None
        height, width = frame.pixels.shape[:2]
        size = _result_size(result) or self.pipeline.output_size_for(width, height)
        rendered = rendering.frame_messages(frame, result, plan, size=size, preset=self.pipeline.preset,
                                            depth_encoding=self.live.depth_encoding,
                                            overlay_alpha=self.live.overlay_alpha,
                                            confidence_encoding=self.live.confidence_encoding, cloud=self.live.cloud)
        if rendered.camera_info_problem is not None:
            self.report.count(camera.topics, "camera_info_problems", rendered.camera_info_problem.reason)
        for key, message in rendered.messages.items():
            connection = camera.outputs[key]
            self.writer.write(connection, bag_time, self.store.serialize_cdr(_to_bag(self.store, message), connection.msgtype))
        self.report.count(camera.topics, "processed")


def _result_size(result: Any) -> tuple[int, int] | None:
    """(width, height) of a Result's outputs; None without one."""
    for image in (getattr(result, "labels", None), getattr(result, "depth_m", None)):
        if image is not None:
            return int(image.shape[1]), int(image.shape[0])
    return None


def replay_bag(source: Path | str, target: Path | str, pipeline: FramePipeline, *,
               topic: str | Sequence[str] | None = None, all_cameras: bool = False,
               compressed: bool = False, overwrite: bool = False, storage: str | None = None,
               parameters: Mapping[str, Any] | None = None, alpha: float | None = None,
               max_pixels: int | None = None, progress: bool = True) -> ReplayReport:
    """Write ``target``: every message of ``source`` plus the node's outputs for its image topic,
    or for several cameras' (``topic`` a list of image topics, or ``all_cameras``), in one pass,
    their frames batched through the network as the multi-camera node batches them.

    ``source`` is never written to. The new bag is built in a hidden folder beside ``target``
    and renamed into place only when complete, so an interrupted run leaves no half bag: after
    Ctrl-C (or SIGTERM through the `hydranet` command) the hidden folder is removed at once; after a kill (SIGKILL, power loss) it stays, holds
    no metadata.yaml (rosbag2 does not take it for a bag), and the next replay to ``target``
    removes it. ``storage`` is 'sqlite3' or 'mcap'; None keeps the input's. Raises BagError; a
    full disk or a folder that cannot be written is ``write_failed``.

    The outputs are the node's for the same frame and ``parameters`` (node parameter name ->
    value over the node's defaults: publish_*, use_camera_info, depth_encoding, overlay_alpha,
    max_input_pixels, output_qos, output_depth); ``alpha`` and ``max_pixels`` stand for overlay_alpha and
    max_input_pixels (0 = no limit).
    """
    source, target = Path(source), Path(target)
    overrides = dict(parameters or {})
    if alpha is not None:
        overrides["overlay_alpha"] = float(alpha)
    if max_pixels is not None:
        overrides["max_input_pixels"] = int(max_pixels)
    values = replay_parameters(overrides)
    refusal = params.class_refusal(values, pipeline.preset.class_names)
    if refusal:
        raise BagError("bad_parameters", refusal)
    check_paths(source, target, overwrite)
    plugin = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}.get(storage or "") or storage_of(source)
    report = ReplayReport(storage=plugin.name.lower())
    reader = open_reader(source)
    staging: Path | None = None
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        chosen = [topic] if isinstance(topic, str) else list(topic) if topic else None
        cameras = choose_cameras(topics, chosen=chosen, compressed=compressed, all_cameras=all_cameras)
        for camera in cameras:
            if set(topics) & {name for name, _ in output_topics(camera).values()}:
                raise BagError("outputs_in_input", f"the input already holds outputs for {camera.image} "
                               "(was it replayed before?); replay the original bag")
        report.camera, report.cameras = cameras[0], cameras
        report.per_camera = {camera.image: CameraReport() for camera in cameras}
        store = typestore(reader.ros_distro)
        staged.remove_abandoned(target)
        staging = staged.make_staging(target)
        built = staging / target.name
        # Version 8 is the oldest rosbags writes; newer rosbag2 releases read it.
        with Writer(built, version=8, storage_plugin=plugin) as writer:
            replay = _Replay(reader, writer, store, pipeline, cameras, report, parameters=values, progress=progress)
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


__all__ = [
    "BagError", "ReplayReport", "CameraReport", "FramePipeline", "OUTPUT_TOPICS", "output_topics", "replay_parameters", "check_paths",
    "replay_bag",
]
