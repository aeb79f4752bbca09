"""Semantic 3D: depth + labels + CameraInfo -> labelled points (outputs/cloud.py), per-pixel
confidence, the class lists, PointCloud2 layout, PLY files and `hydranet infer --points`.

The geometry is checked against points computed by hand, against a synthetic street whose depth
is exact (its road must be a plane 1.65 m below the camera), and on the real KITTI frame with the
shipped model and KITTI's calibration (the issue's acceptance).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from hydranet_ros.errors import UsageError
from hydranet_ros.io.camera_info import read_camera_calibration, scale_camera_info
from hydranet_ros.io.ply import VERTEX_DTYPE, PlyError, read_ply, write_ply
from hydranet_ros.outputs import cloud, fields as output_fields
from hydranet_ros.outputs.choices import CloudSettings, class_selection, obstacle_classes, point_classes
from hydranet_ros.presets import PRESETS
from hydranet_ros.runtime.network_output import class_scores, labels_and_confidence
from support import KITTI_FRAME, REPO

sys.path.insert(0, str(REPO / "tools"))
from ground_plane import fit_plane  # noqa: E402

KITTI = PRESETS["kitti"]
KEEP_ALL = cloud.label_mask(frozenset(range(256)))
KITTI_CALIBRATION = REPO / "config" / "cameras" / "kitti_2011_09_30_cam2.yaml"


def camera_info(width, height, fx, fy, cx, cy, *, p=None, **extra):
    """A CameraInfo-like object, as the node receives one."""
    k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    p = p if p is not None else [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return SimpleNamespace(width=width, height=height, k=k, p=p, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], d=[],
                           distortion_model="", binning_x=extra.get("binning_x", 0),
                           binning_y=extra.get("binning_y", 0), roi=extra.get("roi"))


def xyz(points):
    return np.stack([points["x"], points["y"], points["z"]], axis=-1)


# -- geometry -----------------------------------------------------------------------------------


def test_unprojection_matches_points_computed_by_hand():
    # fx 100, fy 200, principal point (1.5, 0.5); a 2x4 depth image.
    intrinsics = cloud.Intrinsics(fx=100.0, fy=200.0, cx=1.5, cy=0.5)
    depth = np.array([[2.0, 4.0, 1.0, 10.0], [3.0, np.nan, 0.0, 5.0]], np.float32)
    labels = np.array([[1, 2, 3, 4], [5, 1, 2, 3]], np.uint8)
    points = cloud.cloud_points(depth, labels, None, intrinsics, keep=KEEP_ALL, organized=True,
                                palette_packed=cloud.packed_palette(KITTI.palette))
    assert points.shape == (2, 4)
    # (u, v) = (0, 0), z 2: x = (0 - 1.5) * 2 / 100 = -0.03, y = (0 - 0.5) * 2 / 200 = -0.005
    np.testing.assert_allclose(xyz(points)[0, 0], [-0.03, -0.005, 2.0], rtol=1e-6)
    # (3, 0), z 10: x = 1.5 * 10 / 100 = 0.15, y = -0.5 * 10 / 200 = -0.025
    np.testing.assert_allclose(xyz(points)[0, 3], [0.15, -0.025, 10.0], rtol=1e-6)
    # (3, 1), z 5: x = 0.075, y = 0.5 * 5 / 200 = 0.0125
    np.testing.assert_allclose(xyz(points)[1, 3], [0.075, 0.0125, 5.0], rtol=1e-6)
    # NaN and 0 depth: no point (NaN in an organised cloud); the label stays for the grid.
    assert np.isnan(xyz(points)[1, 1]).all() and np.isnan(xyz(points)[1, 2]).all()
    np.testing.assert_array_equal(points["label"], labels)

    dense = cloud.cloud_points(depth, labels, None, intrinsics, keep=KEEP_ALL,
                               palette_packed=cloud.packed_palette(KITTI.palette))
    assert dense.shape == (6,)  # valid points only, row by row
    np.testing.assert_array_equal(dense["z"], [2.0, 4.0, 1.0, 10.0, 3.0, 5.0])
    np.testing.assert_allclose(xyz(dense)[5], [0.075, 0.0125, 5.0], rtol=1e-6)


def test_stride_max_range_and_classes():
    intrinsics = cloud.Intrinsics(fx=10.0, fy=10.0, cx=0.0, cy=0.0)
    depth = np.full((4, 6), 3.0, np.float32)
    labels = np.zeros((4, 6), np.uint8)
    labels[:, 3:] = 5
    colour = {"palette_packed": cloud.packed_palette(KITTI.palette)}
    strided = cloud.cloud_points(depth, labels, None, intrinsics, keep=KEEP_ALL, stride=2, organized=True, **colour)
    assert strided.shape == (2, 3)
    # Strided columns 0, 2, 4 are pixels u = 0, 2, 4: x = u * 3 / 10.
    np.testing.assert_allclose(strided["x"][0], [0.0, 0.6, 1.2], rtol=1e-6)
    np.testing.assert_allclose(strided["y"][:, 0], [0.0, 0.6], rtol=1e-6)
    # Range is the distance from the camera, not z: pixel (u=5, v=3) is at sqrt(1.5^2+0.9^2+3^2) = 3.47 m.
    within = cloud.cloud_points(depth, labels, None, intrinsics, keep=KEEP_ALL, max_range_m=3.3, **colour)
    assert np.all(np.linalg.norm(xyz(within), axis=1) <= 3.3) and 0 < len(within) < 24
    assert np.linalg.norm(xyz(cloud.cloud_points(depth, labels, None, intrinsics, keep=KEEP_ALL, **colour)),
                          axis=1).max() == pytest.approx(math.sqrt(1.5 ** 2 + 0.9 ** 2 + 9), rel=1e-6)
    cars = cloud.cloud_points(depth, labels, None, intrinsics, keep=cloud.label_mask(frozenset({5})), **colour)
    assert len(cars) == 12 and set(cars["label"]) == {5}


def test_intrinsics_come_from_p_as_image_geometry_reads_them_else_k():
    info = camera_info(640, 480, 500.0, 510.0, 320.0, 240.0, p=[450.0, 0, 300.0, -45.0, 0, 455.0, 230.0, 0, 0, 0, 1, 0])
    assert cloud.Intrinsics.from_camera_info(vars(info)) == cloud.Intrinsics(450.0, 455.0, 300.0, 230.0)
    info.p = [0.0] * 12  # a driver that fills K only
    assert cloud.Intrinsics.from_camera_info(vars(info)) == cloud.Intrinsics(500.0, 510.0, 320.0, 240.0)


def test_a_resized_binned_roi_frame_unprojects_along_the_sensor_rays():
    """The cloud takes its camera from the CameraInfo published with the depth image (scaled to
    the output size, binning and ROI folded in): an output pixel's point lies on the ray through
    the same spot of the full-resolution sensor."""
    fx, fy, cx, cy = 800.0, 820.0, 639.5, 359.5
    # The camera sends a 2x binned 800x400 region at (200, 100) of a 1280x720 sensor: 400x200 frames.
    info = camera_info(1280, 720, fx, fy, cx, cy, binning_x=2, binning_y=2,
                       roi=SimpleNamespace(x_offset=200, y_offset=100, width=800, height=400, do_rectify=False))
    # The node publishes 100x50 (a quarter of the 400x200 frame).
    intrinsics = cloud.Intrinsics.from_camera_info(scale_camera_info(info, 100, 50))
    depth = np.full((50, 100), 7.0, np.float32)
    points = cloud.cloud_points(depth, np.zeros((50, 100), np.uint8), None, intrinsics, keep=KEEP_ALL, organized=True,
                                palette_packed=cloud.packed_palette(KITTI.palette))
    # Output pixel (u', v') covers sensor pixels whose centre is u = 200 + (u' + 0.5) * 8 - 0.5 (8 = 2 binning x 4 resize).
    for u_out, v_out in ((0, 0), (37, 11), (99, 49)):
        u_sensor = 200 + (u_out + 0.5) * 8 - 0.5
        v_sensor = 100 + (v_out + 0.5) * 8 - 0.5
        expected = [(u_sensor - cx) / fx * 7.0, (v_sensor - cy) / fy * 7.0, 7.0]
        np.testing.assert_allclose(xyz(points)[v_out, u_out], expected, rtol=1e-5)


def test_a_synthetic_street_with_exact_depth_puts_the_road_on_a_plane_1_65_m_below_the_camera():
    from hydranet_ros.train.synthetic import ROAD, render_scene

    scene = render_scene(np.random.default_rng(7), size=(320, 96))
    k = scene["camera_k"]
    info = camera_info(320, 96, k[0, 0], k[1, 1], k[0, 2], k[1, 2])
    intrinsics = cloud.Intrinsics.from_camera_info(scale_camera_info(info, 320, 96))
    depth = np.where(scene["depth_m"] > 0, scene["depth_m"], np.nan).astype(np.float32)
    road = cloud.cloud_points(depth, scene["labels"], None, intrinsics, keep=cloud.label_mask(frozenset({ROAD})),
                              palette_packed=cloud.packed_palette(KITTI.palette))
    assert len(road) > 1000
    fit = fit_plane(xyz(road), inlier_m=0.05)
    assert fit.height_m == pytest.approx(1.65, rel=0.02)
    assert fit.tilt_deg < 1.0 and fit.inliers > 0.95 * fit.points  # flat ground, camera level


def test_the_real_kitti_frame_with_kitti_calibration_puts_the_road_about_1_65_m_below(tmp_path):
    """The acceptance: `hydranet infer --camera-info <KITTI calibration> --points` on the KITTI
    sample with the shipped model; the road points' plane is about 1.65 m below the camera."""
    done = subprocess.run(
        [sys.executable, "-m", "hydranet_ros.cli", "infer", str(KITTI_FRAME), "-o", str(tmp_path), "--points",
         "--camera-info", str(KITTI_CALIBRATION), "--threads", "1", "--device", "cpu"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    vertices, comments = read_ply(tmp_path / "000099_points.ply")
    assert "label 2 road" in comments
    road = vertices[vertices["label"] == 2]
    fit = fit_plane(xyz(road))
    # KITTI's camera is 1.65 m above the road. Measured with the shipped model at its default size
    # (2026-11-29, evening): 1.677 m, tilt 2.5 deg, 88 % of the road points within 0.15 m of the plane; the
    # error is the model's depth on a real frame (README: "Semantic 3D"), the geometry is exact
    # (the synthetic street above).
    assert fit.height_m == pytest.approx(1.65, abs=0.15), fit
    assert fit.tilt_deg < 4.0 and fit.inliers > 0.7 * fit.points, fit


# -- confidence ---------------------------------------------------------------------------------


def test_confidence_is_the_softmax_probability_of_the_argmax_class():
    torch.manual_seed(0)
    segm = torch.randn(1, 6, 8, 10) * 4
    scores = class_scores(segm, (32, 40))
    labels, confidence = labels_and_confidence(scores)
    probabilities = torch.softmax(scores, dim=1)
    top, ids = probabilities.max(dim=1)
    torch.testing.assert_close(confidence, top, rtol=1e-5, atol=1e-6)
    assert torch.equal(labels, ids.to(torch.uint8))
    assert float(confidence.min()) >= 1 / 6 - 1e-6 and float(confidence.max()) <= 1.0
    # Asked for labels only, no softmax; for confidence only, no labels.
    assert labels_and_confidence(scores, confidence=False)[1] is None
    assert labels_and_confidence(scores, labels=False)[0] is None
    # Huge scores do not overflow.
    assert torch.isfinite(labels_and_confidence(scores * 1e4)[1]).all()


def test_the_pipeline_computes_confidence_only_when_asked(kitti_pipeline):
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    plain = kitti_pipeline.process(frame, outputs=frozenset({"labels", "depth"}))
    assert plain.confidence is None
    both = kitti_pipeline.process(frame, outputs=frozenset({"labels", "depth", "confidence"}))
    np.testing.assert_array_equal(both.labels, plain.labels)
    assert both.confidence.shape == both.labels.shape and both.confidence.dtype == np.float32
    assert 0.0 < both.confidence.min() and both.confidence.max() <= 1.0
    only = kitti_pipeline.process(frame, outputs=frozenset({"confidence"}))
    assert only.labels is None and only.depth_m is None
    np.testing.assert_array_equal(only.confidence, both.confidence)
    with pytest.raises(ValueError, match="unknown outputs"):
        kitti_pipeline.process(frame, outputs=frozenset({"labels", "confidance"}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the GPU check runs it)")
def test_confidence_on_cuda_matches_the_cpu(kitti_pipeline):
    """The CUDA path (its own streams and pinned downloads) hands the confidence back like the CPU's."""
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig

    torch.manual_seed(0)
    cuda = Pipeline.from_model(HydraNet(KITTI).eval(), KITTI, PipelineConfig(input_size=(64, 32), device="cuda"))
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    outputs = frozenset({"labels", "confidence"})
    on_gpu, on_cpu = cuda.process(frame, outputs=outputs), kitti_pipeline.process(frame, outputs=outputs)
    np.testing.assert_allclose(on_gpu.confidence, on_cpu.confidence, atol=2e-3)
    assert (on_gpu.labels == on_cpu.labels).mean() > 0.99


@pytest.fixture(scope="module")
def kitti_pipeline():
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig

    torch.manual_seed(0)
    return Pipeline.from_model(HydraNet(KITTI).eval(), KITTI, PipelineConfig(input_size=(64, 32), device="cpu"))


def test_pixels_below_min_confidence_become_255_and_the_encodings():
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    confidence = np.array([[0.2, 0.5], [0.9, 0.49999]], np.float32)
    unknown = output_fields.labels_with_unknown(labels, confidence, 0.5)
    np.testing.assert_array_equal(unknown, [[255, 1], [2, 255]])
    assert output_fields.labels_with_unknown(labels, confidence, 0.0) is labels  # no threshold: no copy
    with pytest.raises(ValueError):
        output_fields.labels_with_unknown(labels, None, 0.5)
    np.testing.assert_array_equal(output_fields.confidence_image(confidence, "mono8"), [[51, 128], [230, 127]])
    assert output_fields.confidence_image(confidence, "32FC1").dtype == np.float32
    assert output_fields.label_info_content(KITTI.class_names, 0.5)["threshold"] == 0.5


# -- class lists ----------------------------------------------------------------------------------


def test_default_classes_per_preset():
    assert KITTI.classes_without_depth == ("sky",)
    assert KITTI.obstacle_classes == ("building", "vegetation", "car")
    nyu = PRESETS["nyud"]
    assert "floor" not in nyu.obstacle_classes and "ceiling" not in nyu.obstacle_classes
    assert {"wall", "chair", "person", "table"} <= set(nyu.obstacle_classes) and nyu.classes_without_depth == ()
    joint = PRESETS["nyud_kitti"]
    assert "kitti car" in joint.obstacle_classes and "kitti road" not in joint.obstacle_classes
    assert joint.classes_without_depth == ("kitti sky",)

    settings = CloudSettings()
    assert point_classes(settings, KITTI) == {1, 2, 3, 4, 5, 255}  # sky left out, unknown kept
    assert obstacle_classes(settings, KITTI) == {1, 4, 5}
    assert point_classes(CloudSettings(classes="road, car", exclude_classes=""), KITTI) == {2, 5}
    assert point_classes(CloudSettings(exclude_classes="sky,unknown"), KITTI) == {1, 2, 3, 4, 5}
    assert obstacle_classes(CloudSettings(obstacle_classes="car,unknown"), KITTI) == {5, 255}
    assert class_selection("", KITTI.class_names, ("car",)) == frozenset()
    with pytest.raises(ValueError, match=r"no class 'truck'.*classes: sky, building"):
        class_selection("car,truck", KITTI.class_names, ())


# -- PointCloud2 layout -------------------------------------------------------------------------

# sensor_msgs/PointField datatypes -> numpy, as the PointCloud2 documentation defines them.
DATATYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def read_cloud(msg: dict) -> np.ndarray:
    """A PointCloud2 reader written from the message's documentation, independent of the writer:
    the dtype comes from the message's own fields, offsets, datatypes and endianness."""
    order = ">" if msg["is_bigendian"] else "<"
    names, formats, offsets = [], [], []
    for name, offset, datatype, count in msg["fields"]:
        assert count == 1
        names.append(name)
        formats.append(order + DATATYPES[datatype])
        offsets.append(offset)
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": msg["point_step"]})
    assert msg["row_step"] == msg["point_step"] * msg["width"]
    assert len(msg["data"]) == msg["row_step"] * msg["height"]
    return np.frombuffer(bytes(msg["data"]), dtype=dtype).reshape(msg["height"], msg["width"])


def test_point_cloud_fields_have_the_layout_rviz2_and_pcl_read():
    intrinsics = cloud.Intrinsics(fx=50.0, fy=50.0, cx=3.5, cy=2.5)
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 20, (6, 8)).astype(np.float32)
    depth[0, 0] = np.nan
    labels = rng.integers(0, 6, (6, 8)).astype(np.uint8)
    confidence = rng.uniform(0.2, 1, (6, 8)).astype(np.float32)
    camera = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    for organized in (True, False):
        points = cloud.cloud_points(depth, labels, confidence, intrinsics, keep=KEEP_ALL, organized=organized,
                                    camera_rgb=camera)
        msg = cloud.point_cloud_fields(points)
        assert [f[0] for f in msg["fields"]] == ["x", "y", "z", "rgb", "confidence", "label"]
        # Fields do not overlap and fit the point; everything aligned to its size.
        ends = [offset + np.dtype(DATATYPES[datatype]).itemsize for _, offset, datatype, _ in msg["fields"]]
        starts = [offset for _, offset, _, _ in msg["fields"]]
        assert all(end <= start for end, start in zip(ends, starts[1:])) and ends[-1] <= msg["point_step"] == 24
        assert all(offset % np.dtype(DATATYPES[datatype]).itemsize == 0 for _, offset, datatype, _ in msg["fields"])
        read = read_cloud(msg)
        if organized:
            assert (msg["height"], msg["width"], msg["is_dense"]) == (6, 8, False)  # one NaN point
            np.testing.assert_array_equal(read["z"][1:, :], depth[1:, :])
            np.testing.assert_array_equal(read["label"], labels)
            np.testing.assert_array_equal(read["confidence"], confidence)
            # rgb: the camera's pixel, packed 0x00RRGGBB in the float's bytes (rviz2's RGB8).
            packed = read["rgb"].copy().view(np.uint32)
            np.testing.assert_array_equal(np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], -1), camera)
        else:
            assert (msg["height"], msg["width"], msg["is_dense"]) == (1, 47, True)
            assert np.isfinite(read["x"]).all()
    empty = cloud.point_cloud_fields(cloud.cloud_points(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8), None,
                                                        intrinsics, keep=KEEP_ALL,
                                                        palette_packed=cloud.packed_palette(KITTI.palette)))
    assert (empty["height"], empty["width"], len(empty["data"])) == (1, 0, 0)


