"""Engine cache: keys, invalidation on each key part, corrupt/truncated files, a writer killed
mid-write, and two processes building the same engine at once."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hydranet_ros.runtime.engine_cache import EngineCache, engine_cache_dir, make_key

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = ".engine"

BASE = dict(
    weights_sha256="ab" * 32, input_size=(640, 480), precision="fp16", backend="tensorrt",
    library_versions={"torch": "2.5.0", "torch_tensorrt": "2.5.0", "tensorrt": "10.3.0"},
    gpu_name="Orin", compute_capability="8.7",
)
# One changed value per key part; each must make the cached artifact unusable.
KEY_CHANGES = {
    "weights_sha256": "cd" * 32,
    "input_size": (1280, 720),
    "precision": "int8",
    "backend": "onnx",
    "library_versions:torch": {"torch": "2.6.0", "torch_tensorrt": "2.5.0", "tensorrt": "10.3.0"},
    "library_versions:torch_tensorrt": {"torch": "2.5.0", "torch_tensorrt": "2.6.0", "tensorrt": "10.3.0"},
    "library_versions:tensorrt": {"torch": "2.5.0", "torch_tensorrt": "2.5.0", "tensorrt": "10.7.0"},
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "compute_capability": "9.0",
}


def builder(content: bytes, calls: list):
    def build(tmp: Path) -> None:
        calls.append(content)
        tmp.write_bytes(content)
    return build


def test_default_directory_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("HYDRANET_ENGINE_CACHE", raising=False)
    monkeypatch.delenv("HYDRANET_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert engine_cache_dir() == tmp_path / "xdg" / "hydranet_ros" / "engines"
    assert EngineCache().directory == tmp_path / "xdg" / "hydranet_ros" / "engines"
    monkeypatch.setenv("HYDRANET_ENGINE_CACHE", str(tmp_path / "fleet"))
    assert engine_cache_dir() == tmp_path / "fleet"


def test_key_is_stable_and_sensitive_to_every_part():
    key = make_key(**BASE)
    assert key == make_key(**{**BASE, "library_versions": dict(reversed(list(BASE["library_versions"].items())))})
    assert key.digest == make_key(**BASE).digest
    digests = {key.digest}
    for part, value in KEY_CHANGES.items():
        field = part.split(":")[0]
        digests.add(make_key(**{**BASE, field: value}).digest)
    assert len(digests) == 1 + len(KEY_CHANGES)
    assert key.slot == f"tensorrt-{'ab' * 8}-640x480-fp16"


def test_build_once_then_hit(tmp_path):
    cache, calls = EngineCache(directory=tmp_path), []
    key = make_key(**BASE)
    first = cache.get_or_build(key, suffix=SUFFIX, build=builder(b"engine-1", calls))
    again = cache.get_or_build(key, suffix=SUFFIX, build=builder(b"engine-2", calls))
    assert first.built and not again.built
    assert calls == [b"engine-1"]
    assert again.path.read_bytes() == b"engine-1"
    meta = json.loads(cache.metadata_path(again.path).read_text())
    assert meta["artifact_size"] == 8 and len(meta["artifact_sha256"]) == 64
    assert meta["key"] == key.as_dict()


@pytest.mark.parametrize("part", sorted(KEY_CHANGES))
def test_each_key_part_invalidates(tmp_path, part, caplog):
    cache, calls = EngineCache(directory=tmp_path), []
    cache.get_or_build(make_key(**BASE), suffix=SUFFIX, build=builder(b"old", calls))
    field = part.split(":")[0]
    changed = make_key(**{**BASE, field: KEY_CHANGES[part]})
    with caplog.at_level(logging.WARNING):
        entry = cache.get_or_build(changed, suffix=SUFFIX, build=builder(b"new", calls))
    assert entry.built and entry.path.read_bytes() == b"new"
    assert calls == [b"old", b"new"]
    if field in ("library_versions", "gpu_name", "compute_capability"):
        # Same slot: the stale engine is replaced, and the warning says what changed.
        assert entry.path == cache.artifact_path(make_key(**BASE), SUFFIX)
        assert "stale" in caplog.text
        lib = part.split(":")[1] if ":" in part else field
        assert lib in caplog.text
    # The changed key never gets the old artifact, and the old key no longer matches the new one.
    assert cache.check(changed, SUFFIX)[0] is not None


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "empty", "delete_metadata", "garbage_metadata", "delete_artifact",
                                    "nested_metadata", "huge_metadata", "list_metadata", "binary_metadata"])
def test_damaged_artifact_is_rebuilt_with_warning(tmp_path, damage, caplog):
    cache, calls = EngineCache(directory=tmp_path), []
    key = make_key(**BASE)
    path = cache.get_or_build(key, suffix=SUFFIX, build=builder(b"x" * 4096, calls)).path
    meta = cache.metadata_path(path)
    if damage == "flip_byte":
        data = bytearray(path.read_bytes())
        data[1000] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(1000)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "delete_metadata":
        meta.unlink()
    elif damage == "garbage_metadata":
        meta.write_text("{not json")
    elif damage == "nested_metadata":  # issue 12: RecursionError on every later build until deleted by hand
        meta.write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "huge_metadata":
        meta.write_text('{"key": "' + "x" * (2 << 20) + '"}')
    elif damage == "list_metadata":
        meta.write_text("[1, 2, 3]")
    elif damage == "binary_metadata":
        meta.write_bytes(b"\xff\xfe\x00{")
    elif damage == "delete_artifact":
        path.unlink()
    assert cache.load(key, SUFFIX) is None
    with caplog.at_level(logging.WARNING):
        entry = cache.get_or_build(key, suffix=SUFFIX, build=builder(b"y" * 4096, calls))
    assert entry.built and path.read_bytes() == b"y" * 4096
    assert "rebuilding" in caplog.text
    assert cache.load(key, SUFFIX) is not None


def test_build_failure_leaves_no_artifact(tmp_path):
    cache = EngineCache(directory=tmp_path)
    key = make_key(**BASE)

    def failing(tmp: Path) -> None:
        tmp.write_bytes(b"half an engi")
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError, match="builder crashed"):
        cache.get_or_build(key, suffix=SUFFIX, build=failing)
    assert cache.load(key, SUFFIX) is None
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".tmp", ".engine")]


def test_invalidate_forces_rebuild(tmp_path):
    cache, calls = EngineCache(directory=tmp_path), []
    key = make_key(**BASE)
    cache.get_or_build(key, suffix=SUFFIX, build=builder(b"a", calls))
    cache.invalidate(key, SUFFIX, "runtime refused it")
    assert cache.get_or_build(key, suffix=SUFFIX, build=builder(b"b", calls)).built


# --- real processes -------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hydranet_ros.runtime.engine_cache import EngineCache, make_key
    directory, marker, chunks, delay, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    key = make_key(weights_sha256="ab" * 32, input_size=(640, 480), precision="fp16", backend="tensorrt",
                   library_versions={"tensorrt": "10.3.0"}, gpu_name="Orin", compute_capability="8.7")
    def build(tmp):
        with open(log, "a") as f:
            f.write(marker + "\\n")
        with open(tmp, "wb") as out:
            for i in range(chunks):
                out.write(marker.encode() * 4096)
                out.flush()
                time.sleep(delay)
    entry = EngineCache(directory=directory).get_or_build(key, suffix=".engine", build=build)
    print(entry.path, entry.built, flush=True)
""")
KEY = make_key(weights_sha256="ab" * 32, input_size=(640, 480), precision="fp16", backend="tensorrt",
               library_versions={"tensorrt": "10.3.0"}, gpu_name="Orin", compute_capability="8.7")


