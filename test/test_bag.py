"""`hydranet bag` end to end on bags the tests write, in both storage formats."""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from hydranet_ros.commands import bag as bag_command
from hydranet_ros.commands.common import run_command as report_errors
from hydranet_ros.io.bag_topics import camera_namespace, choose_camera
from hydranet_ros.replay.bag import BagError, output_topics, replay_bag
from hydranet_ros.io.message_defs import register_output_types
from hydranet_ros.io.ros_image import image_fields, image_to_numpy
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig

STORE = get_typestore(Stores.ROS2_HUMBLE)
register_output_types(STORE)
T = STORE.types

# The shared KITTI frame beside the checkout (or $HYDRANET_SAMPLE_DATA); the checks below do not
# depend on the picture, so a synthetic street-like gradient stands in where it is absent.
_DATA = [Path(os.environ["HYDRANET_SAMPLE_DATA"])] if "HYDRANET_SAMPLE_DATA" in os.environ else []
_DATA += [Path(__file__).resolve().parents[2] / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"]
KITTI = next((d / "kitti" / "000099.png" for d in _DATA if (d / "kitti" / "000099.png").exists()), None)
WIDTH, HEIGHT = 96, 72  # camera frames in the test bags
OUT_W, OUT_H = 64, 48  # network and output size
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
OUTPUTS = {
    "/cam/semantic/labels": "sensor_msgs/msg/Image",
    "/cam/semantic/color": "sensor_msgs/msg/Image",
    "/cam/semantic/overlay": "sensor_msgs/msg/Image",
    "/cam/depth/image": "sensor_msgs/msg/Image",
    "/cam/depth/camera_info": "sensor_msgs/msg/CameraInfo",
    "/cam/semantic/camera_info": "sensor_msgs/msg/CameraInfo",
    "/cam/semantic/confidence": "sensor_msgs/msg/Image",
}
# The point clouds: made only with CameraInfo, one row of valid points (dense) by default.
CLOUDS = {"/cam/semantic/points": "sensor_msgs/msg/PointCloud2", "/cam/semantic/obstacles": "sensor_msgs/msg/PointCloud2"}
# Besides the images: the fused message per frame, and LabelInfo once per frame_id (latched).
FUSED, LABEL_INFO = "/cam/hydranet/result", "/cam/semantic/label_info"
EXTRA = {FUSED: "hydranet_ros/msg/HydraNetResult", LABEL_INFO: "vision_msgs/msg/LabelInfo"}
FX, FY, CX, CY = 80.0, 82.0, 47.0, 35.5


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    preset = get_preset("kitti")
    return Pipeline.from_model(HydraNet(preset).eval(), preset, PipelineConfig(input_size=(OUT_W, OUT_H), device="cpu"))


def camera_frame(index: int) -> np.ndarray:
    """A street scene (the shared KITTI frame when present), shifted a little per frame, RGB."""
    if KITTI is not None:
        bgr = cv2.imread(str(KITTI), cv2.IMREAD_COLOR)
    else:
        rows, cols = np.mgrid[0:370, 0:1226]
        bgr = np.dstack([(cols // 5) % 256, (rows * 255 // 370), 255 - (cols // 5) % 256]).astype(np.uint8)
    crop = bgr[:, 200 + 40 * index : 200 + 40 * index + 500]
    return cv2.cvtColor(cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def header(index: int):
    # Header stamps differ from the bag's receive times, so the test can tell which one is kept.
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=100 + index, nanosec=1000 + index),
                                    frame_id="cam_optical")


def bag_time(index: int) -> int:
    return 5_000_000_000 + index * 100_000_000


def camera_info(index: int):
    return T["sensor_msgs/msg/CameraInfo"](
        header=header(index), height=HEIGHT, width=WIDTH, distortion_model="plumb_bob",
        d=np.array([0.1, -0.2, 0.0, 0.0, 0.0]), k=np.array([FX, 0, CX, 0, FY, CY, 0, 0, 1.0]),
        r=np.eye(3).reshape(-1), p=np.array([FX, 0, CX, -8.0, 0, FY, CY, 0, 0, 0, 1.0, 0]),
        binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def write_bag(path: Path, storage: str, *, frames: int = 3, image_topic: str | None = "/cam/image_raw",
              with_info: bool = True, compressed: bool = False, corrupt: set[int] = frozenset(),
              bad_step: set[int] = frozenset(), chunk_per_frame: bool = False,
              jpeg_of: Callable[[int], bytes] | None = None) -> Path:
    """A bag of ``frames`` camera frames (plus chatter and CameraInfo). ``chunk_per_frame``: a
    1 MiB message after each frame, so that rosbags closes an MCAP chunk there."""
    with Writer(path, version=8, storage_plugin=STORAGES[storage]) as writer:
        chatter = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE)
        blob = writer.add_connection("/blob", "std_msgs/msg/String", typestore=STORE) if chunk_per_frame else None
        image_conn = info_conn = None
        if image_topic:
            msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
            image_conn = writer.add_connection(image_topic, msgtype, typestore=STORE)
            if with_info:
                info_conn = writer.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=STORE)
        for index in range(frames):
            writer.write(chatter, bag_time(index) - 1000, STORE.serialize_cdr(T["std_msgs/msg/String"](data=f"hello {index}"), "std_msgs/msg/String"))
            if image_conn is None:
                continue
            if index in corrupt:
                raw = b"\x00\x01\x00\x00 this is not an image message"
            elif compressed:
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(camera_frame(index), cv2.COLOR_RGB2BGR))
                if jpeg_of is not None:
                    jpeg = np.frombuffer(jpeg_of(index), np.uint8)
                msg = T["sensor_msgs/msg/CompressedImage"](header=header(index), format="rgb8; jpeg compressed bgr8", data=jpeg.ravel())
                raw = STORE.serialize_cdr(msg, msg.__msgtype__)
            else:
                fields = image_fields(camera_frame(index), "rgb8")
                if index in bad_step:
                    fields["step"] -= 1
                msg = T["sensor_msgs/msg/Image"](header=header(index), **fields)
                raw = STORE.serialize_cdr(msg, msg.__msgtype__)
            writer.write(image_conn, bag_time(index), raw)
            if info_conn is not None:  # after its image, as drivers publish it
                writer.write(info_conn, bag_time(index) + 2000, STORE.serialize_cdr(camera_info(index), "sensor_msgs/msg/CameraInfo"))
            if blob is not None:
                writer.write(blob, bag_time(index) + 3000,
                             STORE.serialize_cdr(T["std_msgs/msg/String"](data="x" * (1 << 20)), "std_msgs/msg/String"))
    return path


def read_bag(path: Path) -> tuple[dict[str, str], dict[str, list[tuple[int, bytes]]]]:
    with Reader(path) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        messages: dict[str, list[tuple[int, bytes]]] = {t: [] for t in topics}
        for connection, timestamp, raw in reader.messages():
            messages[connection.topic].append((timestamp, bytes(raw)))
    return topics, messages


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_replay_writes_inputs_plus_node_outputs_with_input_stamps(tmp_path, pipeline, storage):
    source = write_bag(tmp_path / "in", storage)
    before = tree_digest(source)
    report = replay_bag(source, tmp_path / "out", pipeline, progress=False)
    assert tree_digest(source) == before  # IN untouched
    assert (report.frames, report.processed, report.copied) == (3, 3, 9) and not report.rejected
    assert leftovers(tmp_path) == []
    suffixes = {p.suffix for p in (tmp_path / "out").iterdir()}
    assert (".mcap" if storage == "mcap" else ".db3") in suffixes  # same storage as the input

    in_topics, in_messages = read_bag(source)
    topics, messages = read_bag(tmp_path / "out")
    assert topics == {**in_topics, **OUTPUTS, **EXTRA, **CLOUDS}
    for topic in in_topics:  # input messages copied byte for byte, at their times
        assert messages[topic] == in_messages[topic]
    image_times = [t for t, _ in in_messages["/cam/image_raw"]]
    for topic, msgtype in OUTPUTS.items():
        assert [t for t, _ in messages[topic]] == image_times, topic  # the input's receive times
        for index, (_, raw) in enumerate(messages[topic]):
            msg = STORE.deserialize_cdr(raw, msgtype)
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (100 + index, 1000 + index), topic
            assert msg.header.frame_id == "cam_optical", topic
            assert (msg.width, msg.height) == (OUT_W, OUT_H), topic

    def image(topic, index=0):
        return STORE.deserialize_cdr(messages[topic][index][1], "sensor_msgs/msg/Image")

    labels = image("/cam/semantic/labels")
    assert labels.encoding == "mono8" and image_to_numpy(labels).max() < 6
    assert image("/cam/semantic/color").encoding == "rgb8"
    assert image("/cam/semantic/overlay").encoding == "rgb8"
    depth = image("/cam/depth/image")
    assert depth.encoding == "32FC1" and image_to_numpy(depth).dtype.kind == "f"
    # The published pictures are what the pipeline makes of the recorded frame.
    expected = pipeline.process(camera_frame(0), color_order="rgb")
    np.testing.assert_array_equal(image_to_numpy(labels), expected.labels)
    np.testing.assert_allclose(image_to_numpy(depth), expected.depth_m, rtol=1e-6)

    # The fused message holds the same labels, depth and scaled CameraInfo, with the input header.
    assert [t for t, _ in messages[FUSED]] == image_times
    fused = STORE.deserialize_cdr(messages[FUSED][1][1], EXTRA[FUSED])
    assert (fused.header.stamp.sec, fused.header.frame_id) == (101, "cam_optical")
    np.testing.assert_array_equal(image_to_numpy(fused.labels), image_to_numpy(image("/cam/semantic/labels", 1)))
    np.testing.assert_array_equal(image_to_numpy(fused.depth), image_to_numpy(image("/cam/depth/image", 1)))
    assert fused.has_camera_info and (fused.camera_info.width, fused.camera_info.height) == (OUT_W, OUT_H)
    assert list(fused.class_names) == list(get_preset("kitti").class_names)
    assert fused.total_ms >= fused.inference_ms > 0
    # LabelInfo: written once for the one frame_id, at the first frame, naming every class id.
    assert [t for t, _ in messages[LABEL_INFO]] == image_times[:1]
    label_info = STORE.deserialize_cdr(messages[LABEL_INFO][0][1], EXTRA[LABEL_INFO])
    assert [(c.class_id, c.class_name) for c in label_info.class_map] == list(enumerate(get_preset("kitti").class_names))
    assert label_info.header.frame_id == "cam_optical"
    assert label_info.threshold == 0.0

    # The clouds: per frame, with the input header, PointCloud2 as rviz2 and PCL read it.
    for topic in CLOUDS:
        assert [t for t, _ in messages[topic]] == image_times, topic
        cloud = STORE.deserialize_cdr(messages[topic][1][1], CLOUDS[topic])
        assert (cloud.header.stamp.sec, cloud.header.frame_id) == (101, "cam_optical")
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "confidence", "label"]
        assert cloud.point_step == 24 and cloud.row_step == 24 * cloud.width and cloud.height == 1
        assert len(cloud.data) == cloud.row_step and cloud.is_dense and not cloud.is_bigendian
    # semantic/points: every pixel with depth, sky left out, at the CameraInfo's rays.
    points = np.frombuffer(STORE.deserialize_cdr(messages["/cam/semantic/points"][0][1], CLOUDS["/cam/semantic/points"]).data,
                           dtype=np.dtype({"names": ["x", "y", "z", "label"], "formats": ["<f4", "<f4", "<f4", "u1"],
                                           "offsets": [0, 4, 8, 20], "itemsize": 24}))
    kept = expected.labels != 0  # not sky
    assert len(points) == int(kept.sum()) > 0
    np.testing.assert_allclose(np.sort(points["z"]), np.sort(expected.depth_m[kept]), rtol=1e-6)
    assert set(points["label"]) <= set(range(1, 6))


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_camera_info_is_scaled_to_the_output_size(tmp_path, pipeline, storage):
    source = write_bag(tmp_path / "in", storage, frames=1)
    replay_bag(source, tmp_path / "out", pipeline, progress=False)
    _, messages = read_bag(tmp_path / "out")
    sx, sy = OUT_W / WIDTH, OUT_H / HEIGHT
    for topic in ("/cam/depth/camera_info", "/cam/semantic/camera_info"):
        info = STORE.deserialize_cdr(messages[topic][0][1], "sensor_msgs/msg/CameraInfo")
        assert (info.width, info.height) == (OUT_W, OUT_H)
        np.testing.assert_allclose(info.k, [FX * sx, 0, (CX + 0.5) * sx - 0.5, 0, FY * sy, (CY + 0.5) * sy - 0.5, 0, 0, 1])
        np.testing.assert_allclose(info.p[3], -8.0 * sx)
        np.testing.assert_allclose(info.d, [0.1, -0.2, 0, 0, 0])
        assert info.distortion_model == "plumb_bob"


