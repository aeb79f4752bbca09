"""Outputs that appear complete or not at all: build beside the target under a hidden name, rename.

A bag is built in a hidden folder, a file (a PNG, an mp4) under a hidden name, both in the target's
own folder (a rename is atomic only within one filesystem):

    .<target name>.<pid>.<random>.partial          a bag being written (a folder)
    .<target name>.<pid>.<random>.partial<suffix>   a file being written (the suffix tells OpenCV's
                                                    writers the format)

An interrupted writer (Ctrl-C, SIGTERM) removes its staged outputs at once; a killed one (SIGKILL,
power loss) leaves them hidden, without anything that makes them look finished, and the next
writer to the same place removes them. The writer's pid in the name tells abandoned outputs from
those of a writer still running; names are parsed exactly (no glob patterns: a target named
``out[1]`` must not match ``out1``'s outputs).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sqlite3
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

__all__ = ["STAGING_SUFFIX", "make_staging", "staged_file", "remove_abandoned", "remove_abandoned_in",
           "move_into_place", "write_files_together", "write_atomic", "write_image", "write_failure"]

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".partial"
# .<name>.<pid>.<token>.partial[<suffix>]; tempfile's tokens are letters, digits and '_'.
_STAGED = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<token>[A-Za-z0-9_]+)\.partial(?P<suffix>\.[A-Za-z0-9]+)?$")


def make_staging(target: Path) -> Path:
    """A new hidden folder beside ``target``: .<name>.<pid>.<random>.partial"""
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=STAGING_SUFFIX, dir=target.parent))


def staged_file(target: Path) -> Path:
    """A new, empty hidden file beside ``target`` to write it under: .<name>.<pid>.<random>.partial<suffix>"""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=STAGING_SUFFIX + target.suffix,
                                dir=target.parent)
    os.close(fd)
    return Path(name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except (OverflowError, ValueError):
        return False  # not a pid at all
    return True


def _abandoned(entry: Path, name: str | None) -> bool:
    """Whether ``entry`` is a staged output (of ``name``, or of any name when None) whose writer is gone."""
    parsed = _STAGED.match(entry.name)
    if parsed is None or (name is not None and parsed["name"] != name):
        return False
    return not _pid_alive(int(parsed["pid"]))


def _remove(entry: Path) -> None:
    log.info("removing %s, left by an interrupted writer", entry)
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def remove_abandoned(target: Path) -> None:
    """Delete staged outputs of earlier writers to ``target`` whose process is gone (killed).

    Those of a writer still running (its pid alive) are left alone: two writers to the same
    output must not delete each other's work. pid reuse can only make us keep one, not lose one.
    """
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if _abandoned(entry, target.name):
            _remove(entry)


def remove_abandoned_in(folder: Path) -> None:
    """remove_abandoned for every target in ``folder`` (a results folder many files go into)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if _abandoned(entry, None):
            _remove(entry)


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


@contextmanager
def _staged_writes(targets: list[Path]) -> Iterator[list[Path]]:
    staged = [staged_file(target) for target in targets]
    try:
        yield staged
    finally:
        for path in staged:
            path.unlink(missing_ok=True)  # gone already when renamed into place


def write_files_together(files: Mapping[Path, bytes]) -> None:
    """Write several files so that they appear together: each under a hidden name first, then all
    renamed. Interrupted (an exception, Ctrl-C) before the last rename, none of them is left."""
    targets = list(files)
    with _staged_writes(targets) as staged:
        for path, data in zip(staged, files.values()):
            path.write_bytes(data)
        renamed: list[Path] = []
        try:
            for path, target in zip(staged, targets):
                os.replace(path, target)
                renamed.append(target)
        except BaseException:
            for target in renamed:
                target.unlink(missing_ok=True)
            raise


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write one file that appears complete or not at all."""
    path = Path(path)
    write_files_together({path: data})
    return path


def write_image(path: str | os.PathLike, image) -> Path:
    """An image (BGR, or one channel) as the file ``path`` names (its suffix picks the format),
    appearing complete or not at all."""
    import cv2  # the one OpenCV use here; staging itself is plain files

    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"could not encode an image as {path.suffix}: {path}")
    return write_atomic(path, encoded.tobytes())


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
