"""Training configuration: one YAML file per experiment (config/train/<name>.yaml).

The YAML is read into typed dataclasses; an unknown key or a wrong type is an error that names
the key, because a misspelt option silently falling back to its default wastes a training run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hydranet_ros.errors import HydraNetError
from hydranet_ros.train.losses import DEPTH_LOSSES, TASK_NAMES


class ConfigError(HydraNetError, ValueError):
    """A training configuration that cannot be used; ``reason`` is a short machine key."""

    def __init__(self, message: str, *, reason: str = "bad_config") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class DatasetSpec:
    """Which frames: ``kind`` names a loader, the rest are that loader's keyword arguments."""

    kind: str = "synthetic"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    train: DatasetSpec = field(default_factory=DatasetSpec)
    val: DatasetSpec | None = None
    batch_size: int = 8
    num_workers: int = 0
    augment: dict[str, Any] | None = None  # keyword arguments of augment.Augmenter; None = off
    # Class-balanced sampling (repeat-factor, augment.balanced_sample_weights): frames with rare
    # classes are drawn more often. Needs the labels of every training frame once at start-up.
    balanced_sampling: bool = False
    balanced_sampling_power: float = 0.5
    # Canonical camera (runtime/focal.py): depth targets become depth * canonical / f, f the
    # frame's own focal length (from its camera_k), so frames from many cameras teach one
    # consistent "depth at this apparent size"; the weights record the canonical focal length
    # and inference multiplies by (the camera's focal length at the input) / canonical.
    # Pixels at the training input size. None: depth targets as they are.
    canonical_focal_px: float | None = None


@dataclass
class ModelConfig:
    init_encoder: str | None = None  # published checkpoint (or our safetensors) for the encoder
    init_weights: str | None = None  # our safetensors file for the whole network (fine-tuning)
    # Start the depth head's bias at this depth in metres ("auto": median of the first batch). The
    # head is otherwise initialised around 0 m and would spend thousands of steps climbing to the
    # scene's depth scale.
    depth_bias_init_m: float | str | None = "auto"


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # adamw | sgd
    encoder_lr: float = 5e-4
    decoder_lr: float = 5e-3
    encoder_weight_decay: float = 1e-5
    decoder_weight_decay: float = 1e-5
    momentum: float = 0.9  # SGD only
    grad_clip: float | None = 5.0  # max global gradient norm; None = off
    amp: bool = True  # mixed precision; only ever used on CUDA


@dataclass
class ScheduleConfig:
    steps: int = 1000
    warmup_steps: int = 50
    kind: str = "poly"  # poly | cosine
    power: float = 0.9  # poly only
    min_lr_factor: float = 0.0


@dataclass
class LossConfig:
    depth: str = "berhu"
    silog_lambda: float = 0.5
    class_weights: str | list[float] | None = None  # None | "median_frequency" | explicit list
    class_weight_frames: int = 64  # frames scanned to estimate median-frequency weights
    weighting: str = "fixed"  # fixed | uncertainty
    weights: dict[str, float] = field(default_factory=lambda: {"segm": 1.0, "depth": 1.0, "normals": 1.0})


@dataclass
class TrainConfig:
    name: str = "run"
    preset: str = "kitti"
    tasks: list[str] = field(default_factory=lambda: ["segm", "depth"])
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out_dir: str = "runs/run"
    # NHWC layout: the decoder's 5x5 max-pools run ~10x faster on CPU, convs use tensor cores on GPU.
    channels_last: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    eval_every: int = 0  # 0 = only at the end
    eval_max_frames: int | None = None
    depth_eval_max_m: float | None = 80.0

    def validate(self) -> None:
        bad_tasks = [t for t in self.tasks if t not in TASK_NAMES]
        if bad_tasks or not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks: {self.tasks} must be distinct names from {list(TASK_NAMES)}")
        checks = [
            (self.loss.depth in DEPTH_LOSSES, f"loss.depth: {self.loss.depth!r} is not one of {list(DEPTH_LOSSES)}"),
            (self.loss.weighting in ("fixed", "uncertainty"), "loss.weighting must be 'fixed' or 'uncertainty'"),
            (self.optim.optimizer in ("adamw", "sgd"), "optim.optimizer must be 'adamw' or 'sgd'"),
            (self.schedule.kind in ("poly", "cosine"), "schedule.kind must be 'poly' or 'cosine'"),
            (self.schedule.steps > 0, "schedule.steps must be positive"),
            (0 <= self.schedule.warmup_steps < self.schedule.steps, "schedule.warmup_steps must be in [0, steps)"),
            (self.data.batch_size > 0, "data.batch_size must be positive"),
            (self.data.num_workers >= 0, "data.num_workers must be >= 0"),
            (self.checkpoint_every > 0, "checkpoint_every must be positive"),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be at least 1"),
            (self.log_every > 0, "log_every must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.data.augment and "normals" in self.tasks:
            raise ConfigError("data.augment does not transform surface normals (a flip must negate x); "
                              "train normals without augmentation")
        cw = self.loss.class_weights
        if isinstance(cw, str) and cw != "median_frequency":
            raise ConfigError("loss.class_weights must be null, 'median_frequency' or a list of numbers")
        if isinstance(self.model.depth_bias_init_m, str) and self.model.depth_bias_init_m != "auto":
            raise ConfigError("model.depth_bias_init_m must be null, 'auto' or a number of metres")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _matches(value: Any, annotation: Any) -> bool:
    """Loose runtime type check for the YAML scalars and containers we use."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {unknown}; known: {sorted(fields)}", reason="unknown_key")
    kwargs = {}
    for name, value in data.items():
        annotation = hints[name]
        key = f"{where}.{name}" if where else name
        nested = [a for a in (annotation, *typing.get_args(annotation)) if dataclasses.is_dataclass(a)]
        if nested and value is not None:
            kwargs[name] = _build(nested[0], value, key)
        elif not _matches(value, annotation):
            raise ConfigError(f"{key}: {value!r} is not of type {annotation}", reason="bad_type")
        else:
            kwargs[name] = float(value) if annotation is float else value
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    config = _build(TrainConfig, data, "")
    config.validate()
    return config


def load_config(path: str | Path, *, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a training YAML; ``overrides`` maps dotted keys ("schedule.steps") to values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config {path} does not exist", reason="missing_config")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"training config {path} is not valid YAML: {error}", reason="bad_yaml") from None
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted}: {part} is not a mapping")
        node[leaf] = value
    try:
        return config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}", reason=error.reason) from None


def parse_override(text: str) -> tuple[str, Any]:
    """"schedule.steps=500" -> ("schedule.steps", 500), the value parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.subkey=value", reason="bad_override")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)
