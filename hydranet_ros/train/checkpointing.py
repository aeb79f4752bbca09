"""Checkpoints of a training run: model weights (safetensors) + training state (separate file).

Layout under ``<out_dir>/checkpoints``::

    step_0000400.safetensors    model weights and metadata (what inference needs)
    step_0000400.state.pt       optimizer, loss-weighting and step state; torch.save of tensors
                                and plain containers only, read back with weights_only=True
    latest.json                 {"step": 400, "weights": ..., "state": ...}

Both files are written to a temporary name and moved into place with ``os.replace`` (atomic on
POSIX), and ``latest.json`` is replaced last: a run killed at any moment leaves the previous
complete pair as "latest", so a resume loses at most one checkpoint interval.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from hydranet_ros.model.presets import Preset

LOG = logging.getLogger(__name__)
FORMAT_TAG = "hydranet_ros"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit; ``reason`` is a short machine key."""

    def __init__(self, message: str, *, reason: str = "bad_checkpoint") -> None:
        super().__init__(message)
        self.reason = reason


def _atomic_target(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def save_model_weights(path: str | Path, state_dict: dict[str, torch.Tensor], *, preset: Preset,
                       metadata: dict[str, str] | None = None) -> Path:
    """THE one place the trainer writes model weights.

    Writes safetensors with string metadata (format, preset, classes, heads). The lead's
    ``hydranet_ros.model.checkpoints.save_safetensors`` is meant to replace this body; keep the
    signature so the trainer does not change.
    """
    path = Path(path)
    meta = {
        "format": FORMAT_TAG,
        "preset": preset.name,
        "class_names": json.dumps(list(preset.class_names)),
        "with_normals": json.dumps(preset.with_normals),
    }
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    tmp = _atomic_target(path)
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_model_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Weights and metadata written by :func:`save_model_weights`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist", reason="missing_weights")
    try:
        state = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file: {error}", reason="bad_weights") from None
    return state, metadata


def model_from_weights(path: str | Path) -> tuple[nn.Module, Preset, dict[str, str]]:
    """A HydraNet built from the preset named in a weights file's metadata, weights loaded."""
    import dataclasses

    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.model.presets import get_preset

    state, metadata = load_model_weights(path)
    name = metadata.get("preset")
    if not name:
        raise CheckpointError(f"{path} names no preset in its metadata", reason="no_preset")
    with_normals = json.loads(metadata.get("with_normals", "false"))
    try:
        preset = get_preset(name.removesuffix("_normals") if name not in _known_presets() else name)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}", reason="unknown_preset") from None
    if preset.with_normals != with_normals:  # a task set trained beyond the preset's heads
        preset = dataclasses.replace(preset, name=name, with_normals=with_normals)
    model = HydraNet(preset)
    load_into(model, state, source=str(path))
    return model, preset, metadata


def _known_presets() -> set[str]:
    from hydranet_ros.model.presets import PRESETS

    return set(PRESETS)


def load_into(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Strict load with a readable report instead of torch's wall of keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        def head(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        parts = [f"{len(missing)} missing [{head(missing)}]" if missing else "",
                 f"{len(unexpected)} unexpected [{head(unexpected)}]" if unexpected else "",
                 f"{len(wrong_shape)} with other shapes [{head(wrong_shape)}]" if wrong_shape else ""]
        raise CheckpointError(f"{source} does not fit the network: " + "; ".join(p for p in parts if p),
                              reason="weights_mismatch")
    model.load_state_dict(state, strict=True)


def save_training_state(path: str | Path, state: dict[str, Any]) -> Path:
    path = Path(path)
    tmp = _atomic_target(path)
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_training_state(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as error:
        raise CheckpointError(f"training state {path} cannot be read: {error}", reason="bad_state") from None


class CheckpointStore:
    """Numbered checkpoint pairs in one folder, the newest named by ``latest.json``."""

    def __init__(self, *, folder: str | Path, keep: int = 2) -> None:
        self.folder = Path(folder)
        self.keep = keep

    @property
    def latest_file(self) -> Path:
        return self.folder / "latest.json"

    def save(self, *, step: int, model_state: dict[str, torch.Tensor], training_state: dict[str, Any],
             preset: Preset, metadata: dict[str, str]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"step_{step:07d}"
        weights = save_model_weights(self.folder / f"{stem}.safetensors", model_state, preset=preset,
                                     metadata={**metadata, "step": str(step)})
        state = save_training_state(self.folder / f"{stem}.state.pt", {**training_state, "step": step})
        pointer = {"step": step, "weights": weights.name, "state": state.name}
        tmp = _atomic_target(self.latest_file)
        tmp.write_text(json.dumps(pointer))
        os.replace(tmp, self.latest_file)
        self._prune()
        return weights

    def _prune(self) -> None:
        pairs = sorted(self.folder.glob("step_*.safetensors"))
        for old in pairs[: max(0, len(pairs) - self.keep)]:
            old.unlink(missing_ok=True)
            old.with_name(old.name.replace(".safetensors", ".state.pt")).unlink(missing_ok=True)

    def latest(self) -> tuple[Path, Path, int] | None:
        """(weights, state, step) of the newest complete checkpoint, or None for a fresh run."""
        if not self.latest_file.is_file():
            return None
        try:
            pointer = json.loads(self.latest_file.read_text())
            weights, state, step = self.folder / pointer["weights"], self.folder / pointer["state"], int(pointer["step"])
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{self.latest_file} is damaged: {error}", reason="bad_pointer") from None
        if not weights.is_file() or not state.is_file():
            raise CheckpointError(f"{self.latest_file} names files that are gone ({weights.name}, {state.name})",
                                  reason="missing_checkpoint")
        return weights, state, step


def init_encoder_from_published(model: nn.Module, path: str | Path) -> int:
    """Copy encoder weights from a published checkpoint into ``model.encoder``; returns the count.

    Accepts the authors' pickles (``{'state_dict': ...}`` with keys ``layer1.0.weight`` ...,
    optionally prefixed ``module.``; read with weights_only=True) and our own safetensors files
    (keys ``encoder.stages.layerN...``). Every encoder tensor must be present with the right
    shape; decoder and head keys are ignored, so a checkpoint with other classes still serves.
    To be replaced by ``hydranet_ros.model.checkpoints.load_published_state`` when it exists.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"encoder checkpoint {path} does not exist", reason="missing_weights")
    if path.suffix == ".safetensors":
        state, _ = load_model_weights(path)
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 -- any unpickling failure means "not loadable safely"
            raise CheckpointError(f"{path} cannot be read as a weights-only checkpoint: {error}",
                                  reason="bad_weights") from None
        state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} holds no state_dict", reason="bad_weights")
    encoder_state: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("encoder.stages."):
            encoder_state[key.removeprefix("encoder.stages.")] = value
        elif key.startswith("layer"):
            encoder_state[key] = value
    encoder = model.encoder.stages  # type: ignore[union-attr]
    # Checkpoints saved before PyTorch 0.4.1 lack BatchNorm's step counter; it does not matter.
    for key, value in encoder.state_dict().items():
        if key.endswith("num_batches_tracked"):
            encoder_state.setdefault(key, value)
    load_into(encoder, encoder_state, source=f"encoder weights from {path}")
    return len(encoder_state)
