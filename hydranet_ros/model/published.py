"""The authors' published checkpoints: which files exist, how to verify them, where they are cached.

A table and two paths, below both the weights formats (checkpoints.py reads the cache for
'default' and preset names) and the downloader (download.py fills it), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydranet_ros.paths import cache_dir

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/DrSleep/multi-task-refinenet/master/weights/"
BASE_URL_ENV = "HYDRANET_WEIGHTS_URL"  # a mirror, e.g. inside a fleet without internet


# The published checkpoints are pickles of fp32 tensors: 11.5-11.9 MiB by the architecture (the
# git blob id checks the exact bytes afterwards). A download that grows past this is not one of
# them (a mirror sending an endless body wrote 5 GiB into the cache in 31 s).
MAX_PUBLISHED_BYTES = 64 << 20


@dataclass(frozen=True)
class PublishedFile:
    filename: str
    git_blob_sha1: str
    max_bytes: int = MAX_PUBLISHED_BYTES


PUBLISHED: dict[str, PublishedFile] = {
    "kitti": PublishedFile("ExpKITTI_joint.ckpt", "d9386a96f748001406c622100ce944333d1967ff"),
    "nyud": PublishedFile("ExpNYUD_joint.ckpt", "56f5f5a6bc08a64f36e83547140add41baa4216d"),
    "nyud_kitti": PublishedFile("ExpNYUDKITTI_joint.ckpt", "54f57cc2bd15e5cdfa9f3f1eaba9760951218bfa"),
    "nyud_three": PublishedFile("ExpNYUD_three.ckpt", "6f412c152600827cabff5e1b66efad50090c16a7"),
}


def weights_cache_dir() -> Path:
    return cache_dir() / "weights"


def cached_weights_path(preset: str) -> Path:
    return weights_cache_dir() / f"{preset}.safetensors"