def spawn(directory: Path, marker: str, chunks: int, delay: float, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), marker, str(chunks), str(delay), str(log)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.mark.parametrize("had_stale_entry", [False, True])
def test_writer_killed_mid_write_leaves_cache_consistent(tmp_path, had_stale_entry, caplog):
    cache, calls = EngineCache(directory=tmp_path), []
    if had_stale_entry:  # an engine from an older TensorRT is being replaced when the power goes
        cache.get_or_build(replace(KEY, library_versions=(("tensorrt", "8.6.2"),)), suffix=SUFFIX, build=builder(b"old", calls))
    log_file = tmp_path / "builds.log"
    writer = spawn(tmp_path, "A", chunks=1000, delay=0.01, log=log_file)
    final = cache.artifact_path(KEY, SUFFIX)
    try:
        # Kill it once it has written part of the engine to its temporary file.
        wait_for(lambda: any(p.stat().st_size > 8192 for p in tmp_path.glob(f".{final.name}.*.tmp")))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    # Nothing half-written is visible under the final name, and nothing is trusted.
    assert cache.load(KEY, SUFFIX) is None
    if final.exists():
        assert final.read_bytes() == b"old"
    # The next builder is not blocked by the dead one's lock, cleans up and rebuilds.
    entry = cache.get_or_build(KEY, suffix=SUFFIX, build=builder(b"fresh", calls))
    assert entry.built and entry.path.read_bytes() == b"fresh"
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert cache.load(KEY, SUFFIX) is not None


