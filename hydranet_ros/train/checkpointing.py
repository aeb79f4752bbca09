"""Checkpoints of a training run: model weights (safetensors) + training state (separate file).

Layout under ``<out_dir>/checkpoints``::

    step_0000400.safetensors    model weights and metadata (what inference needs)
    step_0000400.state.pt       optimizer, loss-weighting and step state; torch.save of tensors
                                and plain containers only, read back with weights_only=True
    latest.json                 {"step": 400, "weights": ..., "state": ...}

Both files are written to a temporary name and moved into place with ``os.replace`` (atomic on
POSIX), and ``latest.json`` is replaced last: a run killed at any moment leaves the previous
complete pair as "latest", so a resume loses at most one checkpoint interval. What a killed run
leaves besides (temporary files, a weights file whose state file never came, a pair newer than
``latest.json``) is removed by ``discard_incomplete`` when the next run starts, which says so.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hydranet_ros.errors import HydraNetError
from hydranet_ros.io import staging
from hydranet_ros.presets import Preset

LOG = logging.getLogger(__name__)


class CheckpointError(HydraNetError, RuntimeError):
    """A checkpoint that cannot be read or does not fit; ``reason`` is a short machine key."""

    def __init__(self, message: str, *, reason: str = "bad_checkpoint") -> None:
        super().__init__(message)
        self.reason = reason


def _atomic_target(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def save_model_weights(path: str | Path, state_dict: dict[str, torch.Tensor], *, preset: Preset,
                       metadata: dict[str, str] | None = None) -> Path:
    """THE one place the trainer writes model weights: the project's safetensors format, so a
    checkpoint of any step is directly usable by `hydranet infer --weights` and the node."""
    from hydranet_ros.model.checkpoints import save_safetensors

    path = Path(path)
    save_safetensors(path, state_dict, preset, extra={k: str(v) for k, v in (metadata or {}).items()})
    return path


def load_model_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Weights and metadata written by :func:`save_model_weights` (checked like any weights file)."""
    weights = _loaded(path)
    return weights.state_dict, weights.metadata


def _loaded(path: str | Path):
    from hydranet_ros.model.checkpoints import WeightsError, load_safetensors

    try:
        return load_safetensors(path)
    except WeightsError as error:
        raise CheckpointError(str(error), reason="missing_weights" if not Path(path).exists() else "bad_weights") from None


def model_from_weights(path: str | Path) -> tuple[nn.Module, Preset, dict[str, str]]:
    """A HydraNet built from the preset stored in a weights file's metadata, weights loaded."""
    weights = _loaded(path)
    return weights.build_model(), weights.preset, weights.metadata


def load_into(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Strict load with a readable report instead of torch's wall of keys."""
    from hydranet_ros.model.checkpoints import compare_state

    report = compare_state(model.state_dict(), state)
    if not report.ok:
        raise CheckpointError(f"{source} does not fit the network: {report}", reason="weights_mismatch")
    model.load_state_dict(state, strict=True)


def save_training_state(path: str | Path, state: dict[str, Any]) -> Path:
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C mid-write included: no temporary file left behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_training_state(path: str | Path) -> dict[str, Any]:
    """The training state, read as plain tensors and containers only (never code in a pickle)."""
    from hydranet_ros.model.checkpoints import WeightsError, read_pickle_of_tensors

    try:
        state = read_pickle_of_tensors(path)
    except WeightsError as error:
        raise CheckpointError(f"training state {error}", reason="bad_state") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"training state {path}: not a dictionary of training state", reason="bad_state")
    return state


_STEP_FILE = re.compile(r"^step_(?P<step>\d+)\.(safetensors|state\.pt)$")


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
        staging.write_atomic(self.latest_file, json.dumps(pointer).encode())
        self._prune()
        return weights

    def discard_incomplete(self) -> list[str]:
        """Remove what an interrupted save left: temporary files, and checkpoint files that are not
        part of a complete pair at or before ``latest.json``'s step (a weights file whose state file
        never came, or a pair written after the pointer was last moved). Returns their names."""
        if not self.folder.is_dir():
            return []
        latest = self.latest()
        newest = latest[2] if latest is not None else -1
        removed = []
        for path in sorted(self.folder.iterdir()):
            name = path.name
            partner = path.with_name(name.replace(".safetensors", ".state.pt") if name.endswith(".safetensors")
                                     else name.replace(".state.pt", ".safetensors"))
            temporary = name.startswith(".") and (".tmp" in name or staging.STAGING_SUFFIX in name)
            checkpoint = _STEP_FILE.match(name)
            incomplete = checkpoint is not None and (int(checkpoint["step"]) > newest or not partner.is_file())
            if (temporary or incomplete) and path.is_file():
                path.unlink()
                removed.append(name)
        return removed

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
    """Copy encoder weights from a published checkpoint (the authors' pickle, read with
    weights_only=True) or one of our safetensors files into ``model.encoder``; returns the count.

    Every encoder tensor must be present with the right shape; decoder and head keys are ignored,
    so a checkpoint with other classes still serves.
    """
    from hydranet_ros.model.checkpoints import WeightsError, published_to_ours, read_published_file

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state = _loaded(path).state_dict
        else:
            state = {published_to_ours(k) or k: v for k, v in read_published_file(path).items()}
    except WeightsError as error:
        raise CheckpointError(str(error), reason="missing_weights" if not path.exists() else "bad_weights") from None
    prefix = "encoder.stages."
    encoder_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    encoder = model.encoder.stages  # type: ignore[union-attr]
    # Checkpoints saved before PyTorch 0.4.1 lack BatchNorm's step counter; it does not matter.
    for key, value in encoder.state_dict().items():
        if key.endswith("num_batches_tracked"):
            encoder_state.setdefault(key, value)
    load_into(encoder, encoder_state, source=f"encoder weights from {path}")
    return len(encoder_state)
