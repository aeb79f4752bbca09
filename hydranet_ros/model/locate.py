"""Which file a weights name means, found without torch: 'default', a preset name, or a path.

The rules live here once. ``checkpoints.load_weights`` follows them to load the file; the
`hydranet` command follows them first, so a misspelt name or a missing file is reported at once,
before seconds go into importing torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hydranet_ros.errors import HydraNetError
from hydranet_ros.model.published import cached_weights_path
from hydranet_ros.presets import PRESETS

__all__ = ["WeightsError", "WeightsFile", "PUBLISHED_SUFFIXES", "shipped_default_path", "locate_weights"]

PUBLISHED_SUFFIXES = (".ckpt", ".pth", ".pt", ".tar")


class WeightsError(HydraNetError):
    """A weights file cannot be used; the message names the file and the problem."""

    def __init__(self, source: str | os.PathLike, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


@dataclass(frozen=True)
class WeightsFile:
    path: Path
    published: bool  # the authors' pickled checkpoint format (else our safetensors)


def shipped_default_path() -> Path:
    """The small model trained on synthetic streets that ships inside the package."""
    return Path(__file__).resolve().parent.parent / "weights" / "hydranet_synthetic_kitti6.safetensors"


def locate_weights(spec: str | os.PathLike) -> WeightsFile:
    """The file ``spec`` names: 'default' (the cached published KITTI weights when present, else
    the shipped model), a preset name (its downloaded weights), or a path. A WeightsError says
    why nothing usable is there; whether the file loads is for checkpoints to say."""
    spec_str = str(spec)
    if spec_str == "default":
        cached = cached_weights_path("kitti")
        if cached.is_file():
            return WeightsFile(cached, published=False)
        if shipped_default_path().is_file():
            return WeightsFile(shipped_default_path(), published=False)
        raise WeightsError("default", "no cached published weights and no shipped default model in this install")
    if spec_str in PRESETS:
        cached = cached_weights_path(spec_str)
        if not cached.is_file():
            raise WeightsError(spec_str, f"published '{spec_str}' weights are not cached; run `hydranet weights download {spec_str}`")
        return WeightsFile(cached, published=False)
    path = Path(spec_str).expanduser()
    if path.suffix in (".safetensors", *PUBLISHED_SUFFIXES):
        if not path.is_file():
            raise WeightsError(path, "no such file" if not path.exists() else "not a regular file")
        return WeightsFile(path, published=path.suffix != ".safetensors")
    if not path.exists():
        raise WeightsError(spec_str, f"no such file, and not a preset name ({', '.join(PRESETS)}) or 'default'")
    raise WeightsError(spec_str, f"unknown weights format {path.suffix!r}: use .safetensors or a published {'/'.join(PUBLISHED_SUFFIXES)} checkpoint")