def test_class_colours_are_the_palette():
    packed = cloud.packed_palette(KITTI.palette)
    assert packed[5] == (64 << 16) | (0 << 8) | 128  # car (64, 0, 128)
    assert packed[255] == 0  # unknown: black, as in semantic/color


# -- files: calibration, PLY, `hydranet infer --points` -----------------------------------------


def test_the_shipped_kitti_calibration_reads_as_a_camera_info():
    calibration = read_camera_calibration(KITTI_CALIBRATION)
    assert (calibration.width, calibration.height) == (1226, 370)
    assert calibration.k[0] == calibration.k[4] == pytest.approx(707.0912)
    scaled = scale_camera_info(calibration, 613, 185)  # half size
    assert cloud.Intrinsics.from_camera_info(scaled).fx == pytest.approx(707.0912 / 2)


@pytest.mark.parametrize("text, reason", [
    ("image_width: 640\n", "image_height must be positive integers"),
    ("image_width: 640\nimage_height: 480\n", "no camera_matrix"),
    ("image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0]}\n", "must be 3x3"),
    ("image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: [0, 0, 0, 0, 0, 0, 0, 0, 1]}\n",
     "not calibrated"),
    ("image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: [1, 0, .nan, 0, 1, 0, 0, 0, 1]}\n",
     "not finite"),
    ("[1, 2", "not a camera calibration YAML"),
])
def test_a_bad_calibration_file_is_refused_naming_the_file(tmp_path, text, reason):
    path = tmp_path / "camera.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=reason) as caught:
        read_camera_calibration(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_minimal_calibration_gets_p_from_k(tmp_path):
    path = tmp_path / "camera.yaml"
    path.write_text(yaml.safe_dump({"image_width": 640, "image_height": 480,
                                    "camera_matrix": {"rows": 3, "cols": 3, "data": [500, 0, 320, 0, 500, 240, 0, 0, 1]}}))
    calibration = read_camera_calibration(path)
    assert calibration.p == (500.0, 0.0, 320.0, 0.0, 0.0, 500.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert calibration.d == () and calibration.r == (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)


def test_ply_round_trip_and_no_partial_file(tmp_path, monkeypatch):
    vertices = np.zeros(3, VERTEX_DTYPE)
    vertices["x"], vertices["label"], vertices["red"], vertices["confidence"] = [1, 2, 3], [0, 5, 255], [9, 8, 7], 0.5
    path = tmp_path / "a_points.ply"
    write_ply(path, vertices, comments=["label 5 car"])
    read, comments = read_ply(path)
    np.testing.assert_array_equal(read, vertices)
    assert comments == ["label 5 car"]
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert "format binary_little_endian 1.0" in header and "element vertex 3" in header
    assert "property uchar label" in header and "property float confidence" in header
    assert len(path.read_bytes()) == len(header) + len("end_header\n") + 3 * 20  # 20 packed bytes a vertex

    # A write that fails leaves the earlier file as it was and no hidden partial file.
    import os as os_module

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os_module, "fsync", full_disk)
    with pytest.raises(PlyError, match="No space left"):
        write_ply(path, vertices[:1])
    assert read_ply(path)[0].shape == (3,) and [p.name for p in tmp_path.iterdir()] == ["a_points.ply"]


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "hydranet_ros.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_infer_points_refuses_without_a_calibration_before_loading_anything(tmp_path):
    done = cli("infer", KITTI_FRAME, "-o", tmp_path, "--points")
    assert done.returncode == 2 and "--points needs --camera-info FILE" in done.stderr
    done = cli("infer", KITTI_FRAME, "-o", tmp_path, "--points", "--focal", "700")
    assert done.returncode == 2 and "--focal gives the focal length only" in done.stderr
    done = cli("infer", KITTI_FRAME, "-o", tmp_path, "--points", "--camera-info", tmp_path / "missing.yaml")
    assert done.returncode == 2 and "missing.yaml: cannot read the camera calibration (No such file" in done.stderr
    # Without image_height: refused (depth's focal length and the camera model are read by one reader).
    focal_only = tmp_path / "focal_only.yaml"
    focal_only.write_text("image_width: 1226\ncamera_matrix: {rows: 3, cols: 3, data: [707, 0, 601, 0, 707, 183, 0, 0, 1]}\n")
    done = cli("infer", KITTI_FRAME, "-o", tmp_path / "out", "--points", "--camera-info", focal_only)
    assert done.returncode == 2 and "focal_only.yaml: not a usable camera calibration: image_width and image_height" \
        in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_infer_points_writes_the_cloud_of_the_published_depth_and_labels(tmp_path):
    """A small run: the PLY's points are the depth PNG's pixels unprojected with the calibration
    scaled to the output size, labelled as the labels PNG."""
    import cv2

    calibration = tmp_path / "camera.yaml"
    calibration.write_text(yaml.safe_dump({
        "image_width": 1226, "image_height": 370,
        "camera_matrix": {"rows": 3, "cols": 3, "data": [700.0, 0, 612.5, 0, 700.0, 184.5, 0, 0, 1]}}))
    done = cli("infer", KITTI_FRAME, "-o", tmp_path / "out", "--points", "--camera-info", calibration,
               "--size", "128x64", "--output-size", "network", "--points-stride", "2", "--points-color", "camera",
               "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "scaled as for a resized image" in done.stdout  # 1226x370 calibration, 128x64 outputs
    vertices, comments = read_ply(tmp_path / "out" / "000099_points.ply")
    labels = cv2.imread(str(tmp_path / "out" / "000099_labels.png"), cv2.IMREAD_UNCHANGED)
    height, width = labels.shape
    assert width == 128 and height == round(370 * 128 / 1226)  # the frame fitted inside 128x64, aspect kept
    strided = labels[::2, ::2]
    assert len(vertices) == int((strided != 0).sum())  # every sampled pixel but sky (depth is valid everywhere)
    np.testing.assert_array_equal(vertices["label"], strided[strided != 0])
    assert 0 < vertices["confidence"].min() and vertices["confidence"].max() <= 1
    fx = 700.0 * 128 / 1226
    assert any(c.startswith(f"intrinsics at 128x{height}: fx {fx:.4f}") for c in comments), comments


def test_a_ply_being_written_is_named_as_staged_files_are(tmp_path, monkeypatch):
    """A killed run's partial PLY carries io/staging's name, so the next run into the folder
    removes it like the PNGs' partial files."""
    import tempfile

    from hydranet_ros.io import staging

    made = []
    real_mkstemp = tempfile.mkstemp

    def recording_mkstemp(*args, **kwargs):
        made.append(real_mkstemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkstemp", recording_mkstemp)
    write_ply(tmp_path / "a_points.ply", np.zeros(2, VERTEX_DTYPE))
    [(_, temporary)] = made
    match = staging._STAGED.match(Path(temporary).name)
    assert match and match["name"] == "a_points.ply" and match["suffix"] == ".ply"
    # One left by a process that is gone is removed by the next run's clean-up; the result stays.
    abandoned = tmp_path / Path(temporary).name.replace(f".{match['pid']}.", ".999999999.")
    abandoned.write_bytes(b"ply\n")
    staging.remove_abandoned_in(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_points.ply"]


def test_infer_points_never_replaces_a_ply_in_the_input_folder(tmp_path):
    import shutil

    frame = tmp_path / "a.png"
    shutil.copy(KITTI_FRAME, frame)
    (tmp_path / "a_points.ply").write_bytes(b"not ours")
    done = cli("infer", frame, "-o", tmp_path, "--points", "--camera-info", KITTI_CALIBRATION)
    assert done.returncode == 2 and "would replace a_points.ply" in done.stderr, done.stderr
    assert (tmp_path / "a_points.ply").read_bytes() == b"not ours"
