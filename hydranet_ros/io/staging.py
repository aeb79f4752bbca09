"""Outputs that appear complete or not at all: build in a hidden folder beside the target, rename.

An interrupted writer (Ctrl-C, SIGTERM) removes its staging folder at once; a killed one (SIGKILL,
power loss) leaves it hidden, without anything that makes it look finished, and the next writer
to the same target removes it. The writer's pid in the folder's name tells abandoned folders
from those of a writer still running.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

__all__ = ["STAGING_SUFFIX", "make_staging", "remove_abandoned", "move_into_place", "write_failure"]

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".partial"


def make_staging(target: Path) -> Path:
    """A new hidden folder beside ``target``: .<name>.<pid>.<random>.partial"""
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=STAGING_SUFFIX, dir=target.parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_abandoned(target: Path) -> None:
    """Delete hidden staging folders of earlier writers to ``target`` whose process is gone (killed).

    A folder of a writer still running (its pid alive) is left alone: two writers to the same
    output must not delete each other's work. pid reuse can only make us keep a folder, not lose one.
    """
    for folder in target.parent.glob(f".{target.name}.*{STAGING_SUFFIX}"):
        pid_text = folder.name[len(target.name) + 2:].split(".", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)) or not folder.is_dir():
            continue
        log.info("removing %s, left by an interrupted writer (pid %s)", folder, pid_text)
        shutil.rmtree(folder, ignore_errors=True)


def move_into_place(built: Path, target: Path, staging: Path) -> None:
    """Rename the finished output to ``target``; an old one (overwrite) goes only once the new one is there."""
    if not (target.exists() or target.is_symlink()):
        os.replace(built, target)
        return
    old = staging / "replaced"
    os.replace(target, old)
    try:
        os.replace(built, target)
    except OSError:
        os.replace(old, target)  # put the old output back rather than lose both
        raise


def write_failure(target: Path, exc: BaseException) -> str:
    """One line naming the output and the cause of a failed write (disk full, read-only folder)."""
    if isinstance(exc, OSError):
        cause = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            cause = f"{cause} (disk full)"
        where = f" ({exc.filename})" if exc.filename else ""
        return f"cannot write {target}: {cause}{where}; the partial output was removed"
    if isinstance(exc, sqlite3.Error):
        # sqlite3 says "database or disk is full" or "attempt to write a readonly database".
        return f"cannot write {target}: sqlite3: {exc}; the partial output was removed"
    return f"cannot write {target}: {exc}; the partial output was removed"
