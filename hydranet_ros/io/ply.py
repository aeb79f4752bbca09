"""Point clouds as PLY files (binary little-endian), as `hydranet infer --points` writes them.

One vertex element with x, y, z (float, metres, camera optical frame), red, green, blue (uchar),
label (uchar) and confidence (float): the properties MeshLab, CloudCompare, Open3D and PCL's PLY
reader know, plus two of ours, which they keep as scalar fields. The file is written beside its
target under a hidden name and renamed into place: it appears complete or not at all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from hydranet_ros.errors import HydraNetError

__all__ = ["VERTEX_DTYPE", "PlyError", "write_ply", "read_ply"]

# PLY's binary records are packed: 20 bytes a vertex, in the header's property order.
VERTEX_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                         ("label", "u1"), ("confidence", "<f4")])
_TYPES = {"<f4": "float", "|u1": "uchar"}


class PlyError(HydraNetError):
    """A PLY file that cannot be written or read; the message names the file."""


def _header(count: int, comments: Sequence[str]) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {count}")
    lines += [f"property {_TYPES[VERTEX_DTYPE.fields[name][0].str]} {name}" for name in VERTEX_DTYPE.names]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def write_ply(path: str | Path, vertices: np.ndarray, *, comments: Sequence[str] = ()) -> None:
    """Write ``vertices`` (a VERTEX_DTYPE array) to ``path``, replacing an earlier file only once
    the new one is complete. ``comments``: one line each, ASCII (class names, the frame)."""
    path = Path(path)
    if vertices.dtype != VERTEX_DTYPE or vertices.ndim != 1:
        raise ValueError(f"vertices must be a 1-D VERTEX_DTYPE array, got {vertices.ndim}-D {vertices.dtype}")
    if any("\n" in c or not c.isascii() for c in comments):
        raise ValueError("PLY comments are single ASCII lines")
    handle, temporary = None, None
    try:
        # Named as io/staging names partial files, so the next run into the folder removes one a
        # killed run left behind.
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".partial{path.suffix}",
                                             dir=path.parent)
        with os.fdopen(handle, "wb") as stream:
            handle = None
            os.fchmod(stream.fileno(), 0o644)  # mkstemp's 0600 would hide the result from other users
            stream.write(_header(len(vertices), comments))
            stream.write(np.ascontiguousarray(vertices).tobytes())
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        temporary = None
    except OSError as exc:
        raise PlyError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if handle is not None:
            os.close(handle)
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def read_ply(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """(vertices, comments) of a file write_ply wrote; PlyError for any other layout."""
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise PlyError(f"{path}: not a PLY file")
    lines = data[:end].decode("ascii").splitlines()
    comments = [line[len("comment "):] for line in lines if line.startswith("comment ")]
    layout = [line for line in lines if not line.startswith("comment ")]
    counts = [int(line.split()[2]) for line in layout if line.startswith("element vertex ")]
    expected = _header(counts[0] if counts else -1, ()).decode("ascii").splitlines()[:-1]
    if layout != expected:
        raise PlyError(f"{path}: not the layout write_ply writes ({layout})")
    body = data[end + len(b"end_header\n"):]
    if len(body) != counts[0] * VERTEX_DTYPE.itemsize:
        raise PlyError(f"{path}: {len(body)} bytes of vertex data for {counts[0]} vertices")
    return np.frombuffer(body, dtype=VERTEX_DTYPE), comments
