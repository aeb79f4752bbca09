"""Fetch the authors' published checkpoints, verify them, convert and cache them.

Files are verified against their git blob id (SHA-1 of ``b"blob <size>\\0" + content``), which the
authors' repository fixes, so a damaged or substituted download is never used.

A misbehaving server or mirror costs little and ends in one line: the body may not grow past the
file's known bound (PublishedFile.max_bytes), the whole transfer has a deadline and must keep
moving (a trickle of a byte every few seconds is cut off), and every protocol fault (a garbage
status line, oversized headers, broken chunked encoding, a cut connection) is a DownloadError.
Partial downloads live in the cache as .download-<pid>-* folders; the next download removes
those of processes that are gone (a SIGKILL leaves one behind).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from hydranet_ros.errors import HydraNetError, first_line
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


# The whole transfer must end within DEADLINE_S and move at least STALL_BYTES every STALL_S.
DEADLINE_S = 600.0
STALL_S, STALL_BYTES = 60.0, 64 << 10
_PARTIAL_PREFIX = ".download-"


def _fetch(url: str, dest: Path, *, timeout: float, progress: Callable[[int, int | None], None] | None,
           max_bytes: int, deadline_s: float = DEADLINE_S, stall_s: float = STALL_S,
           stall_bytes: int = STALL_BYTES) -> None:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            if total is not None and total > max_bytes:
                raise DownloadError(f"{url}: the server announces {total} bytes, more than the published file "
                                    f"can be ({max_bytes}); not downloaded")
            done, window_start, window_done = 0, started, 0
            with open(dest, "wb") as out:
                # read1: whatever arrived, at once; read(n) would wait for n bytes from a trickle.
                while chunk := response.read1(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if done > max_bytes:
                        raise DownloadError(f"{url}: the server sent more than {max_bytes} bytes, more than the "
                                            "published file can be; download discarded")
                    now = time.monotonic()
                    if now - started > deadline_s:
                        raise DownloadError(f"{url}: not complete after {deadline_s:.0f} s ({done} bytes); "
                                            "download discarded")
                    if now - window_start > stall_s:
                        if done - window_done < stall_bytes:
                            raise DownloadError(f"{url}: stalled ({done - window_done} bytes in the last "
                                                f"{stall_s:.0f} s); download discarded")
                        window_start, window_done = now, done
                    if progress:
                        progress(done, total)
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: server answered {exc.code} {_one_line(exc.reason)}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionRefusedError, socket.gaierror) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"cannot reach {url} ({_one_line(reason)}); without internet, copy the file from "
            "another machine and run `hydranet convert FILE OUT.safetensors`"
        ) from None
    except (http.client.HTTPException, ValueError, OSError) as exc:
        # A garbage status line, headers past http.client's limits, broken chunked encoding (a
        # ValueError from the chunk size), a connection cut mid-body, a timeout mid-body.
        raise DownloadError(f"{url}: transfer failed ({type(exc).__name__}: {first_line(exc)})") from None
    if total is not None and done != total:
        raise DownloadError(f"{url}: truncated download ({done} of {total} bytes)")


def _one_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0][:200] if lines else ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete partial-download folders whose process is gone (``.download-<pid>-<random>``, or an
    older ``.download-<random>`` without a pid once it is an hour old); returns them."""
    removed = []
    for entry in folder.glob(f"{_PARTIAL_PREFIX}*") if folder.is_dir() else ():
        pid_text = entry.name[len(_PARTIAL_PREFIX):].split("-", 1)[0]
        if pid_text.isdigit():
            stale = not _pid_alive(int(pid_text))
        else:
            try:
                stale = time.time() - entry.stat().st_mtime > 3600
            except OSError:
                continue
        if stale and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def download_published(
    preset: str, *, base_url: str | None = None, timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None, force: bool = False,
    limits: dict[str, float] | None = None,
) -> Path:
    """Download, verify, convert and cache one preset's published weights; returns the cached path.
    ``timeout`` is per network operation; ``limits`` may set deadline_s, stall_s, stall_bytes."""
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
    remove_stale_partials(target.parent)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f"{_PARTIAL_PREFIX}{os.getpid()}-") as tmp:
        raw = Path(tmp) / info.filename
        _fetch(url, raw, timeout=timeout, progress=progress, max_bytes=info.max_bytes, **(limits or {}))
        got = git_blob_sha1(raw)
        if got != info.git_blob_sha1:
            raise DownloadError(f"{url}: checksum mismatch (git blob {got}, expected {info.git_blob_sha1}); file discarded")
        try:
            weights = load_published(raw, preset=preset)
        except WeightsError as exc:
            raise DownloadError(f"{url}: verified but unusable: {exc.problem}") from None
        save_safetensors(target, weights.state_dict, weights.preset, extra={"source": url, "git_blob_sha1": got})
    return target
