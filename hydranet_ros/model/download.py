"""Fetch the authors' published checkpoints, verify them, convert and cache them.

Files are verified against their git blob id (SHA-1 of ``b"blob <size>\\0" + content``), which the
authors' repository fixes, so a damaged or substituted download is never used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from hydranet_ros.errors import HydraNetError
from hydranet_ros.model.checkpoints import WeightsError, load_published, save_safetensors
from hydranet_ros.model.published import (  # noqa: F401 - the names `hydranet weights` shows
    BASE_URL_ENV, DEFAULT_BASE_URL, PUBLISHED, PublishedFile, cached_weights_path, weights_cache_dir,
)
from hydranet_ros.presets import get_preset


class DownloadError(HydraNetError):
    """The published weights could not be fetched or verified; the message says why."""


def git_blob_sha1(path: str | os.PathLike) -> str:
    size = os.path.getsize(path)
    digest = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, *, timeout: float, progress: Callable[[int, int | None], None] | None) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            done = 0
            with open(dest, "wb") as out:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"cannot reach {url} ({reason}); without internet, copy the file from another machine and run "
            "`hydranet convert FILE OUT.safetensors`"
        ) from None
    except OSError as exc:  # e.g. a connection cut mid-body
        raise DownloadError(f"{url}: transfer failed ({exc})") from None
    if total is not None and done != total:
        raise DownloadError(f"{url}: truncated download ({done} of {total} bytes)")


def download_published(
    preset: str, *, base_url: str | None = None, timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None, force: bool = False,
) -> Path:
    """Download, verify, convert and cache one preset's published weights; returns the cached path."""
    get_preset(preset)  # a clear error for unknown names
    if preset not in PUBLISHED:
        raise DownloadError(f"no published weights for preset {preset!r}")
    target = cached_weights_path(preset)
    if target.is_file() and not force:
        return target
    info = PUBLISHED[preset]
    base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    url = base.rstrip("/") + "/" + info.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        raw = Path(tmp) / info.filename
        _fetch(url, raw, timeout=timeout, progress=progress)
        got = git_blob_sha1(raw)
        if got != info.git_blob_sha1:
            raise DownloadError(f"{url}: checksum mismatch (git blob {got}, expected {info.git_blob_sha1}); file discarded")
        try:
            weights = load_published(raw, preset=preset)
        except WeightsError as exc:
            raise DownloadError(f"{url}: verified but unusable: {exc.problem}") from None
        save_safetensors(target, weights.state_dict, weights.preset, extra={"source": url, "git_blob_sha1": got})
    return target
