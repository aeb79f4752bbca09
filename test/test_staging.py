"""Staged outputs (hydranet_ros/io/staging.py): a killed writer's leftovers are removed, a live
writer's never, whatever the output is called (issue 12, item 5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hydranet_ros.io import staging

# A pid above the kernel's largest (pid_max is at most 2^22): certainly no process.
DEAD = 4194305
LIVE = 1  # init: always alive (os.kill answers, or says permission denied)


def staged_folder(parent: Path, name: str, pid: int, token: str = "abcdefgh") -> Path:
    folder = parent / f".{name}.{pid}.{token}.partial"
    folder.mkdir()
    (folder / "data.db3").write_bytes(b"half a bag")
    return folder


def test_a_killed_writers_folder_is_removed_and_a_live_ones_kept(tmp_path):
    dead = staged_folder(tmp_path, "out", DEAD)
    live = staged_folder(tmp_path, "out", LIVE)
    mine = staging.make_staging(tmp_path / "out")
    staging.remove_abandoned(tmp_path / "out")
    assert not dead.exists() and live.exists() and mine.exists()


@pytest.mark.parametrize("target, other", [
    ("out[1]", "out1"),  # glob: [1] matches the character 1
    ("out*", "outer"),
    ("out?", "outX"),
    ("out", "out.4194305"),  # read from the wrong offset, the other's name looks like a dead pid
    ("a.b", "a.b.c"),
])
def test_another_outputs_live_staging_is_never_touched(tmp_path, target, other):
    """A live replay to ``other`` (its pid alive, its token all digits) beside a new one to ``target``."""
    live = staged_folder(tmp_path, other, LIVE, token="99999999")
    staging.remove_abandoned(tmp_path / target)
    assert live.exists()


@pytest.mark.parametrize("name", ["out[1]", "out*", "a.b.c", "bag 2026-11-28", "out.4194305"])
def test_any_name_finds_its_own_abandoned_folder(tmp_path, name):
    dead = staged_folder(tmp_path, name, DEAD)
    unrelated = staged_folder(tmp_path, name + "x", DEAD)
    staging.remove_abandoned(tmp_path / name)
    assert not dead.exists() and unrelated.exists()


def test_files_written_together_appear_together_or_not_at_all(tmp_path, monkeypatch):
    files = {tmp_path / f"{i}.png": bytes([i]) * 10 for i in range(4)}
    staging.write_files_together(files)
    assert all(path.read_bytes() == data for path, data in files.items())
    calls = []
    real_replace = os.replace

    def fails_on_third(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(staging.os, "replace", fails_on_third)
    fresh = {tmp_path / f"new{i}.png": b"x" for i in range(4)}
    with pytest.raises(KeyboardInterrupt):
        staging.write_files_together(fresh)
    assert not any(path.exists() for path in fresh) and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in files)
