"""Presets: what a set of published (or our own) weights means, without the network.

A preset carries everything needed to turn network outputs into something a robot can use:
class names and colours, the input normalisation the weights were trained with, and the depth
range used for display. Checkpoints store the preset name and these facts as metadata.

Plain data, below every other package (no torch, no ROS): the network (model/) takes only the
head sizes from it, and the launch process reads the preset names without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydranet_ros.errors import UsageError
from hydranet_ros.presets import palettes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The authors do not name the KITTI classes; their CamVid-style colours say which they are.
KITTI_CLASSES = ("sky", "building", "road", "sidewalk", "vegetation", "car")

NYU40_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refrigerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "other structure", "other furniture", "other prop",
)

# Classes by name, for the 3D outputs (semantic/points, semantic/obstacles). By name, so that a
# preset read from a weights file's metadata gets them too; the joint preset's "kitti road" is
# matched as "road".
# Surfaces a vehicle or robot drives on, and what lies above it: not obstacles. Every other class
# (building, car, vegetation, wall, chair, person, ...) is, unless the node's obstacle_classes
# parameter says otherwise.
NOT_OBSTACLES = frozenset({"sky", "road", "sidewalk", "floor", "floor mat", "ceiling"})
# Classes with no surface at a finite distance: the network's depth there means nothing (sky is
# "no depth" in the training data), so the point cloud leaves them out unless asked.
WITHOUT_DEPTH = frozenset({"sky"})


def _base_name(name: str) -> str:
    return name.removeprefix("kitti ")


@dataclass(frozen=True)
class Preset:
    """What the network's outputs mean, and how its input must be prepared."""

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]  # RGB colour per class id
    with_normals: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    depth_range_m: tuple[float, float] = (0.0, 80.0)
    description: str = field(default="", compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def obstacle_classes(self) -> tuple[str, ...]:
        """The classes semantic/obstacles holds by default: all but free surfaces and sky."""
        return tuple(name for name in self.class_names if _base_name(name) not in NOT_OBSTACLES)

    @property
    def classes_without_depth(self) -> tuple[str, ...]:
        """The classes semantic/points leaves out by default (sky)."""
        return tuple(name for name in self.class_names if _base_name(name) in WITHOUT_DEPTH)

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.class_names):
            raise ValueError(f"preset {self.name}: {len(self.palette)} colours for {len(self.class_names)} classes")
        if not 0.0 <= self.depth_range_m[0] < self.depth_range_m[1]:
            raise ValueError(f"preset {self.name}: bad depth range {self.depth_range_m}")


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="kitti",
            class_names=KITTI_CLASSES,
            palette=palettes.KITTI6,
            depth_range_m=(0.0, 80.0),
            description="KITTI street scenes, 6 classes + depth (ExpKITTI_joint)",
        ),
        Preset(
            name="nyud",
            class_names=NYU40_CLASSES,
            palette=palettes.NYU40,
            depth_range_m=(0.0, 8.0),
            description="NYU Depth v2 indoor scenes, 40 classes + depth (ExpNYUD_joint)",
        ),
        Preset(
            name="nyud_kitti",
            class_names=NYU40_CLASSES + tuple(f"kitti {c}" for c in KITTI_CLASSES),
            palette=palettes.NYU40 + palettes.KITTI6,
            depth_range_m=(0.0, 80.0),
            description="one network for NYUDv2 (ids 0-39) and KITTI (ids 40-45) (ExpNYUDKITTI_joint)",
        ),
        Preset(
            name="nyud_three",
            class_names=NYU40_CLASSES,
            palette=palettes.NYU40,
            with_normals=True,
            depth_range_m=(0.0, 8.0),
            description="NYU Depth v2, 40 classes + depth + surface normals (ExpNYUD_three)",
        ),
    )
}


# Weights trained on several datasets at once label each frame from one dataset's classes: the
# authors' notebook takes ids 0-39 for NYU frames and 40-45 for KITTI frames of the joint model.
# name -> (first id, one past the last id); the ids stay the joint model's (LabelInfo names them).
CLASS_GROUPS: dict[str, dict[str, tuple[int, int]]] = {
    "nyud_kitti": {"nyud": (0, 40), "kitti": (40, 46)},
}
ALL_CLASSES = "all"


def class_group(preset_name: str, group: str) -> tuple[int, int] | None:
    """(first, stop) class ids of ``group`` for ``preset_name``; None for 'all'. ValueError names
    the groups that exist."""
    if group == ALL_CLASSES:
        return None
    groups = CLASS_GROUPS.get(preset_name, {})
    if group not in groups:
        known = ", ".join([ALL_CLASSES, *groups])
        raise ValueError(f"classes {group!r} is not a class group of the {preset_name!r} weights (known: {known})")
    return groups[group]


def get_preset(name: str) -> Preset:
    """The preset called ``name``, or a UsageError (a ValueError) that lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


def preset_for_heads(num_classes: int, with_normals: bool) -> Preset:
    """Infer the preset from the shapes of a checkpoint's heads."""
    for preset in PRESETS.values():
        if preset.num_classes == num_classes and preset.with_normals == with_normals:
            return preset
    raise ValueError(
        f"no preset has {num_classes} classes {'with' if with_normals else 'without'} a normals head; "
        "pass the preset explicitly"
    )
