"""Compiled artifacts (TensorRT engines, ONNX files, OpenVINO IR, int8 models) cached on disk,
and never trusted blindly.

A TensorRT engine is valid only for the TensorRT build, GPU, precision, input shape and weights
it was made with, and building one takes minutes on a Jetson. So every artifact is filed under a
slot (backend, weights, size, precision) with a JSON metadata file beside it holding the full key
(including library versions, the GPU, and for CPU int8 models the CPU's instruction sets) and
the artifact's size and SHA-256. On load all of it is
checked; anything stale, corrupt or truncated is rebuilt with a warning.

Layout, in the cache directory::

    tensorrt-<weights[:16]>-640x480-fp16.engine        the artifact
    tensorrt-<weights[:16]>-640x480-fp16.engine.json   its metadata (written last: the commit mark)
    tensorrt-<weights[:16]>-640x480-fp16.engine.lock   flock'ed while someone checks or builds
    tensorrt-<weights[:16]>-640x480-fp16-batch1-4.engine   an engine for 1..4 cameras per pass

Crash safety: the artifact and the metadata are each written to a temporary file in the same
directory, fsync'ed, then renamed over the final name (rename is atomic within a filesystem), and
the directory is fsync'ed. A writer killed at any point leaves either the previous valid pair, or
an artifact whose metadata does not match it (rejected and rebuilt), plus an orphaned temporary
file that the next builder of that slot deletes.

Concurrency: ``get_or_build`` holds an exclusive ``fcntl.flock`` on the slot's lock file while it
checks, builds and writes. A second process building the same slot waits, then finds the first
one's valid artifact and uses it: one build, no interleaved writes. The kernel drops the lock when
its holder dies, so a killed builder never blocks the others.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

from hydranet_ros.paths import cache_dir
from hydranet_ros.runtime.engines.base import EngineError

log = logging.getLogger(__name__)

CACHE_FORMAT = "hydranet_ros-engine-cache/1"
ENGINE_CACHE_ENV = "HYDRANET_ENGINE_CACHE"  # overrides the directory, e.g. in a deployment image


def engine_cache_dir() -> Path:
    """$HYDRANET_ENGINE_CACHE, else the package cache (XDG) + /engines."""
    if explicit := os.environ.get(ENGINE_CACHE_ENV):
        return Path(explicit).expanduser()
    return cache_dir() / "engines"


@dataclass(frozen=True)
class EngineKey:
    """Everything an artifact depends on. Two keys are equal only if the artifact is reusable."""

    weights_sha256: str
    input_size: tuple[int, int] | None  # (width, height); None: built for any size
    precision: str
    backend: str
    library_versions: tuple[tuple[str, str], ...]  # sorted (name, version) pairs
    gpu_name: str  # "" when the artifact is device independent (ONNX)
    compute_capability: str  # "8.7"; "" when device independent
    # "x86_64 avx2 fma": where an artifact was judged on this CPU's kernels (int8: its accuracy
    # gate ran with them; without VNNI int8 products take another path); "" when it does not matter.
    cpu_flags: str = ""
    # The batch dimension: 1 = a fixed batch of one frame; N > 1 = dynamic, 1..N (several cameras
    # through one network, backends that build for a batch range: TensorRT).
    max_batch: int = 1

    def as_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size is not None else None
        d["library_versions"] = dict(self.library_versions)
        if self.max_batch == 1:
            # Keys of one-camera artifacts stay what they were before batching existed, so the
            # engines already cached (minutes to build on a Jetson) are still found and trusted.
            del d["max_batch"]
        return d

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    @property
    def slot(self) -> str:
        """File stem: readable, and the same for keys that differ only in environment, so that a
        library upgrade replaces the stale engine instead of piling up new ones beside it."""
        size = "any" if self.input_size is None else f"{self.input_size[0]}x{self.input_size[1]}"
        batch = f"-batch1-{self.max_batch}" if self.max_batch != 1 else ""
        return f"{self.backend}-{self.weights_sha256[:16] or 'noweights'}-{size}-{self.precision}{batch}"


def make_key(
    *, weights_sha256: str, input_size: tuple[int, int] | None, precision: str, backend: str,
    library_versions: Mapping[str, str], gpu_name: str = "", compute_capability: str = "", cpu_flags: str = "",
    max_batch: int = 1,
) -> EngineKey:
    return EngineKey(
        weights_sha256=weights_sha256,
        input_size=None if input_size is None else (int(input_size[0]), int(input_size[1])),
        precision=precision,
        backend=backend,
        library_versions=tuple(sorted((str(k), str(v)) for k, v in library_versions.items())),
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        cpu_flags=cpu_flags,
        max_batch=int(max_batch),
    )


def installed_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Distribution versions without importing the packages ('absent' where not installed)."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def gpu_identity(device) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of a CUDA device."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"{major}.{minor}"


# The instruction sets that change which int8/fp32 kernels a CPU runtime picks (x86 and Arm).
CPU_FEATURES = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni",
                "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve", "bf16")


def cpu_identity(cpuinfo: str | None = None) -> str:
    """'x86_64 avx avx2 f16c fma': the machine and its CPU_FEATURES, from /proc/cpuinfo."""
    import platform

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            flags.update(value.split())
    return " ".join([platform.machine() or "unknown", *sorted(flags & set(CPU_FEATURES))])


@dataclass
class CacheEntry:
    path: Path
    built: bool  # False: an existing artifact passed every check
    extra: dict | None = None  # what the build recorded beside the key (e.g. an int8 accuracy gate)


class CacheError(EngineError):
    """The cache directory cannot be used (permissions, disk full); the message says which.

    An EngineError, so a backend whose cache fails steps down like one whose build fails."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class EngineCache:
    """Artifacts on disk keyed by EngineKey; see the module docstring for the guarantees."""

    def __init__(self, *, directory: str | os.PathLike | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else engine_cache_dir()

    def artifact_path(self, key: EngineKey, suffix: str) -> Path:
        return self.directory / f"{key.slot}{suffix}"

    @staticmethod
    def metadata_path(artifact: Path) -> Path:
        return artifact.with_name(artifact.name + ".json")

    # --- reading --------------------------------------------------------------------------------
    def check(self, key: EngineKey, suffix: str) -> tuple[Path | None, str]:
        """(path, '') if a valid artifact for ``key`` is cached, else (None, why not)."""
        path, why, _ = self._check(key, suffix)
        return path, why

    def _check(self, key: EngineKey, suffix: str) -> tuple[Path | None, str, dict]:
        """check(), plus the metadata of a valid artifact ({} otherwise)."""
        artifact = self.artifact_path(key, suffix)
        meta_path = self.metadata_path(artifact)
        if not artifact.exists() and not meta_path.exists():
            return None, "not cached", {}
        if not meta_path.is_file():
            return None, "artifact without metadata (an interrupted build?)", {}
        try:
            meta = read_metadata(meta_path)
        except (OSError, ValueError) as exc:
            return None, f"unreadable metadata ({str(exc)[:120]})", {}
        if meta.get("format") != CACHE_FORMAT:
            return None, f"metadata format {meta.get('format')!r}, expected {CACHE_FORMAT!r}", {}
        if meta.get("key") != key.as_dict():
            return None, "stale: " + describe_key_change(meta.get("key"), key.as_dict()), {}
        if not artifact.is_file():
            return None, "metadata without artifact", {}
        size = artifact.stat().st_size
        if size != meta.get("artifact_size"):
            return None, f"truncated or altered: {size} bytes, metadata says {meta.get('artifact_size')}", {}
        if file_sha256(artifact) != meta.get("artifact_sha256"):
            return None, "corrupt: SHA-256 of the artifact does not match its metadata", {}
        return artifact, "", meta

    def recorded_key(self, key: EngineKey, suffix: str) -> dict | None:
        """The full key stored in the metadata of ``key``'s slot (same backend, weights, size and
        precision; possibly other versions or calibration), or None. For finding what was built
        ahead of time; the artifact is still checked against the complete key before use."""
        try:
            meta = read_metadata(self.metadata_path(self.artifact_path(key, suffix)))
        except (OSError, ValueError):
            return None
        return meta.get("key") if isinstance(meta.get("key"), dict) else None

    def load(self, key: EngineKey, suffix: str) -> CacheEntry | None:
        path, _, meta = self._check(key, suffix)
        if path is None:
            return None
        return CacheEntry(path=path, built=False, extra=meta.get("extra"))

    # --- writing --------------------------------------------------------------------------------
    def get_or_build(
        self, key: EngineKey, *, suffix: str, build: Callable[[Path], dict | None], what: str = "engine",
    ) -> CacheEntry:
        """The cached artifact for ``key``, or ``build(tmp_path)`` it (writing the file at
        ``tmp_path``) and cache it. Concurrent callers for the same slot build once. What ``build``
        returns (a JSON-able dict, or None) is kept in the metadata as the entry's ``extra``."""
        # A valid entry is used without the lock, so a read-only deployment cache still serves.
        path, _, meta = self._check(key, suffix)
        if path is not None:
            log.info("using cached %s %s", what, path)
            return CacheEntry(path=path, built=False, extra=meta.get("extra"))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create engine cache directory {self.directory}: {exc}") from None
        artifact = self.artifact_path(key, suffix)
        try:
            return self._build_locked(key, suffix, artifact, build, what)
        except OSError as exc:  # read-only folder, disk full: one clear line, and a fallback
            raise CacheError(f"cannot write {what} into the engine cache {self.directory}: {exc.strerror or exc}") from None

    def _build_locked(self, key: EngineKey, suffix: str, artifact: Path, build: Callable[[Path], dict | None], what: str) -> CacheEntry:
        with self._locked(artifact):
            path, why, meta = self._check(key, suffix)
            if path is not None:
                log.info("using cached %s %s", what, path)
                return CacheEntry(path=path, built=False, extra=meta.get("extra"))
            if why != "not cached":
                log.warning("cached %s %s is not usable (%s); rebuilding it", what, artifact, why)
            self._remove_orphans(artifact)
            started = time.monotonic()
            extra = self._build_and_commit(key, artifact, build)
            log.info("built %s %s in %.1f s", what, artifact, time.monotonic() - started)
            return CacheEntry(path=artifact, built=True, extra=extra)

    def invalidate(self, key: EngineKey, suffix: str, reason: str) -> None:
        """Drop an artifact that passed the file checks but failed to load (e.g. the runtime
        refused it); the next get_or_build rebuilds it."""
        artifact = self.artifact_path(key, suffix)
        log.warning("discarding cached %s (%s)", artifact, reason)
        with self._locked(artifact):
            for path in (self.metadata_path(artifact), artifact):
                path.unlink(missing_ok=True)

    def _build_and_commit(self, key: EngineKey, artifact: Path, build: Callable[[Path], dict | None]) -> dict | None:
        # The old metadata goes first: from here until the new metadata lands, the slot reads as
        # "artifact without metadata" and is rebuilt, whatever state a crash leaves it in.
        self.metadata_path(artifact).unlink(missing_ok=True)
        tmp = self._temp_path(artifact)
        try:
            extra = build(tmp)
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise CacheError(f"building {artifact.name} produced no file")
            _fsync_file(tmp)
            meta = {
                "format": CACHE_FORMAT,
                "key": key.as_dict(),
                "key_digest": key.digest,
                "artifact": artifact.name,
                "artifact_size": tmp.stat().st_size,
                "artifact_sha256": file_sha256(tmp),
                "created_unix": time.time(),
                **({"extra": extra} if extra is not None else {}),
            }
            os.replace(tmp, artifact)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        write_atomic(self.metadata_path(artifact), json.dumps(meta, indent=2, sort_keys=True).encode())
        _fsync_dir(artifact.parent)
        return extra

    def _temp_path(self, artifact: Path) -> Path:
        fd, name = tempfile.mkstemp(prefix=f".{artifact.name}.", suffix=".tmp", dir=artifact.parent)
        os.close(fd)
        return Path(name)

    def _remove_orphans(self, artifact: Path) -> None:
        # Only called under the slot's lock: any temporary file of this slot belongs to a dead writer.
        for orphan in artifact.parent.glob(f".{artifact.name}.*.tmp"):
            log.info("removing %s left by an interrupted build", orphan)
            orphan.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self, artifact: Path) -> Iterator[None]:
        lock_path = artifact.with_name(artifact.name + ".lock")
        with open(lock_path, "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                log.info("another process is building %s; waiting for it", artifact.name)
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


# Metadata is a few hundred bytes; anything far larger was not written by this cache.
MAX_METADATA_BYTES = 1 << 20


def read_metadata(path: Path) -> dict:
    """A metadata file as a dict; ValueError for anything else (too large, not UTF-8, not JSON, nested
    past the parser's recursion limit, not an object), which the cache treats as "rebuild"."""
    with open(path, "rb") as f:
        data = f.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise ValueError(f"more than {MAX_METADATA_BYTES} bytes")
    try:
        meta = json.loads(data.decode("utf-8"))
    except RecursionError:  # a file of 100,000 nested brackets
        raise ValueError("nested too deep") from None
    if not isinstance(meta, dict):
        raise ValueError("not a JSON object")
    return meta


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable across power loss (the directory entry is metadata).
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe_key_change(old: object, new: dict) -> str:
    """'torch_tensorrt 2.5.0 -> 2.6.0, gpu_name ...': which key parts differ, for the warning."""
    if not isinstance(old, dict):
        return "metadata has no key"
    changes = []
    for part, value in new.items():
        before = old.get(part)
        if part == "library_versions" and isinstance(before, dict):
            for lib in sorted(set(before) | set(value)):
                if before.get(lib) != value.get(lib):
                    changes.append(f"{lib} {before.get(lib, 'absent')} -> {value.get(lib, 'absent')}")
        elif before != value:
            changes.append(f"{part} {before!r} -> {value!r}")
    return ", ".join(changes) or "key differs"
