"""`hydranet bag` with several cameras: one pass, their frames batched through the network, every
camera's outputs under its own namespace with its own headers, equal to replaying each camera
alone."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from hydranet_ros.commands import bag as bag_command
from hydranet_ros.commands.common import run_command as report_errors
from hydranet_ros.io.bag_topics import choose_cameras
from hydranet_ros.outputs import plan
from hydranet_ros.replay.bag import BagError, replay_bag
from test_bag import STORE, T, camera_frame, pipeline  # noqa: F401 - the fixture

CAMERAS = {
    # namespace: (frame_id, width, height, stamp seconds of its first frame)
    "/front": ("front_optical", 96, 72, 1000),
    "/left": ("left_optical", 96, 72, 2000),
    "/rear": ("rear_optical", 120, 40, 3000),  # another aspect ratio
}
TOPICS = [spec.topic for spec in plan.OUTPUTS.values()] + [plan.LABEL_INFO_TOPIC]


def header(camera: str, index: int):
    frame_id, _, _, sec = CAMERAS[camera]
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec + index, nanosec=7), frame_id=frame_id)


def write_cameras_bag(path: Path, *, frames: int = 2, stop_after: dict[str, int] | None = None) -> Path:
    """Each camera's frames and CameraInfos, interleaved in time as drivers record them."""
    stop_after = stop_after or {}
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {camera: (writer.add_connection(f"{camera}/image_raw", "sensor_msgs/msg/Image", typestore=STORE),
                                writer.add_connection(f"{camera}/camera_info", "sensor_msgs/msg/CameraInfo", typestore=STORE))
                       for camera in CAMERAS}
        for index in range(frames):
            for order, (camera, (_, width, height, _)) in enumerate(CAMERAS.items()):
                if index >= stop_after.get(camera, frames):
                    continue
                rgb = cv2.resize(camera_frame(index + order), (width, height), interpolation=cv2.INTER_AREA)
                image = T["sensor_msgs/msg/Image"](header=header(camera, index), height=height, width=width,
                                                   encoding="rgb8", is_bigendian=0, step=width * 3, data=rgb.ravel())
                focal = 0.8 * width
                info = T["sensor_msgs/msg/CameraInfo"](
                    header=header(camera, index), height=height, width=width, distortion_model="plumb_bob",
                    d=np.zeros(5), k=np.array([focal, 0, width / 2, 0, focal, height / 2, 0, 0, 1.0]),
                    r=np.eye(3).reshape(-1), p=np.array([focal, 0, width / 2, 0, 0, focal, height / 2, 0, 0, 0, 1.0, 0]),
                    binning_x=0, binning_y=0,
                    roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
                at = 1_000_000_000 + index * 100_000_000 + order * 1_000_000
                image_conn, info_conn = connections[camera]
                writer.write(image_conn, at, STORE.serialize_cdr(image, "sensor_msgs/msg/Image"))
                writer.write(info_conn, at + 10, STORE.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
    return path


INPUTS = {f"{camera}/{name}" for camera in CAMERAS for name in ("image_raw", "camera_info")}


def read_outputs(path: Path) -> dict[str, list]:
    """Every message the replay added, by topic (the copied inputs left out)."""
    found: dict[str, list] = {}
    with Reader(path) as reader:
        for connection, _, raw in reader.messages():
            if connection.topic not in INPUTS:
                found.setdefault(connection.topic, []).append(STORE.deserialize_cdr(raw, connection.msgtype))
    return found


def test_every_camera_gets_its_outputs_with_its_own_headers_in_batches(tmp_path, pipeline):  # noqa: F811
    source = write_cameras_bag(tmp_path / "in", frames=2)
    report = replay_bag(source, tmp_path / "out", pipeline, topic=[f"{c}/image_raw" for c in CAMERAS], progress=False)
    assert (report.frames, report.processed, report.batches) == (6, 6, 2)  # two batches of three
    assert {topic: (r.frames, r.processed) for topic, r in report.per_camera.items()} == {
        f"{c}/image_raw": (2, 2) for c in CAMERAS}
    assert "6/6 frame(s) of 3 cameras processed" in report.summary() and "in 2 batch(es)" in report.summary()
    outputs = read_outputs(tmp_path / "out")
    assert set(outputs) == {f"{c}/{topic}" for c in CAMERAS for topic in TOPICS}
    for camera, (frame_id, width, height, sec) in CAMERAS.items():
        for topic in TOPICS:
            messages = outputs[f"{camera}/{topic}"]
            stamps = [(m.header.frame_id, m.header.stamp.sec) for m in messages]
            expected = [(frame_id, sec), (frame_id, sec + 1)] if topic != plan.LABEL_INFO_TOPIC else [(frame_id, sec)]
            assert stamps == expected, f"{camera}/{topic}"
        labels = outputs[f"{camera}/semantic/labels"][0]
        scale = min(64 / width, 48 / height)  # the test pipeline's 64x48 box, aspect kept
        assert (labels.width, labels.height) == (round(width * scale), round(height * scale))


def test_batched_cameras_equal_each_camera_replayed_alone(tmp_path, pipeline):  # noqa: F811
    source = write_cameras_bag(tmp_path / "in", frames=2)
    replay_bag(source, tmp_path / "all", pipeline, topic=[f"{c}/image_raw" for c in CAMERAS], progress=False)
    together = read_outputs(tmp_path / "all")
    for camera in CAMERAS:
        report = replay_bag(source, tmp_path / camera.strip("/"), pipeline, topic=f"{camera}/image_raw", progress=False)
        assert report.batches == 2 and report.processed == 2
        alone = read_outputs(tmp_path / camera.strip("/"))
        for topic in (f"{camera}/semantic/labels", f"{camera}/semantic/color", f"{camera}/depth/camera_info"):
            for a, b in zip(alone[topic], together[topic]):
                for name in ("data", "k", "p"):
                    if hasattr(a, name):
                        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=topic)
        for a, b in zip(alone[f"{camera}/depth/image"], together[f"{camera}/depth/image"]):
            np.testing.assert_allclose(b.data.view(np.float32), a.data.view(np.float32), rtol=1e-5)
        for topic in (f"{camera}/semantic/confidence", f"{camera}/semantic/points", f"{camera}/semantic/obstacles"):
            # The semantic 3D outputs (from the camera's own CameraInfo) as the camera alone gets them.
            assert len(alone[topic]) == len(together[topic]) == 2, topic
            for a, b in zip(alone[topic], together[topic]):
                assert (a.width, a.height, a.header.frame_id) == (b.width, b.height, b.header.frame_id), topic
                if topic.endswith("confidence"):
                    np.testing.assert_allclose(b.data.view(np.float32), a.data.view(np.float32), rtol=1e-5)
                else:  # x, y, z and confidence of each 24-byte point; its label exact
                    pa, pb = a.data.reshape(-1, 24), b.data.reshape(-1, 24)
                    np.testing.assert_allclose(pb.view(np.float32)[:, [0, 1, 2, 4]], pa.view(np.float32)[:, [0, 1, 2, 4]],
                                               rtol=1e-5, err_msg=topic)
                    np.testing.assert_array_equal(pb[:, 20], pa[:, 20], err_msg=topic)


def test_a_camera_that_stops_leaves_the_others_batched(tmp_path, pipeline):  # noqa: F811
    source = write_cameras_bag(tmp_path / "in", frames=3, stop_after={"/rear": 1})
    report = replay_bag(source, tmp_path / "out", pipeline, topic=[f"{c}/image_raw" for c in CAMERAS], progress=False)
    assert report.processed == 7 and report.per_camera["/rear/image_raw"].processed == 1
    assert report.batches == 3  # front+left+rear, then front+left twice


def test_several_cameras_from_the_command_line(tmp_path, pipeline, monkeypatch, capsys):  # noqa: F811
    source = write_cameras_bag(tmp_path / "in", frames=1)
    batches = []
    monkeypatch.setattr(bag_command, "pipeline_from_args", lambda args, max_batch=1: batches.append(max_batch) or pipeline)
    parser = argparse.ArgumentParser()
    bag_command.add_arguments(parser)

    def run(*argv):
        return report_errors("bag", bag_command.run, parser.parse_args([str(source), *argv]))

    assert run(str(tmp_path / "all"), "--all-cameras") == 0
    assert "3/3 frame(s) of 3 cameras processed" in capsys.readouterr().out and batches == [3]
    assert run(str(tmp_path / "two"), "--topic", "/front/image_raw", "--topic", "/rear/image_raw") == 0
    assert "2/2 frame(s) of 2 cameras processed" in capsys.readouterr().out and batches[-1] == 2
    assert run(str(tmp_path / "none")) == 2  # several image topics and none chosen
    assert "--all-cameras" in capsys.readouterr().err


def test_cameras_that_would_share_output_topics_are_refused():
    topics = {"/cam/image_raw": "sensor_msgs/msg/Image", "/cam/image_rect": "sensor_msgs/msg/Image",
              "/left/image_raw": "sensor_msgs/msg/Image"}
    with pytest.raises(BagError, match=r"/cam/image_raw and /cam/image_rect are in one namespace") as caught:
        choose_cameras(topics, all_cameras=True)
    assert caught.value.reason == "cameras_share_a_namespace"
    with pytest.raises(BagError, match="named twice"):
        choose_cameras(topics, chosen=["/left/image_raw", "/left/image_raw"])
    with pytest.raises(BagError, match="leave --topic out"):
        choose_cameras(topics, chosen=["/left/image_raw"], all_cameras=True)
    assert [c.namespace for c in choose_cameras(topics, chosen=["/cam/image_rect", "/left/image_raw"])] == ["/cam", "/left"]
