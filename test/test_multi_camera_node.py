"""One node, several cameras: the node's own code against rclpy_standin (the launch test
test/ros/test_multi_camera.py runs the installed node on ROS 2).

Each camera gets a frame with its own stamp and frame_id (and one of them another size); every
output of every camera must carry that camera's header and equal, field for field, what the
single-camera node publishes for the same frame: the batch goes through the network once, and
each camera's messages through the single camera's code.
"""

from __future__ import annotations

import array

import numpy as np
import pytest

import rclpy_standin as ros
from hydranet_ros.outputs import plan
from test_node_standin import bring_up, make_node, publishers, subscribe_all, subscription
from test_node_standin import weights  # noqa: F401 - the fixture
from test_shells_agree import plain, without_timings

CAMERAS = {
    # name: (stamp seconds, frame_id, width, height)
    "front": (101, "front_optical", 96, 64),
    "left": (202, "left_optical", 96, 64),
    "rear": (303, "rear_optical", 120, 40),  # another aspect ratio: its own network size
}
TOPICS = [spec.topic for spec in plan.OUTPUTS.values()]


def frame_msg(sec, frame_id, width, height, seed):
    rng = np.random.default_rng(seed)
    msg = ros.Image(header=ros.Header(stamp=ros.Time(sec=sec, nanosec=7), frame_id=frame_id), height=height,
                    width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
    msg.data = array.array("B", rng.integers(0, 255, (height, width, 3), dtype=np.uint8).tobytes())
    return msg


def info_msg(sec, frame_id, width, height):
    info = ros.CameraInfo(header=ros.Header(stamp=ros.Time(sec=sec, nanosec=7), frame_id=frame_id), height=height,
                          width=width, distortion_model="plumb_bob")
    focal = 0.9 * width
    info.k = np.array([focal, 0.0, width / 2 - 0.5, 0.0, focal, height / 2 - 0.5, 0.0, 0.0, 1.0])
    info.p = np.array([focal, 0.0, width / 2 - 0.5, 0.0, 0.0, focal, height / 2 - 0.5, 0.0, 0.0, 0.0, 1.0, 0.0])
    info.r = np.eye(3).reshape(-1)
    info.d = array.array("d", [0.0] * 5)
    return info


def send_round(node, sec_offset=0):
    for index, (name, (sec, frame_id, width, height)) in enumerate(CAMERAS.items()):
        subscription(node, f"{name}/camera_info").callback(info_msg(sec + sec_offset, frame_id, width, height))
        subscription(node, f"{name}/image").callback(frame_msg(sec + sec_offset, frame_id, width, height, seed=index))


@pytest.fixture
def multi(monkeypatch, weights):  # noqa: F811
    module, node = make_node(monkeypatch, weights, cameras=list(CAMERAS), batch_timeout_ms=1000.0)
    bring_up(module, node)
    subscribe_all(node)
    yield node
    node.release()


def test_each_camera_subscribes_and_publishes_under_its_own_name(multi):
    topics = set(publishers(multi))
    for name in CAMERAS:
        assert {f"{name}/{topic}" for topic in TOPICS} | {f"{name}/{plan.LABEL_INFO_TOPIC}"} <= topics
        assert subscription(multi, f"{name}/image") and subscription(multi, f"{name}/camera_info")
    assert not any(topic in topics for topic in TOPICS), "nothing at the node's own namespace"
    assert {s.topic for s in multi.subscriptions} == {f"{n}/{t}" for n in CAMERAS for t in ("image", "camera_info")}


def test_every_output_of_every_camera_carries_its_own_header(multi):
    send_round(multi)  # each camera's first frame: a camera counts as live from its first frame
    assert multi._worker.wait_idle(60)
    send_round(multi, sec_offset=1000)  # all live now: one batch of three
    assert multi._worker.wait_idle(60)
    assert multi._worker.batch_stats().largest == 3
    pubs = publishers(multi)
    for name, (sec, frame_id, width, height) in CAMERAS.items():
        for topic in TOPICS + [plan.LABEL_INFO_TOPIC]:
            sent = pubs[f"{name}/{topic}"].sent
            assert sent, f"{name}/{topic}"
            stamps = {(m.header.stamp.sec, m.header.frame_id) for m in sent}
            expected = {(sec, frame_id), (sec + 1000, frame_id)} if topic != plan.LABEL_INFO_TOPIC else {(sec, frame_id)}
            assert stamps == expected, f"{name}/{topic} carried another camera's header: {stamps}"
        fused = pubs[f"{name}/hydranet/result"].sent[-1]
        assert fused.labels.header.frame_id == frame_id and fused.camera_info.header.frame_id == frame_id
        # 'network' output size: each frame fitted into 64x32, its own aspect kept
        scale = min(64 / width, 32 / height)
        assert (fused.labels.width, fused.labels.height) == (round(width * scale), round(height * scale))


def test_batched_cameras_publish_what_the_single_camera_node_publishes(monkeypatch, weights, multi):  # noqa: F811
    send_round(multi)
    assert multi._worker.wait_idle(60)
    send_round(multi, sec_offset=1000)
    assert multi._worker.wait_idle(60)
    assert multi._worker.batch_stats().largest == 3
    batched = publishers(multi)
    for index, (name, (sec, frame_id, width, height)) in enumerate(CAMERAS.items()):
        module, single = make_node(monkeypatch, weights)
        bring_up(module, single)
        subscribe_all(single)
        subscription(single, "camera_info").callback(info_msg(sec + 1000, frame_id, width, height))
        subscription(single, "image").callback(frame_msg(sec + 1000, frame_id, width, height, seed=index))
        assert single._worker.wait_idle(60)
        alone = publishers(single)
        for topic in TOPICS:
            want, got = plain(alone[topic].sent[-1]), plain(batched[f"{name}/{topic}"].sent[-1])
            if topic == plan.OUTPUTS["fused"].topic:
                want, got = without_timings(want), without_timings(got)
                same_depth(got.pop("depth"), want.pop("depth"), f"{name}/{topic}")
            elif topic in (plan.OUTPUTS["depth"].topic, plan.OUTPUTS["confidence"].topic):
                same_depth(got, want, f"{name}/{topic}")
                continue
            elif topic in (plan.OUTPUTS["points"].topic, plan.OUTPUTS["obstacles"].topic):
                same_cloud(got, want, f"{name}/{topic}")
                continue
            assert got == want, f"{name}/{topic}"
        single.release()


def same_cloud(got, want, where):
    """Point clouds equal but for the depth's float rounding (see same_depth): the same points
    (count, layout, header), x/y/z and confidence to 1e-5, colour and label exact."""
    got_data, want_data = got.pop("data")[1], want.pop("data")[1]
    assert got == want, where
    got_points, want_points = (np.frombuffer(d, np.uint8).reshape(-1, 24) for d in (got_data, want_data))
    floats = [0, 1, 2, 4]  # x, y, z, confidence (float32 words); rgb (3) and label (byte 20) exact
    np.testing.assert_allclose(got_points.view(np.float32)[:, floats], want_points.view(np.float32)[:, floats],
                               rtol=1e-5, err_msg=where)
    np.testing.assert_array_equal(got_points[:, 12:16], want_points[:, 12:16], err_msg=where)
    np.testing.assert_array_equal(got_points[:, 20], want_points[:, 20], err_msg=where)


def same_depth(got, want, where):
    """Depth (and confidence) images equal but for float rounding: a batched frame runs with other
    threads than one alone (a CPU engine's lane has its own threads; torch's oneDNN splits a
    batch differently from one frame; measured: at most 2e-7 relative); labels, colours,
    overlays, CameraInfo and headers are compared exactly."""
    got_data, want_data = got.pop("data")[1], want.pop("data")[1]
    assert got == want, where
    np.testing.assert_allclose(np.frombuffer(got_data, np.float32), np.frombuffer(want_data, np.float32),
                               rtol=1e-5, err_msg=where)


def test_diagnostics_report_each_camera_and_the_batching(multi):
    send_round(multi)
    assert multi._worker.wait_idle(60)
    subscription(multi, "front/image").callback(ros.Image(header=ros.Header(frame_id="front_optical"), height=4,
                                                         width=4, encoding="nv12", step=4))  # a bad frame
    multi._publish_diagnostics()
    [report] = publishers(multi)["/diagnostics"].sent[-1:]
    statuses = {s.name: {kv.key: kv.value for kv in s.values} for s in report.status}
    node = "/perception_node: HydraNet perception"
    assert set(statuses) == {node} | {f"{node}, camera {name}" for name in CAMERAS}
    assert statuses[node]["cameras"] == "3" and int(statuses[node]["batches"]) >= 1
    for name in CAMERAS:
        values = statuses[f"{node}, camera {name}"]
        assert values["camera"] == name and values["frames_processed"] == "1"
        for key in ("input_rate_hz", "output_rate_hz", "frames_dropped", "latency_p95_ms"):
            assert key in values, (name, key)
    front = statuses[f"{node}, camera front"]
    assert front["frames_rejected"] == "1" and any(key.startswith("rejected.") for key in front)
    assert statuses[f"{node}, camera left"]["frames_rejected"] == "0"


def test_each_camera_gets_min_confidence_and_no_cloud_without_its_camera_info(multi):
    """The per-frame plan of the single-camera node for every camera: a live min_confidence
    marks each camera's uncertain labels 255 and re-latches its LabelInfo; a camera without
    CameraInfo gets its images but no cloud, and only its /diagnostics status says why."""
    send_round(multi)
    assert multi._worker.wait_idle(60)
    pubs = publishers(multi)
    threshold = float(np.median(np.frombuffer(pubs["front/semantic/confidence"].sent[-1].data, np.float32)))
    [result] = multi.set_parameters([ros.Parameter("min_confidence", value=threshold)])
    assert result.successful, result.reason
    clouds = {name: len(pubs[f"{name}/semantic/points"].sent) for name in CAMERAS}
    for index, (name, (sec, frame_id, width, height)) in enumerate(CAMERAS.items()):
        if name != "rear":  # rear: images only, no CameraInfo from now on
            subscription(multi, f"{name}/camera_info").callback(info_msg(sec + 1000, frame_id, width, height))
        subscription(multi, f"{name}/image").callback(frame_msg(sec + 1000, frame_id, width, height, seed=index))
    assert multi._worker.wait_idle(60)
    multi._cameras[[c.name for c in multi._cameras].index("rear")].camera_info = None  # as if none had come
    subscription(multi, "rear/image").callback(frame_msg(2000, "rear_optical", 120, 40, seed=9))
    assert multi._worker.wait_idle(60)
    for name in CAMERAS:
        assert [m.threshold for m in pubs[f"{name}/semantic/label_info"].sent] == [0.0, threshold], name
        labels = np.frombuffer(pubs[f"{name}/semantic/labels"].sent[-1].data, np.uint8)
        confidence = np.frombuffer(pubs[f"{name}/semantic/confidence"].sent[-1].data, np.float32)
        np.testing.assert_array_equal(labels == 255, confidence < threshold, err_msg=name)
        assert pubs[f"{name}/hydranet/result"].sent[-1].min_confidence == threshold
    assert pubs["rear/semantic/labels"].sent[-1].header.stamp.sec == 2000
    assert len(pubs["rear/semantic/points"].sent) == clouds["rear"] + 1  # the frame with CameraInfo only
    for name in ("front", "left"):
        assert len(pubs[f"{name}/semantic/points"].sent) == clouds[name] + 1
        assert 255 in np.frombuffer(pubs[f"{name}/semantic/points"].sent[-1].data, np.uint8).reshape(-1, 24)[:, 20]
    multi._publish_diagnostics()
    [report] = publishers(multi)["/diagnostics"].sent[-1:]
    node = "/perception_node: HydraNet perception"
    statuses = {s.name: s for s in report.status}
    rear = statuses[f"{node}, camera rear"]
    assert "no point cloud" in rear.message and "camera_info" in rear.message
    assert {kv.key: kv.value for kv in rear.values}["points_skipped_no_camera_info"] == "1"
    for name in ("front", "left"):
        assert "no point cloud" not in statuses[f"{node}, camera {name}"].message


def test_a_bad_camera_list_refuses_configure_with_the_reason(monkeypatch, weights):  # noqa: F811
    module, node = make_node(monkeypatch, weights, cameras=["front", "front"])
    assert node.on_configure(ros.LifecycleState()) == ros.TransitionCallbackReturn.FAILURE
    assert any("cameras must be distinct" in message for _, message in node.logger.records)
