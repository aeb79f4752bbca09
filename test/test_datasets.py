"""Dataset loaders, each on a tiny fixture in that dataset's own file layout."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hydranet_ros.presets import palettes
from hydranet_ros.train.datasets import (
    KITTI, NYU_K, Cityscapes, DatasetError, FolderDataset, NYUDepthV2, read_colour_labels,
)

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")

H, W = 6, 8


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def _write_gray(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), data)


def _ids(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, (H, W)).astype(np.uint8)


def _colour_labels(ids: np.ndarray) -> np.ndarray:
    # id 6 draws the void colour (black), as in the authors' ground truth.
    lut = palettes.as_lut(palettes.KITTI6, fill=(0, 0, 0))
    return lut[ids]


# -- KITTI -----------------------------------------------------------------------------------

def test_kitti_raw_and_depth_completion_layout(tmp_path):
    date, drive, cam = "2011_09_26", "2011_09_26_drive_0001_sync", "image_02"
    raw = tmp_path / "raw" / date
    (raw).mkdir(parents=True)
    (raw / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012\nP_rect_02: 721.5 0 609.5 44.8 0 721.5 172.8 0.2 0 0 1 0.003\n")
    images = {f: _rgb(i) for i, f in enumerate(["0000000005", "0000000006", "0000000007"])}
    for frame, rgb in images.items():
        _write_rgb(raw / drive / cam / "data" / f"{frame}.png", rgb)
    depth_raw = np.random.default_rng(1).integers(0, 20000, (H, W)).astype(np.uint16)
    depth_raw[0, :3] = 0
    gt = tmp_path / "depth" / "train" / drive / "proj_depth" / "groundtruth" / cam
    _write_gray(gt / "0000000005.png", depth_raw)
    _write_gray(gt / "0000000006.png", depth_raw)
    ids = _ids(2, 7)
    _write_rgb(tmp_path / "labels6" / drive / cam / "0000000005.png", _colour_labels(ids))
    _write_rgb(tmp_path / "labels6" / drive / cam / "0000000007.png", _colour_labels(ids))

    ds = KITTI(tmp_path, split="train")
    assert len(ds) == 3
    both, depth_only, labels_only = ds[0], ds[1], ds[2]
    np.testing.assert_array_equal(both["image"], images["0000000005"])
    np.testing.assert_array_equal(both["labels"], np.where(ids == 6, 255, ids))
    np.testing.assert_allclose(both["depth_m"], depth_raw / 256.0)
    assert (both["depth_m"][0, :3] == 0).all()
    np.testing.assert_allclose(both["camera_k"], [[721.5, 0, 609.5], [0, 721.5, 172.8], [0, 0, 1]])
    assert (depth_only["labels"] == 255).all() and depth_only["depth_m"].any()
    assert (labels_only["depth_m"] == 0).all() and labels_only["depth_m"].dtype == np.float32
    assert (labels_only["labels"] != 255).any()


def test_kitti_examples_layout_on_the_authors_frame():
    ds = KITTI(SHARED / "kitti", layout="examples")
    assert len(ds) == 1
    frame = ds[0]
    assert frame["image"].shape == (370, 1226, 3)
    counts = np.bincount(frame["labels"].ravel(), minlength=256)
    # Counted from the PNG's colours: (0,0,0) void 32346 pixels, road (128,64,128) 51540, car 86348.
    assert counts[255] == 32346 and counts[2] == 51540 and counts[5] == 86348
    assert (frame["depth_m"] == 0).all() and frame["camera_k"] is None


def test_off_palette_label_image_is_refused(tmp_path):
    _write_rgb(tmp_path / "x.png", _rgb(3))
    with pytest.raises(DatasetError) as err:
        read_colour_labels(tmp_path / "x.png", palettes.KITTI6)
    assert err.value.reason == "bad_format" and "x.png" in str(err.value)


# -- NYU -------------------------------------------------------------------------------------

def test_nyu_examples_layout(tmp_path):
    _write_rgb(tmp_path / "000001.png", _rgb(4))
    ids = _ids(5, 40)
    ids[0, 0] = 255
    _write_gray(tmp_path / "000001_segm_gt.png", ids)
    depth_raw = np.full((H, W), 12500, np.uint16)
    depth_raw[1, 1] = 0
    _write_gray(tmp_path / "000001_depth_gt.png", depth_raw)
    _write_rgb(tmp_path / "000002.png", _rgb(6))  # an unannotated frame
    ds = NYUDepthV2(tmp_path)
    assert len(ds) == 2
    f = ds[0]
    np.testing.assert_array_equal(f["labels"], ids)
    assert f["depth_m"][0, 0] == pytest.approx(2.5) and f["depth_m"][1, 1] == 0
    np.testing.assert_array_equal(f["camera_k"], NYU_K)
    assert (ds[1]["labels"] == 255).all() and (ds[1]["depth_m"] == 0).all()


def test_nyu_depth_scale_on_the_authors_frames():
    ds = NYUDepthV2(SHARED / "nyud")
    assert len(ds) == 2
    for f in ds:
        valid = f["depth_m"][f["depth_m"] > 0]
        assert 0.3 < valid.min() and valid.max() < 10.0  # a room, in metres
        assert 1.0 < np.median(valid) < 5.0
        assert set(np.unique(f["labels"])) <= set(range(40)) | {255}


def test_nyu_refuses_class_ids_past_39(tmp_path):
    _write_rgb(tmp_path / "000001.png", _rgb(4))
    _write_gray(tmp_path / "000001_segm_gt.png", np.full((H, W), 40, np.uint8))
    with pytest.raises(DatasetError, match="outside 0..39"):
        NYUDepthV2(tmp_path)[0]


# -- Cityscapes ------------------------------------------------------------------------------

def test_cityscapes_tree(tmp_path):
    base, city, split = "aachen_000000_000019", "aachen", "val"
    _write_rgb(tmp_path / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png", _rgb(7))
    label_ids = np.zeros((H, W), np.uint8)
    label_ids[0] = [7, 8, 11, 23, 26, 33, 9, 0]  # road sidewalk building sky car bicycle parking unlabeled
    _write_gray(tmp_path / "gtFine" / split / city / f"{base}_gtFine_labelIds.png", label_ids)
    disparity = np.zeros((H, W), np.uint16)
    disparity[0, :4] = [0, 1, 257, 513]  # invalid, zero disparity, 1 px, 2 px
    _write_gray(tmp_path / "disparity" / split / city / f"{base}_disparity.png", disparity)
    camera = {"extrinsic": {"baseline": 0.2, "pitch": 0.0}, "intrinsic": {"fx": 2000.0, "fy": 2001.0, "u0": 1000.0, "v0": 500.0}}
    cam_path = tmp_path / "camera" / split / city / f"{base}_camera.json"
    cam_path.parent.mkdir(parents=True)
    cam_path.write_text(json.dumps(camera))
    # A second frame without any annotation.
    _write_rgb(tmp_path / "leftImg8bit" / split / city / "aachen_000001_000019_leftImg8bit.png", _rgb(8))

    ds = Cityscapes(tmp_path, split=split)
    assert len(ds) == 2
    f = ds[0]
    assert f["labels"][0].tolist() == [0, 1, 2, 10, 13, 18, 255, 255]
    assert (f["labels"][1:] == 255).all()
    assert f["depth_m"][0, :4].tolist() == [0.0, 0.0, pytest.approx(400.0), pytest.approx(200.0)]
    assert (f["depth_m"][1:] == 0).all()
    np.testing.assert_allclose(f["camera_k"], [[2000, 0, 1000], [0, 2001, 500], [0, 0, 1]])
    assert (ds[1]["labels"] == 255).all() and (ds[1]["depth_m"] == 0).all()


# -- generic folder --------------------------------------------------------------------------

def _folder(tmp_path, yaml_text="num_classes: 3\ndepth_metres_per_unit: 0.001\n"):
    (tmp_path / "dataset.yaml").write_text(yaml_text)
    _write_rgb(tmp_path / "images" / "a.png", _rgb(9))
    cv2.imwrite(str(tmp_path / "images" / "b.jpg"), _rgb(10))
    _write_gray(tmp_path / "labels" / "a.png", _ids(11, 3))
    _write_gray(tmp_path / "depth" / "b.png", np.full((H, W), 1500, np.uint16))
    return tmp_path


def test_folder_dataset(tmp_path):
    ds = FolderDataset(_folder(tmp_path, "num_classes: 3\ndepth_metres_per_unit: 0.001\n"
                                         "camera_k: [[100, 0, 4], [0, 100, 3], [0, 0, 1]]\n"))
    assert len(ds) == 2 and ds.num_classes == 3
    a, b = ds[0], ds[1]
    np.testing.assert_array_equal(a["labels"], _ids(11, 3))
    assert (a["depth_m"] == 0).all()
    assert (b["labels"] == 255).all() and np.allclose(b["depth_m"], 1.5)
    assert a["camera_k"][0, 0] == 100


def test_folder_dataset_needs_its_yaml(tmp_path):
    _folder(tmp_path)
    (tmp_path / "dataset.yaml").unlink()
    with pytest.raises(DatasetError) as err:
        FolderDataset(tmp_path)
    assert err.value.reason == "missing_file"
    (tmp_path / "dataset.yaml").write_text("num_classes: 3\n")
    with pytest.raises(DatasetError, match="depth_metres_per_unit"):
        FolderDataset(tmp_path)
    for k in ("[[0, 0, 4], [0, 0, 3], [0, 0, 1]]", "[[.inf, 0, 4], [0, .inf, 3], [0, 0, 1]]"):
        # eval would scale depth by this focal length (review: zeros crashed `hydranet eval`)
        (tmp_path / "dataset.yaml").write_text(f"num_classes: 3\ndepth_metres_per_unit: 0.001\ncamera_k: {k}\n")
        with pytest.raises(DatasetError, match="camera_k"):
            FolderDataset(tmp_path)


def test_folder_dataset_bad_files(tmp_path):
    _folder(tmp_path)
    _write_gray(tmp_path / "depth" / "b.png", np.full((H, W), 3, np.uint8))  # 8-bit depth
    with pytest.raises(DatasetError, match="16-bit"):
        FolderDataset(tmp_path)[1]
    _write_gray(tmp_path / "labels" / "a.png", np.zeros((H + 1, W), np.uint8))
    with pytest.raises(DatasetError) as err:
        FolderDataset(tmp_path)[0]
    assert err.value.reason == "size_mismatch"
    _write_gray(tmp_path / "labels" / "a.png", np.full((H, W), 7, np.uint8))
    with pytest.raises(DatasetError, match="num_classes"):
        FolderDataset(tmp_path)[0]


def test_missing_roots_and_indices(tmp_path):
    for make in (lambda: NYUDepthV2(tmp_path / "nope"), lambda: KITTI(tmp_path / "nope"),
                 lambda: Cityscapes(tmp_path / "nope"), lambda: FolderDataset(tmp_path / "nope")):
        with pytest.raises(DatasetError) as err:
            make()
        assert err.value.reason == "missing_root"
    with pytest.raises(DatasetError) as err:
        NYUDepthV2(tmp_path)
    assert err.value.reason == "empty"
    ds = NYUDepthV2(SHARED / "nyud")
    with pytest.raises(IndexError):
        ds[2]
