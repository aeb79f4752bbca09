"""Training data from real datasets, in one frame contract shared with the synthetic streets.

Every loader is an indexable, torch-free sequence whose items are dicts:
    image     uint8  HxWx3 RGB
    labels    uint8  HxW, class ids; 255 = ignore
    depth_m   float32 HxW metres along the optical axis; 0 = no measurement
    camera_k  float64 3x3 intrinsics, or None where the dataset does not give them

A frame may lack one of the two annotations (the "asymmetric annotations" of Nekrasov et al.):
its labels are then all 255 and its depth all 0, so the losses mask it out instead of the loader
dropping the frame. Files are read with OpenCV; a missing, unreadable or mis-sized file raises
DatasetError naming the file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from hydranet_ros.errors import HydraNetError
from hydranet_ros.presets import palettes

log = logging.getLogger(__name__)

IGNORE = 255  # label of pixels without ground truth: every loss, metric and augmentation skips it

# Cityscapes' official label id -> train id (cityscapesScripts, labels.py): 19 classes, the rest
# (void, parking, rail track, guard rail, bridge, tunnel, pole group, caravan, trailer) ignored.
CITYSCAPES_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}

_CITYSCAPES_LUT = np.full(256, IGNORE, np.uint8)
_CITYSCAPES_LUT[list(CITYSCAPES_ID_TO_TRAIN_ID)] = list(CITYSCAPES_ID_TO_TRAIN_ID.values())

# Intrinsics of the NYU Depth v2 colour camera (the dataset toolbox's camera_params.m), for the
# 640x480 frames.
NYU_K = np.array([[518.8579, 0.0, 325.5824], [0.0, 519.4696, 253.7362], [0.0, 0.0, 1.0]])


class DatasetError(HydraNetError, ValueError):
    """Bad dataset input; ``reason`` is a short key for counting (missing_file, bad_format, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class FrameFiles:
    """Where one frame's files are; None marks an annotation the frame does not have."""

    image: Path
    labels: Path | None
    depth: Path | None
    camera_k: np.ndarray | None = None
    disparity_camera: Path | None = None  # Cityscapes: the json that turns disparity into depth


# -- readers ----------------------------------------------------------------------------------

def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError("unreadable", f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_raw(path: Path, what: str) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise DatasetError("unreadable", f"{path}: not a readable {what} image")
    return data


def read_depth_png(path: Path, *, metres_per_unit: float) -> np.ndarray:
    """A 16-bit depth PNG (0 = no measurement) in metres."""
    raw = _read_raw(path, "depth")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DatasetError("bad_format", f"{path}: depth must be a 16-bit single-channel PNG, got {raw.dtype} {raw.shape}")
    return raw.astype(np.float32) * np.float32(metres_per_unit)


def read_id_png(path: Path) -> np.ndarray:
    """A single-channel 8-bit label PNG of class ids."""
    raw = _read_raw(path, "label")
    if raw.dtype != np.uint8 or raw.ndim != 2:
        raise DatasetError("bad_format", f"{path}: labels must be an 8-bit single-channel PNG, got {raw.dtype} {raw.shape}")
    return raw


def read_colour_labels(path: Path, palette: palettes.Palette, *, max_off_palette: float = 0.01) -> np.ndarray:
    """Colour-coded labels -> ids; black (void) and stray colours -> 255.

    A few off-palette pixels happen (resampled or hand-edited masks) and are ignored; many mean
    the file is not a label image in this palette, which is an error rather than silent noise.
    """
    rgb = read_rgb(path).astype(np.int32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in palette], np.int32)
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[order], packed), 0, len(keys) - 1)
    found = keys[order][pos] == packed
    labels = np.where(found, order[pos], IGNORE).astype(np.uint8)
    stray = ~found & (packed != 0)
    if stray.mean() > max_off_palette:
        raise DatasetError("bad_format", f"{path}: {stray.mean():.1%} of pixels are not colours of the palette")
    return labels