def test_two_processes_build_the_same_key_once(tmp_path):
    log_file = tmp_path / "builds.log"
    first = spawn(tmp_path, "A", chunks=20, delay=0.02, log=log_file)
    second = spawn(tmp_path, "B", chunks=20, delay=0.02, log=log_file)
    outs = [p.communicate(timeout=60) for p in (first, second)]
    for p, (out, err) in zip((first, second), outs):
        assert p.returncode == 0, err
    builders = log_file.read_text().split()
    assert len(builders) == 1  # the later one waited on the lock and used the first one's engine
    paths = {out.split()[0] for out, _ in outs}
    built = sorted(out.split()[1] for out, _ in outs)
    assert len(paths) == 1 and built == ["False", "True"]
    path = Path(paths.pop())
    assert path.read_bytes() == builders[0].encode() * 4096 * 20
    assert EngineCache(directory=tmp_path).load(KEY, SUFFIX) is not None
    assert not list(tmp_path.glob(".*.tmp"))


def test_read_only_cache_serves_valid_entries_and_refuses_builds_with_one_line(tmp_path):
    """A deployment image may mount the cache read-only: valid engines load, a build is a CacheError."""
    import stat

    from hydranet_ros.runtime.engine_cache import CacheError
    from hydranet_ros.runtime.engines.base import EngineError

    cache = EngineCache(directory=tmp_path / "cache")
    key = make_key(**BASE)
    built = cache.get_or_build(key, suffix=".bin", build=lambda p: p.write_bytes(b"engine"))
    for path in [cache.directory, *cache.directory.iterdir()]:
        os.chmod(path, stat.S_IRUSR | stat.S_IXUSR if path.is_dir() else stat.S_IRUSR)
    try:
        again = cache.get_or_build(key, suffix=".bin", build=lambda p: pytest.fail("must not rebuild"))
        assert again.path == built.path and not again.built
        if os.geteuid() != 0:  # root ignores permission bits: the write refusal can only be seen as a user
            with pytest.raises(CacheError) as info:
                cache.get_or_build(make_key(**{**BASE, "precision": "fp32"}), suffix=".bin", build=lambda p: p.write_bytes(b"x"))
            assert isinstance(info.value, EngineError) and "engine cache" in str(info.value)
    finally:
        for path in [cache.directory, *cache.directory.iterdir()]:
            os.chmod(path, stat.S_IRWXU)


def test_cache_write_failure_is_a_cache_error(tmp_path, monkeypatch):
    from hydranet_ros.runtime.engine_cache import CacheError

    cache = EngineCache(directory=tmp_path / "cache")

    def full_disk(path):
        raise OSError(28, "No space left on device")

    with pytest.raises(CacheError, match="No space left on device"):
        cache.get_or_build(make_key(**BASE), suffix=".bin", build=full_disk)
    assert not [p for p in cache.directory.iterdir() if p.suffix == ".bin"]


def test_cache_deleted_mid_run_is_rebuilt_not_an_error(tmp_path, caplog):
    """Someone wipes the cache while a node runs: the loaded engine lives in memory, and the next
    build (a reconfigure) finds nothing and builds again, whether the artifact, its metadata or
    the whole folder went."""
    import shutil

    cache = EngineCache(directory=tmp_path / "cache")
    key = make_key(**BASE)
    first = cache.get_or_build(key, suffix=SUFFIX, build=lambda p: p.write_bytes(b"engine v1"))
    for remove in (lambda: first.path.unlink(), lambda: cache.metadata_path(first.path).unlink(),
                   lambda: shutil.rmtree(cache.directory)):
        remove()
        with caplog.at_level("WARNING"):
            again = cache.get_or_build(key, suffix=SUFFIX, build=lambda p: p.write_bytes(b"engine v1"))
        assert again.built and again.path.read_bytes() == b"engine v1"
        assert cache.check(key, SUFFIX)[0] == again.path