def test_output_storage_can_differ_from_the_input(tmp_path, pipeline):
    source = write_bag(tmp_path / "in", "sqlite3", frames=1)
    replay_bag(source, tmp_path / "out", pipeline, storage="mcap", progress=False)
    assert any(p.suffix == ".mcap" for p in (tmp_path / "out").iterdir())
    topics, _ = read_bag(tmp_path / "out")
    assert set(OUTPUTS) <= set(topics)


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_compressed_input(tmp_path, pipeline, storage):
    source = write_bag(tmp_path / "in", storage, image_topic="/cam/image_raw/compressed", compressed=True, frames=2)
    with pytest.raises(BagError) as caught:  # raw Image wanted, only CompressedImage there
        replay_bag(source, tmp_path / "out", pipeline, progress=False)
    assert caught.value.reason == "no_image_topic" and "--compressed" in str(caught.value)
    report = replay_bag(source, tmp_path / "out", pipeline, compressed=True, progress=False)
    assert report.processed == 2
    topics, messages = read_bag(tmp_path / "out")
    assert set(OUTPUTS) <= set(topics) and len(messages["/cam/semantic/labels"]) == 2


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_corrupt_and_malformed_frames_are_counted_and_the_rest_processed(tmp_path, pipeline, storage):
    source = write_bag(tmp_path / "in", storage, frames=4, corrupt={1}, bad_step={2})
    report = replay_bag(source, tmp_path / "out", pipeline, progress=False)
    assert report.frames == 4 and report.processed == 2
    assert report.rejected == {"corrupt_message": 1, "bad_step": 1}
    assert "1 corrupt_message" in report.summary() and "1 bad_step" in report.summary()
    _, messages = read_bag(tmp_path / "out")
    assert len(messages["/cam/image_raw"]) == 4  # every input message copied, damaged or not
    stamps = [STORE.deserialize_cdr(raw, "sensor_msgs/msg/Image").header.stamp.sec for _, raw in messages["/cam/semantic/labels"]]
    assert stamps == [100, 103]


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_damaged_bag_file_is_refused_with_one_line_and_no_output(tmp_path, pipeline, storage):
    source = write_bag(tmp_path / "in", storage)
    data_file = next(p for p in source.iterdir() if p.suffix in (".db3", ".mcap"))
    data_file.write_bytes(b"\x89garbage" * 64)
    with pytest.raises(BagError) as caught:
        replay_bag(source, tmp_path / "out", pipeline, progress=False)
    assert caught.value.reason in ("unreadable_bag", "corrupt_bag")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_truncated_bag_file_is_refused_or_read_up_to_the_damage(tmp_path, pipeline, storage):
    source = write_bag(tmp_path / "in", storage, frames=6)
    data_file = next(p for p in source.iterdir() if p.suffix in (".db3", ".mcap"))
    data = data_file.read_bytes()
    data_file.write_bytes(data[: len(data) * 2 // 3])
    try:
        report = replay_bag(source, tmp_path / "out", pipeline, progress=False)
    except BagError as error:
        assert error.reason in ("unreadable_bag", "corrupt_bag") and "\n" not in str(error)
        assert not (tmp_path / "out").exists()
    else:  # a reader that recovers what is intact must then have processed it
        assert report.processed == report.frames > 0
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_bag_with_an_image_topic_but_no_messages(tmp_path, pipeline, storage):
    source = write_bag(tmp_path / "in", storage, frames=0)
    report = replay_bag(source, tmp_path / "out", pipeline, progress=False)
    assert (report.frames, report.processed) == (0, 0)
    topics, messages = read_bag(tmp_path / "out")
    assert set(OUTPUTS) <= set(topics) and all(not m for m in messages.values())


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_bags_without_image_topics_name_the_topics_found(tmp_path, pipeline, storage):
    empty = tmp_path / "empty"
    with Writer(empty, version=8, storage_plugin=STORAGES[storage]):
        pass
    with pytest.raises(BagError) as caught:
        replay_bag(empty, tmp_path / "out", pipeline, progress=False)
    assert caught.value.reason == "no_image_topic" and "topics found: none" in str(caught.value)
    chatter = write_bag(tmp_path / "chatter", storage, image_topic=None)
    with pytest.raises(BagError) as caught:
        replay_bag(chatter, tmp_path / "out", pipeline, progress=False)
    assert "/chatter (std_msgs/msg/String)" in str(caught.value)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_without_camera_info_no_camera_info_is_written(tmp_path, pipeline):
    source = write_bag(tmp_path / "in", "mcap", frames=1, with_info=False)
    replay_bag(source, tmp_path / "out", pipeline, progress=False)
    topics, messages = read_bag(tmp_path / "out")
    assert {t for t in topics if t not in ("/chatter", "/cam/image_raw")} == {
        t for t, msgtype in OUTPUTS.items() if msgtype.endswith("Image")} | set(EXTRA)
    assert not STORE.deserialize_cdr(messages[FUSED][0][1], EXTRA[FUSED]).has_camera_info


def test_output_is_never_clobbered_without_overwrite(tmp_path, pipeline):
    source = write_bag(tmp_path / "in", "sqlite3", frames=1)
    replay_bag(source, tmp_path / "out", pipeline, progress=False)
    first = tree_digest(tmp_path / "out")
    with pytest.raises(BagError) as caught:
        replay_bag(source, tmp_path / "out", pipeline, progress=False)
    assert caught.value.reason == "output_exists" and tree_digest(tmp_path / "out") == first
    replay_bag(source, tmp_path / "out", pipeline, overwrite=True, storage="mcap", progress=False)
    assert any(p.suffix == ".mcap" for p in (tmp_path / "out").iterdir())
    assert not any(p.suffix == ".db3" for p in (tmp_path / "out").iterdir())
    assert leftovers(tmp_path) == []
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(BagError) as caught:
        replay_bag(source, precious, pipeline, overwrite=True, progress=False)
    assert caught.value.reason == "output_not_a_bag" and (precious / "notes.txt").exists()
    with pytest.raises(BagError) as caught:
        replay_bag(source, source / "nested", pipeline, progress=False)
    assert caught.value.reason == "output_is_input"


@pytest.mark.parametrize("make", ["notes beside a bag", "not a bag's metadata", "a sub-folder beside a bag"])
def test_overwrite_replaces_only_a_bag_and_nothing_else(tmp_path, pipeline, make):
    """A folder with a metadata.yaml is not enough (issue 12, item 4): it must hold a bag and
    nothing else, so that no file of the user's goes with it."""
    source = write_bag(tmp_path / "in", "mcap", frames=1)
    target = tmp_path / "target"
    if make == "not a bag's metadata":
        target.mkdir()
        (target / "metadata.yaml").write_text("experiment: 7\noperator: me\n")
        (target / "results.csv").write_text("1,2,3\n")
    else:
        write_bag(target, "sqlite3", frames=1)
        if make == "notes beside a bag":
            (target / "notes.txt").write_text("calibration done by hand, keep")
        else:
            (target / "calibration").mkdir()
            (target / "calibration" / "left.yaml").write_text("k: [1]")
    before = tree_digest(target)
    with pytest.raises(BagError) as caught:
        replay_bag(source, target, pipeline, overwrite=True, progress=False)
    assert caught.value.reason == "output_not_a_bag" and tree_digest(target) == before
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_a_bag_that_is_only_a_bag(tmp_path, pipeline):
    source = write_bag(tmp_path / "in", "mcap", frames=1)
    write_bag(tmp_path / "old", "sqlite3", frames=1)
    replay_bag(source, tmp_path / "old", pipeline, overwrite=True, progress=False)
    assert sorted(p.suffix for p in (tmp_path / "old").iterdir()) == [".mcap", ".yaml"]
    (tmp_path / "empty").mkdir()
    replay_bag(source, tmp_path / "empty", pipeline, overwrite=True, progress=False)


def damage_mcap_chunk(bag: Path, chunk_index: int) -> None:
    """Forge the length of the first message record inside the MCAP file's chunk ``chunk_index``."""
    mcap = next(bag.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    position, chunks = 8, 0  # after the magic
    while position < len(data):
        op, length = data[position], struct.unpack_from("<Q", data, position + 1)[0]
        if op == 0x06:
            if chunks == chunk_index:
                content = position + 9
                compression_length = struct.unpack_from("<I", data, content + 28)[0]
                records = content + 32 + compression_length + 8
                assert data[records] in (0x05, 0x03, 0x04)  # a message (or schema/channel) record
                struct.pack_into("<Q", data, records + 1, 2**40)
                mcap.write_bytes(bytes(data))
                return
            chunks += 1
        position += 9 + length
    raise AssertionError(f"{mcap} has only {chunks} chunks")


def test_a_damaged_mcap_chunk_is_skipped_and_reported_and_the_rest_replayed(tmp_path, pipeline, monkeypatch, capsys):
    """One record inside one chunk with a forged length (issue 12, item 6): the frames in the intact
    chunks are processed, the damaged stretch of bag time is named, the exit status is 1."""
    source = write_bag(tmp_path / "in", "mcap", frames=6, chunk_per_frame=True)
    damage_mcap_chunk(source, 2)  # the chunk holding frame 2
    report = replay_bag(source, tmp_path / "out", pipeline, progress=False)
    assert (report.frames, report.processed) == (5, 5)
    [damage] = report.damaged
    assert damage.first_ns <= bag_time(2) - 1000 and bag_time(2) + 3000 <= damage.last_ns < bag_time(3) - 1000
    assert "damaged part(s) of the input skipped: bag time 5.1" in report.summary()
    _, written = read_bag(tmp_path / "out")
    stamps = [STORE.deserialize_cdr(raw, "sensor_msgs/msg/Image").header.stamp.sec for _, raw in written["/cam/semantic/labels"]]
    assert stamps == [100, 101, 103, 104, 105]
    assert len(written["/chatter"]) == 5 and len(written["/cam/camera_info"]) == 5
    assert run_command([str(source), str(tmp_path / "out2")], monkeypatch, pipeline) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 damaged part(s)" in err[0] and "bag time 5.1" in err[0]


@pytest.fixture
def no_decoding(monkeypatch):
    def reached(*_args, **_kwargs):
        raise AssertionError("a frame over the pixel limit reached the decoder")

    monkeypatch.setattr(cv2, "imdecode", reached)


def test_compressed_frames_get_the_nodes_pixel_limit_by_default(tmp_path, pipeline, monkeypatch, capsys, no_decoding):
    """A 631-byte JPEG declaring 10000x10000 took 156 s and 3.8 GiB (issue 12, item 2): refused
    from its header by default. Without a limit (--max-pixels 0, as the node's parameter 0) it is
    still refused before decoding: its scan data cannot hold that many blocks."""
    tiny = cv2.imencode(".jpg", np.full((8, 8, 3), 90, np.uint8))[1].tobytes()
    frame_header = tiny.index(b"\xff\xc0")
    huge = tiny[: frame_header + 5] + struct.pack(">HH", 10000, 10000) + tiny[frame_header + 9 :]
    source = write_bag(tmp_path / "in", "sqlite3", frames=2, image_topic="/cam/image_raw/compressed",
                       compressed=True, jpeg_of=lambda index: huge)
    assert run_command([str(source), str(tmp_path / "out"), "--compressed"], monkeypatch, pipeline) == 1
    assert "dropped: 2 too_large" in capsys.readouterr().out
    assert run_command([str(source), str(tmp_path / "out2"), "--compressed", "--max-pixels", "0"], monkeypatch, pipeline) == 1
    assert "dropped: 2 bad_compressed" in capsys.readouterr().out


def test_max_pixels_0_means_no_limit_as_for_the_node(tmp_path, pipeline, monkeypatch, capsys):
    source = write_bag(tmp_path / "in", "mcap", frames=2, image_topic="/cam/image_raw/compressed", compressed=True)
    assert run_command([str(source), str(tmp_path / "a"), "--compressed", "--max-pixels", "100"], monkeypatch, pipeline) == 1
    assert "dropped: 2 too_large" in capsys.readouterr().out
    assert run_command([str(source), str(tmp_path / "b"), "--compressed", "--max-pixels", "0"], monkeypatch, pipeline) == 0
    assert "2/2 frame(s)" in capsys.readouterr().out


def test_topic_choice_and_namespaces():
    topics = {"/cam/image_raw": "sensor_msgs/msg/Image", "/cam/camera_info": "sensor_msgs/msg/CameraInfo",
              "/left/image": "sensor_msgs/msg/Image", "/left/image/compressed": "sensor_msgs/msg/CompressedImage"}
    with pytest.raises(BagError) as caught:
        choose_camera(topics)
    assert caught.value.reason == "several_image_topics" and "--topic" in str(caught.value)
    camera = choose_camera(topics, topic="/cam/image_raw")
    assert camera.camera_info == "/cam/camera_info" and output_topics(camera)["labels"][0] == "/cam/semantic/labels"
    left = choose_camera(topics, topic="/left/image", compressed=True)
    assert left.image == "/left/image/compressed" and left.camera_info is None and left.namespace == "/left"
    assert output_topics(choose_camera({"/image": "sensor_msgs/msg/Image"}))["depth"][0] == "/depth/image"
    assert camera_namespace("/a/b/image_raw") == "/a/b"
    with pytest.raises(BagError) as caught:
        choose_camera(topics, topic="/nope")
    assert caught.value.reason == "topic_not_found" and "/cam/image_raw" in str(caught.value)
    with pytest.raises(BagError) as caught:
        choose_camera(topics, topic="/cam/camera_info")
    assert caught.value.reason == "wrong_topic_type"


def run_command(argv: list[str], monkeypatch, pipeline) -> int:
    monkeypatch.setattr(bag_command, "pipeline_from_args", lambda args, max_batch=1: pipeline)
    parser = argparse.ArgumentParser()
    bag_command.add_arguments(parser)
    return report_errors("bag", bag_command.run, parser.parse_args(argv))  # the one error model of `hydranet`


def test_command_line(tmp_path, pipeline, monkeypatch, capsys):
    source = write_bag(tmp_path / "in", "mcap", frames=2)
    assert run_command([str(source), str(tmp_path / "out"), "--topic", "/cam/image_raw"], monkeypatch, pipeline) == 0
    assert "2/2 frame(s) of /cam/image_raw processed" in capsys.readouterr().out
    chatter = write_bag(tmp_path / "chatter", "sqlite3", image_topic=None)
    assert run_command([str(chatter), str(tmp_path / "out2")], monkeypatch, pipeline) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no sensor_msgs/msg/Image topic" in err and "/chatter" in err
    assert "Traceback" not in err
    assert run_command([str(source), str(tmp_path / "out")], monkeypatch, pipeline) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    all_bad = write_bag(tmp_path / "bad", "sqlite3", frames=2, bad_step={0, 1})
    assert run_command([str(all_bad), str(tmp_path / "out3")], monkeypatch, pipeline) == 1
    assert "none of the 2 frame(s)" in capsys.readouterr().err


def test_command_line_follows_the_node_parameter_file(tmp_path, pipeline, monkeypatch, capsys):
    """--params takes the node's YAML: its depth encoding and output switches decide what is written;
    a flag on the command line wins over the file; a bad value is refused before any work."""
    config = tmp_path / "node.yaml"
    config.write_text("/**:\n  ros__parameters:\n    depth_encoding: '16UC1'\n    publish_overlay: false\n"
                      "    output_size: 'network'\n")
    source = write_bag(tmp_path / "in", "sqlite3", frames=1)
    assert run_command([str(source), str(tmp_path / "out"), "--params", str(config)], monkeypatch, pipeline) == 0
    _, messages = read_bag(tmp_path / "out")
    assert "/cam/semantic/overlay" not in messages and "/cam/semantic/color" in messages
    depth = STORE.deserialize_cdr(messages["/cam/depth/image"][0][1], "sensor_msgs/msg/Image")
    assert depth.encoding == "16UC1" and image_to_numpy(depth).dtype == np.uint16

    flags = [str(source), str(tmp_path / "out2"), "--params", str(config), "--depth-encoding", "32FC1"]
    assert run_command(flags, monkeypatch, pipeline) == 0
    depth = STORE.deserialize_cdr(read_bag(tmp_path / "out2")[1]["/cam/depth/image"][0][1], "sensor_msgs/msg/Image")
    assert depth.encoding == "32FC1"

    capsys.readouterr()
    config.write_text("/**:\n  ros__parameters:\n    overlay_alpha: 3.0\n")
    assert run_command([str(source), str(tmp_path / "out3"), "--params", str(config)], monkeypatch, pipeline) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "overlay_alpha" in err and not (tmp_path / "out3").exists()


def test_a_read_error_mid_bag_becomes_a_bag_error():
    import sqlite3

    from hydranet_ros.io.bag_reader import messages as _messages

    class DamagedReader:
        path = Path("/bags/damaged")

        def messages(self, connections=(), start=None):
            yield "connection", 1, b"raw"
            raise sqlite3.DatabaseError("database disk image is malformed")

    stream = _messages(DamagedReader(), [])
    assert next(stream) == ("connection", 1, b"raw")
    with pytest.raises(BagError) as caught:
        next(stream)
    assert caught.value.reason == "corrupt_bag" and "/bags/damaged" in str(caught.value)


def test_a_failure_mid_replay_leaves_neither_output_nor_staging(tmp_path, pipeline):
    class FailsOnSecondFrame:
        preset = pipeline.preset

        def __init__(self):
            self.calls = 0

        def submit(self, frame, *, color_order="rgb", outputs=frozenset({"labels", "depth"}), focal_px=None):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("engine lost")
            return pipeline.submit(frame, color_order=color_order, outputs=outputs)

    source = write_bag(tmp_path / "in", "mcap", frames=3)
    with pytest.raises(RuntimeError):
        replay_bag(source, tmp_path / "out", FailsOnSecondFrame(), progress=False)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_outputs_are_written_right_after_their_image_although_frames_are_queued_ahead(tmp_path, pipeline):
    """The replay keeps the next frame on the pipeline while it writes this one's messages; the
    output bag still holds every message in the order a frame-by-frame replay writes them."""
    import sqlite3

    source = write_bag(tmp_path / "in", "sqlite3", frames=4, corrupt={1})
    replay_bag(source, tmp_path / "out", pipeline, progress=False)
    (db,) = (tmp_path / "out").glob("*.db3")
    with sqlite3.connect(db) as conn:
        written = [name for (name,) in conn.execute(
            "SELECT topics.name FROM messages JOIN topics ON topics.id = messages.topic_id ORDER BY messages.id")]
    per_frame = len(OUTPUTS) + len(EXTRA) + len(CLOUDS) - 1  # LabelInfo only once, with the first frame
    inputs = ["/chatter", "/cam/image_raw"]
    expected = []
    for index in range(4):
        expected += inputs
        if index != 1:  # the corrupt message is copied but yields no outputs
            expected += ["out"] * (per_frame + (index == 0))
        expected.append("/cam/camera_info")
    assert ["out" if name not in {*inputs, "/cam/camera_info"} else name for name in written] == expected


def test_messages_are_not_held_back_without_frames_to_wait_for(tmp_path, pipeline, monkeypatch):
    """Copies wait only behind a queued frame, and never more than MAX_QUEUED_WRITES of them: a
    camera that stops while other sensors record on must not pile the bag up in memory."""
    from hydranet_ros.replay import bag as bag_module

    replays = []
    original_init = bag_module._Replay.__init__

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        replays.append(self)

    monkeypatch.setattr(bag_module._Replay, "__init__", recording_init)
    monkeypatch.setattr(bag_module, "MAX_QUEUED_WRITES", 8)
    source = tmp_path / "in"
    with Writer(source, version=8, storage_plugin=STORAGES["sqlite3"]) as writer:
        image = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        chatter = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE)
        msg = T["sensor_msgs/msg/Image"](header=header(0), **image_fields(camera_frame(0), "rgb8"))
        writer.write(image, bag_time(0), STORE.serialize_cdr(msg, msg.__msgtype__))
        for i in range(200):  # the camera stopped; the rest of the drive is other sensors
            writer.write(chatter, bag_time(1) + i, STORE.serialize_cdr(T["std_msgs/msg/String"](data=f"{i}"), "std_msgs/msg/String"))
    report = replay_bag(source, tmp_path / "out", pipeline, progress=False)
    assert (report.processed, report.copied) == (1, 201)
    assert replays[-1].peak_queued_writes <= 8 + 1

    # Every image rejected: nothing to wait for, so every copy is written as it comes.
    report = replay_bag(source, tmp_path / "out2", pipeline, progress=False, max_pixels=1)
    assert (report.processed, report.copied) == (0, 201)
    assert replays[-1].peak_queued_writes == 0


def test_a_pipeline_with_only_process_still_replays(tmp_path, pipeline):
    class ProcessOnly:
        preset = pipeline.preset

        def process(self, frame, **kwargs):
            return pipeline.process(frame, **kwargs)

    report = replay_bag(write_bag(tmp_path / "in", "sqlite3", frames=2), tmp_path / "out", ProcessOnly(), progress=False)
    assert report.processed == 2


def test_outputs_record_the_qos_the_node_offers(tmp_path, pipeline):
    """rosbag2 replays a topic with the QoS recorded for it: LabelInfo must come back latched
    (transient local) for subscribers that join late, the images reliable as the node offers them."""
    from rosbags.interfaces import QosDurability, QosReliability

    replay_bag(write_bag(tmp_path / "in", "mcap", frames=1), tmp_path / "out", pipeline, progress=False)
    with Reader(tmp_path / "out") as reader:
        offered = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    [latched] = offered[LABEL_INFO]
    assert (latched.durability, latched.reliability, latched.depth) == (QosDurability.TRANSIENT_LOCAL, QosReliability.RELIABLE, 1)
    for topic in [*OUTPUTS, *CLOUDS]:
        [profile] = offered[topic]
        assert (profile.durability, profile.reliability) == (QosDurability.VOLATILE, QosReliability.RELIABLE), topic
    assert offered["/chatter"] == []  # an input recorded without QoS is copied as it was