def _cityscapes_depth(disparity_png: Path, camera_json: Path) -> tuple[np.ndarray, np.ndarray]:
    """Depth from Cityscapes' disparity: d = (p - 1) / 256 for p > 0, depth = baseline * fx / d."""
    raw = _read_raw(disparity_png, "disparity")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DatasetError("bad_format", f"{disparity_png}: disparity must be a 16-bit PNG, got {raw.dtype}")
    try:
        cam = json.loads(camera_json.read_text())
        baseline, fx = float(cam["extrinsic"]["baseline"]), float(cam["intrinsic"]["fx"])
        k = np.array([[fx, 0.0, float(cam["intrinsic"]["u0"])],
                      [0.0, float(cam["intrinsic"]["fy"]), float(cam["intrinsic"]["v0"])], [0.0, 0.0, 1.0]])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError("bad_format", f"{camera_json}: not a Cityscapes camera file ({exc})") from exc
    disparity = (raw.astype(np.float32) - 1.0) / 256.0
    with np.errstate(divide="ignore"):
        depth = np.where(disparity > 0, np.float32(baseline * fx) / disparity, 0.0).astype(np.float32)
    return depth, k


def _kitti_k(calib: Path, camera: str) -> np.ndarray | None:
    """K of a rectified KITTI camera from calib_cam_to_cam.txt (P_rect_0N), None if absent."""
    if not calib.is_file():
        return None
    key = f"P_rect_{camera[-2:]}:"
    for line in calib.read_text().splitlines():
        if line.startswith(key):
            p = np.array(line[len(key):].split(), np.float64).reshape(3, 4)
            return p[:, :3].copy()
    return None


# -- the datasets -----------------------------------------------------------------------------

class FrameDataset:
    """Shared indexing and decoding; subclasses only find their files and decode labels/depth."""

    num_classes: int = 0

    def __init__(self, frames: list[FrameFiles], *, name: str) -> None:
        if not frames:
            raise DatasetError("empty", f"{name}: no frames found")
        self.frames = frames
        self.name = name

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if index < 0:
            index += len(self.frames)
        if not 0 <= index < len(self.frames):
            raise IndexError(f"frame {index} out of range for {len(self.frames)} frames of {self.name}")
        files = self.frames[index]
        image = read_rgb(files.image)
        h, w = image.shape[:2]
        labels = self._labels(files.labels) if files.labels is not None else np.full((h, w), IGNORE, np.uint8)
        camera_k = files.camera_k
        if files.depth is None:
            depth = np.zeros((h, w), np.float32)
        elif files.disparity_camera is not None:
            depth, camera_k = _cityscapes_depth(files.depth, files.disparity_camera)
        else:
            depth = self._depth(files.depth)
        for what, array, path in (("labels", labels, files.labels), ("depth", depth, files.depth)):
            if array.shape != (h, w):
                raise DatasetError("size_mismatch", f"{path}: {what} are {array.shape[1]}x{array.shape[0]}, "
                                                    f"image {files.image} is {w}x{h}")
        return {"image": image, "labels": labels, "depth_m": depth,
                "camera_k": None if camera_k is None else np.array(camera_k, np.float64)}

    def _labels(self, path: Path) -> np.ndarray:
        return read_id_png(path)

    def _depth(self, path: Path) -> np.ndarray:
        raise NotImplementedError


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError("missing_root", f"{what}: {path} is not a directory")
    return path


def _flat_frames(root: Path, *, segm: str, depth: str, camera_k=None) -> list[FrameFiles]:
    """The authors' examples layout: <id>.png beside <id>_segm_gt.png and <id>_depth_gt.png."""
    frames = []
    for image in sorted(root.glob("*.png")):
        stem = image.stem
        if stem.endswith("_gt"):  # <id>_segm_gt, <id>_depth_gt, <id>_normals_gt: annotations
            continue
        labels, depth_file = root / f"{stem}{segm}", root / f"{stem}{depth}"
        frames.append(FrameFiles(image, labels if labels.is_file() else None,
                                 depth_file if depth_file.is_file() else None, camera_k))
    return frames


