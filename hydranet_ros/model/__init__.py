"""The HydraNet network in plain PyTorch: encoder, decoder, heads, presets and weights I/O."""

from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import PRESETS, Preset, get_preset

__all__ = ["HydraNet", "PRESETS", "Preset", "get_preset"]
