"""The HydraNet network in plain PyTorch: encoder, decoder, heads and weights I/O.

``HydraNet``, ``PRESETS``, ``Preset`` and ``get_preset`` are importable from here; torch loads
only when HydraNet is asked for, so the torch-free modules of this package (locate, published)
answer quickly.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HydraNet", "PRESETS", "Preset", "get_preset"]


def __getattr__(name: str) -> Any:
    if name == "HydraNet":
        from hydranet_ros.model.hydranet import HydraNet

        return HydraNet
    if name in ("PRESETS", "Preset", "get_preset"):
        import hydranet_ros.presets as presets

        return getattr(presets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