class NYUDepthV2(FrameDataset):
    """NYU Depth v2, 40 classes: a folder as the authors' examples are laid out.

    ``<id>.png`` (RGB), ``<id>_segm_gt.png`` (ids 0..39, 255 ignore), ``<id>_depth_gt.png``
    (uint16, metres = value / 5000, 0 = no measurement); either annotation may be absent.
    """

    num_classes = 40
    METRES_PER_UNIT = 1.0 / 5000.0

    def __init__(self, root: str | os.PathLike) -> None:
        root = _require_dir(Path(root), "NYU Depth v2")
        super().__init__(_flat_frames(root, segm="_segm_gt.png", depth="_depth_gt.png", camera_k=NYU_K),
                         name=f"NYU Depth v2 at {root}")

    def _labels(self, path: Path) -> np.ndarray:
        labels = read_id_png(path)
        bad = (labels >= self.num_classes) & (labels != IGNORE)
        if bad.any():
            raise DatasetError("bad_format", f"{path}: class ids {np.unique(labels[bad])[:5].tolist()} outside 0..39")
        return labels

    def _depth(self, path: Path) -> np.ndarray:
        return read_depth_png(path, metres_per_unit=self.METRES_PER_UNIT)


class KITTI(FrameDataset):
    """KITTI with the authors' 6 classes (sky, building, road, sidewalk, vegetation, car).

    Two layouts:
    - ``layout="raw"``: the official trees. Images from KITTI raw,
      ``<root>/raw/<date>/<drive>/<camera>/data/<frame>.png`` (K from ``<date>/calib_cam_to_cam.txt``);
      depth from the depth-completion ground truth, ``<root>/depth/<split>/<drive>/proj_depth/
      groundtruth/<camera>/<frame>.png`` (uint16, metres = value / 256, 0 = none); 6-class labels,
      which have no official tree, mirror the raw one: ``<root>/labels6/<drive>/<camera>/<frame>.png``.
      A frame is listed when its image exists and it has depth or labels.
    - ``layout="examples"``: the authors' examples folder, ``<id>.png``, ``<id>_segm_gt.png``,
      optional ``<id>_depth_gt.png`` in the same uint16 / 256 encoding.
    Labels are colour PNGs in the KITTI-6 palette; black (void: poles, signs, ...) -> 255.
    """

    num_classes = 6
    METRES_PER_UNIT = 1.0 / 256.0

    def __init__(self, root: str | os.PathLike, *, layout: str = "raw", split: str = "train",
                 camera: str = "image_02") -> None:
        root = _require_dir(Path(root), "KITTI")
        if layout == "examples":
            frames = _flat_frames(root, segm="_segm_gt.png", depth="_depth_gt.png")
        elif layout == "raw":
            frames = self._raw_frames(root, split, camera)
        else:
            raise DatasetError("bad_argument", f"KITTI layout must be 'raw' or 'examples', not {layout!r}")
        super().__init__(frames, name=f"KITTI ({layout}) at {root}")

    @staticmethod
    def _raw_frames(root: Path, split: str, camera: str) -> list[FrameFiles]:
        raw = _require_dir(root / "raw", "KITTI raw images")
        depth_root = root / "depth" / split
        keys = set()
        for png in depth_root.glob(f"*/proj_depth/groundtruth/{camera}/*.png"):
            keys.add((png.parts[-5], png.stem))
        for png in (root / "labels6").glob(f"*/{camera}/*.png"):
            keys.add((png.parts[-3], png.stem))
        frames, calib = [], {}
        for drive, frame in sorted(keys):
            date = drive[:10]  # raw drives are named <date>_drive_<nnnn>_sync
            image = raw / date / drive / camera / "data" / f"{frame}.png"
            if not image.is_file():
                log.warning("KITTI: %s has annotations but no image at %s; skipped", frame, image)
                continue
            if date not in calib:
                calib[date] = _kitti_k(raw / date / "calib_cam_to_cam.txt", camera)
            depth = depth_root / drive / "proj_depth" / "groundtruth" / camera / f"{frame}.png"
            labels = root / "labels6" / drive / camera / f"{frame}.png"
            frames.append(FrameFiles(image, labels if labels.is_file() else None,
                                     depth if depth.is_file() else None, calib[date]))
        return frames

    def _labels(self, path: Path) -> np.ndarray:
        return read_colour_labels(path, palettes.KITTI6)

    def _depth(self, path: Path) -> np.ndarray:
        return read_depth_png(path, metres_per_unit=self.METRES_PER_UNIT)


