"""Where the package keeps what it downloads and builds: one cache folder for weights and engines."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "HYDRANET_CACHE_DIR"


def cache_dir() -> Path:
    """$HYDRANET_CACHE_DIR, else $XDG_CACHE_HOME/hydranet_ros, else ~/.cache/hydranet_ros."""
    if explicit := os.environ.get(CACHE_DIR_ENV):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "hydranet_ros"
