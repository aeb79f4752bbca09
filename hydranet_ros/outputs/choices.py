"""The 3D and confidence outputs' settings as plain data: no numpy arrays, no OpenCV, so the
launch process reads them through params.py as it reads the other parameters.

Class lists (the points_classes, points_exclude_classes and obstacle_classes parameters) are
text: "default" (the weights' own choice, from presets: sky for the cloud's exclusions, every
class but free surfaces and sky for obstacles), "" (none) or comma-separated class names, with
"unknown" for UNKNOWN_LABEL. Names are checked against the weights once they are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = [
    "UNKNOWN_LABEL", "UNKNOWN_NAME", "DEFAULT", "CONFIDENCE_ENCODINGS", "POINT_COLORS", "CloudSettings",
    "class_selection", "class_selection_problem", "point_classes", "obstacle_classes",
]

# Label of a pixel whose class is too uncertain (confidence below min_confidence): outside every
# preset's ids, so LabelInfo names it by leaving it out and colour images draw it black.
UNKNOWN_LABEL = 255
UNKNOWN_NAME = "unknown"  # its name in a class list
DEFAULT = "default"  # a class list meaning: the weights' own choice
CONFIDENCE_ENCODINGS = ("32FC1", "mono8")
POINT_COLORS = ("class", "camera")


@dataclass(frozen=True)
class CloudSettings:
    """The node's points_* and obstacle_classes parameters (params.PARAMETERS describes them)."""

    stride: int = 1
    max_range_m: float = 0.0  # 0: no limit
    organized: bool = False
    color: str = "class"
    classes: str = ""  # semantic/points keeps only these; "" = every class
    exclude_classes: str = DEFAULT  # ...and drops these; default: classes without depth (sky)
    obstacle_classes: str = DEFAULT  # semantic/obstacles; default: the preset's obstacle classes

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if not self.max_range_m >= 0:
            raise ValueError(f"max_range_m must be >= 0, got {self.max_range_m}")
        if self.color not in POINT_COLORS:
            raise ValueError(f"color must be one of {', '.join(POINT_COLORS)}, got {self.color!r}")


def class_selection(spec: str, class_names: Sequence[str], default: Sequence[str]) -> frozenset[int]:
    """Label ids named by a class list: "default" -> ``default``, "" -> none, else comma-separated
    names (spaces around each ignored; "unknown" = UNKNOWN_LABEL). ValueError names the names the
    weights do not have."""
    text = spec.strip()
    names = list(default) if text == DEFAULT else [name.strip() for name in text.split(",") if name.strip()]
    index = {name: class_id for class_id, name in enumerate(class_names)}
    ids, missing = set(), []
    for name in names:
        if name == UNKNOWN_NAME:
            ids.add(UNKNOWN_LABEL)
        elif name in index:
            ids.add(index[name])
        else:
            missing.append(name)
    if missing:
        raise ValueError(f"no class {', '.join(repr(n) for n in missing)} in these weights; classes: "
                         f"{', '.join(class_names)} (and {UNKNOWN_NAME!r} for label {UNKNOWN_LABEL})")
    return frozenset(ids)


def class_selection_problem(values: Mapping[str, str], class_names: Sequence[str]) -> str | None:
    """Why the class lists in ``values`` (parameter name -> text) name classes the weights do
    not have, or None."""
    problems = []
    for name, text in values.items():
        try:
            class_selection(text, class_names, ())
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    return "; ".join(problems) or None


def point_classes(settings: CloudSettings, preset: Any) -> frozenset[int]:
    """Labels semantic/points keeps: its classes (all when empty) minus its exclusions."""
    names = preset.class_names
    everything = frozenset(range(len(names))) | {UNKNOWN_LABEL}
    kept = class_selection(settings.classes, names, ()) if settings.classes.strip() else everything
    return kept - class_selection(settings.exclude_classes, names, preset.classes_without_depth)


def obstacle_classes(settings: CloudSettings, preset: Any) -> frozenset[int]:
    """Labels semantic/obstacles keeps."""
    return class_selection(settings.obstacle_classes, preset.class_names, preset.obstacle_classes)