class Cityscapes(FrameDataset):
    """Cityscapes, 19 train ids, depth from disparity.

    ``<root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``, labels from
    ``gtFine/.../*_gtFine_labelIds.png`` mapped with the official id -> trainId table, depth from
    ``disparity/.../*_disparity.png`` and ``camera/.../*_camera.json``: disparity = (p - 1) / 256
    for p > 0, depth = baseline * fx / disparity; p = 0 (and p = 1, zero disparity) are invalid.
    """

    num_classes = 19

    def __init__(self, root: str | os.PathLike, *, split: str = "train") -> None:
        root = _require_dir(Path(root), "Cityscapes")
        images = _require_dir(root / "leftImg8bit" / split, "Cityscapes images")
        frames = []
        for image in sorted(images.glob("*/*_leftImg8bit.png")):
            city, base = image.parent.name, image.name[: -len("_leftImg8bit.png")]
            labels = root / "gtFine" / split / city / f"{base}_gtFine_labelIds.png"
            disparity = root / "disparity" / split / city / f"{base}_disparity.png"
            camera = root / "camera" / split / city / f"{base}_camera.json"
            has_depth = disparity.is_file() and camera.is_file()
            frames.append(FrameFiles(image, labels if labels.is_file() else None,
                                     disparity if has_depth else None,
                                     disparity_camera=camera if has_depth else None))
        super().__init__(frames, name=f"Cityscapes {split} at {root}")

    def _labels(self, path: Path) -> np.ndarray:
        return _CITYSCAPES_LUT[read_id_png(path)]


class FolderDataset(FrameDataset):
    """Your own data: ``images/``, ``labels/``, ``depth/`` and a ``dataset.yaml``.

    Files pair by name stem (``images/x.jpg`` with ``labels/x.png`` and ``depth/x.png``).
    dataset.yaml::

        num_classes: 6
        depth_metres_per_unit: 0.001   # a 16-bit depth PNG value times this is metres
        camera_k: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]   # optional

    Labels are 8-bit id PNGs (255 ignore); depth 0 means no measurement.
    """

    IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

    def __init__(self, root: str | os.PathLike) -> None:
        root = _require_dir(Path(root), "image folder dataset")
        config = self._config(root / "dataset.yaml")
        self.num_classes = config["num_classes"]
        self.metres_per_unit = config["depth_metres_per_unit"]
        frames = []
        images = _require_dir(root / "images", "image folder dataset")
        for image in sorted(p for p in images.iterdir() if p.suffix.lower() in self.IMAGE_SUFFIXES):
            labels, depth = root / "labels" / f"{image.stem}.png", root / "depth" / f"{image.stem}.png"
            frames.append(FrameFiles(image, labels if labels.is_file() else None,
                                     depth if depth.is_file() else None, config["camera_k"]))
        super().__init__(frames, name=f"folder dataset at {root}")

    @staticmethod
    def _config(path: Path) -> dict:
        if not path.is_file():
            raise DatasetError("missing_file", f"{path}: missing (it states num_classes and the depth scale)")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
            num_classes = int(raw["num_classes"])
            scale = float(raw["depth_metres_per_unit"])
            k = raw.get("camera_k")
            k = None if k is None else np.asarray(k, np.float64).reshape(3, 3)
        except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise DatasetError("bad_format", f"{path}: needs num_classes and depth_metres_per_unit ({exc!r})") from exc
        if not 0 < num_classes < IGNORE or scale <= 0:
            raise DatasetError("bad_format", f"{path}: num_classes must be 1..254 and the depth scale > 0")
        # eval scales depth by this camera's focal length: it must be a usable one
        if k is not None and not 0 < float(np.sqrt(k[0, 0] * k[1, 1])) < np.inf:
            raise DatasetError("bad_format", f"{path}: camera_k must hold focal lengths > 0 (fx={k[0, 0]}, fy={k[1, 1]})")
        return {"num_classes": num_classes, "depth_metres_per_unit": scale, "camera_k": k}

    def _labels(self, path: Path) -> np.ndarray:
        labels = read_id_png(path)
        bad = (labels >= self.num_classes) & (labels != IGNORE)
        if bad.any():
            raise DatasetError("bad_format", f"{path}: class ids {np.unique(labels[bad])[:5].tolist()} "
                                             f">= num_classes {self.num_classes}")
        return labels

    def _depth(self, path: Path) -> np.ndarray:
        return read_depth_png(path, metres_per_unit=self.metres_per_unit)
