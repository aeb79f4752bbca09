"""Faults at start-up and while writing: what each one must look like to the operator.

- Weights missing, unreadable, truncated, a pickle that would run code, the wrong architecture:
  a WeightsError naming the file and the cause; perception_node (rclpy stand-in) fails configure
  with that message, stays alive, and configures with good weights afterwards.
- GPU out of memory on the first frame (a fake engine raising torch.cuda.OutOfMemoryError):
  a smaller input size, or with strict a clear error; the node keeps running either way.
- Output bag into a read-only folder or onto a full disk: one-line BagError naming the output
  and the cause, no output folder, no staging folder, and an existing bag (--overwrite) intact.
Engine-cache faults (truncated, stale, deleted mid-run) are tested with the engine cache itself.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from rosbags.rosbag2 import Writer
from safetensors.torch import load_file, save_file

import rclpy_standin as ros
from hydranet_ros.replay.bag import BagError, replay_bag
from hydranet_ros.model.checkpoints import WeightsError, load_weights, save_safetensors
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset
from hydranet_ros.runtime.engines.base import Engine, EngineError
from hydranet_ros.runtime.memory_fallback import FirstFrameOutOfMemory, MemoryFallbackPipeline, smaller_input_size
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from test_bag import leftovers, pipeline, tree_digest, write_bag  # noqa: F401
from test_node_standin import (  # noqa: F401
    camera_info_msg, image_msg, make_node, publishers, subscribe_all, subscription, weights,
)

NOBODY = 65534


@pytest.fixture
def shared_dir():
    """A folder other users may enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="hydranet-faults-"))
    path.chmod(0o755)
    yield path
    for folder in [path, *path.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def as_unprivileged_user():
    """Run the block with permission checks that apply: root reads and writes any file whatever
    its mode, so under root the effective uid drops to nobody for the block (and comes back)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


# -- weights --------------------------------------------------------------------------------------


class WritesMarker:
    """Unpickling this calls open(marker, 'w'): the file appears if the loader runs pickled code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def good_state(preset_name="kitti"):
    torch.manual_seed(1)
    return HydraNet(get_preset(preset_name)).state_dict()


def make_fault(kind: str, folder: Path) -> tuple[Path, str]:
    """(weights path, a fragment the error message must contain) for one kind of damage."""
    if kind == "missing":
        return folder / "nowhere.safetensors", "no such file"
    if kind == "truncated_safetensors":
        path = folder / "cut.safetensors"
        save_safetensors(path, good_state(), get_preset("kitti"))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path, "truncated"
    if kind == "truncated_checkpoint":
        path = folder / "cut.pt"
        torch.save({"state_dict": good_state()}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
        return path, "truncated"
    if kind == "pickle_runs_code":
        path = folder / "evil.pt"
        torch.save({"state_dict": {"conv.weight": torch.zeros(1)}, "payload": WritesMarker(folder / "MARKER")}, path)
        return path, "would run code"
    if kind == "wrong_architecture":
        path = folder / "nyud_as_kitti.safetensors"
        save_safetensors(path, good_state("nyud"), get_preset("kitti"))  # 40-class heads, 6-class metadata
        return path, "does not match the HydraNet 'kitti' architecture"
    # Issue 12: these loaded, and the node published all-"sky" labels and all-invalid depth.
    if kind in METADATA_FAULTS:
        field, value = METADATA_FAULTS[kind]
        path = folder / f"{kind}.safetensors"
        save_safetensors(path, good_state(), get_preset("kitti"))
        tensors, meta = load_file(str(path)), _metadata(path)
        meta[field] = value
        if value is None:
            del meta[field]
        save_file(tensors, str(path), metadata=meta)
        return path, f"'{field}'"
    if kind == "nan_weights":
        path = folder / "nan.safetensors"
        state = good_state()
        state["heads.segm.out.bias"][0] = float("nan")
        save_safetensors(path, state, get_preset("kitti"))  # hashed as they are
        return path, "NaN or Inf"
    raise ValueError(kind)


METADATA_FAULTS = {
    "nan_mean": ("mean", "[NaN, 0.456, 0.406]"),
    "zero_std": ("std", "[0.229, 0.0, 0.225]"),
    "palette_300": ("palette", json.dumps([[300, 0, 0]] + [[0, 0, 0]] * 5)),
    "no_hash": ("weights_sha256", None),
}


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


FAULTS = ("missing", "truncated_safetensors", "truncated_checkpoint", "pickle_runs_code", "wrong_architecture",
          *METADATA_FAULTS, "nan_weights")


@pytest.mark.parametrize("kind", FAULTS)
def test_weights_fault_names_file_and_cause(tmp_path, kind):
    path, cause = make_fault(kind, tmp_path)
    with pytest.raises(WeightsError) as caught:
        load_weights(str(path))
    assert str(path) in str(caught.value) and cause in str(caught.value), str(caught.value)
    assert not (tmp_path / "MARKER").exists()


def test_the_marker_payload_does_run_code_when_unpickled_plainly(tmp_path):
    """The control for the test above: the payload is live, so its absence there means something."""
    pickle.loads(pickle.dumps(WritesMarker(tmp_path / "MARKER")))
    assert (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_unreadable_weights_say_permission_denied(shared_dir, suffix):
    path = shared_dir / f"locked{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": good_state()}, path)
    else:
        save_safetensors(path, good_state(), get_preset("kitti"))
    path.chmod(0)
    with as_unprivileged_user(), pytest.raises(WeightsError) as caught:
        load_weights(str(path))
    assert str(path) in str(caught.value) and "permission denied" in str(caught.value).lower(), str(caught.value)


def configure(node) -> ros.TransitionCallbackReturn:
    return node.on_configure(ros.LifecycleState())


def errors_of(node) -> list[str]:
    return [message for level, message in node.logger.records if level == "error"]


@pytest.mark.parametrize("kind", FAULTS + ("unreadable",))
def test_node_refuses_bad_weights_stays_alive_and_configures_with_good_ones(monkeypatch, weights, shared_dir, kind):  # noqa: F811
    if kind == "unreadable":
        path, cause = shared_dir / "locked.pt", "permission denied"
        torch.save({"state_dict": good_state()}, path)
        path.chmod(0)
    else:
        path, cause = make_fault(kind, shared_dir)
    module, node = make_node(monkeypatch, str(path))
    with as_unprivileged_user() if kind == "unreadable" else contextlib.nullcontext():
        assert configure(node) == ros.TransitionCallbackReturn.FAILURE
    [error] = errors_of(node)
    assert str(path) in error and cause in error, error
    assert node._pipeline is None and node._worker is None
    assert [p.topic for p in node.publishers] == ["/diagnostics"]  # nothing half made
    node.timers[-1].callback()
    report = publishers(node)["/diagnostics"].sent[-1].status[0]
    assert report.level == ros.DiagnosticStatus.ERROR and str(path) in report.message
    assert not (shared_dir / "MARKER").exists()

    [result] = node.set_parameters([ros.Parameter("weights", value=weights)])
    assert result.successful
    assert configure(node) == ros.TransitionCallbackReturn.SUCCESS
    assert node.on_activate(ros.LifecycleState()) == ros.TransitionCallbackReturn.SUCCESS
    subscribe_all(node)
    subscription(node, "camera_info").callback(camera_info_msg())  # the clouds need it: without, a WARN
    subscription(node, "image").callback(image_msg(3))
    assert node._worker.wait_idle(30)
    assert len(publishers(node)["semantic/labels"].sent) == 1
    node.timers[-1].callback()
    assert publishers(node)["/diagnostics"].sent[-1].status[0].level == ros.DiagnosticStatus.OK
    node.release()


# -- GPU out of memory on the first frame ---------------------------------------------------------


class OutOfMemoryEngine(Engine):
    """Answers like the network (zeros at 1/4 size) up to ``limit_pixels`` per frame, and runs out
    of memory above it, as a GPU with that much free memory would."""

    name = "fake-oom"

    def __init__(self, limit_pixels: int) -> None:
        super().__init__(device=torch.device("cpu"), precision="fp16", channels_last=False)
        self.limit_pixels = limit_pixels
        self.sizes: list[tuple[int, int]] = []

    @classmethod
    def build(cls, model, **kwargs):  # not built from a model in these tests
        raise NotImplementedError

    @property
    def dtype(self):
        return torch.float32

    def __call__(self, image):
        height, width = image.shape[-2:]
        self.sizes.append((width, height))
        if width * height > self.limit_pixels:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {width * height * 1024} bytes (GPU 0; fake)")
        return {"segm": torch.zeros(1, 6, height // 4, width // 4), "depth": torch.ones(1, 1, height // 4, width // 4)}


def fake_pipeline(limit_pixels: int, size=(640, 480)) -> tuple[Pipeline, OutOfMemoryEngine]:
    engine = OutOfMemoryEngine(limit_pixels)
    config = PipelineConfig(input_size=size, device="cpu", output_size="network")
    return Pipeline(engine=engine, preset=get_preset("kitti"), config=config, weights_source="fake",
                    weights_sha256=""), engine


FRAME = np.zeros((120, 160, 3), np.uint8)


def test_smaller_sizes_step_down_to_the_minimum():
    assert smaller_input_size((640, 480)) == (480, 352)
    assert smaller_input_size((48, 32)) == (32, 32)
    assert smaller_input_size((32, 32)) is None


def test_first_frame_out_of_memory_falls_back_to_a_smaller_input(caplog):
    inner, engine = fake_pipeline(limit_pixels=300 * 200)
    guarded = MemoryFallbackPipeline(inner, strict=False)
    result = guarded.process(FRAME)
    assert engine.sizes == [(640, 480), (480, 352), (352, 256), (256, 192)]
    assert result.labels.shape == (192, 256)  # outputs follow the size that fitted
    assert guarded.output_size_for(160, 120) == (256, 192)
    assert guarded.fallbacks == ["640x480 -> 480x352", "480x352 -> 352x256", "352x256 -> 256x192"]
    assert "640x480 -> 480x352" in guarded.info["memory_fallback"]
    assert "retrying at 480x352" in caplog.text
    guarded.process(FRAME)
    assert engine.sizes[-1] == (256, 192)  # kept for later frames


def test_out_of_memory_after_the_first_frame_is_an_ordinary_error():
    inner, engine = fake_pipeline(limit_pixels=10**9)
    guarded = MemoryFallbackPipeline(inner, strict=False)
    guarded.process(FRAME)
    engine.limit_pixels = 0
    with pytest.raises(torch.cuda.OutOfMemoryError):
        guarded.process(FRAME)
    assert guarded.fallbacks == [] and engine.sizes == [(640, 480), (640, 480)]


def test_strict_first_frame_out_of_memory_is_a_clear_error():
    inner, engine = fake_pipeline(limit_pixels=1)
    guarded = MemoryFallbackPipeline(inner, strict=True)
    with pytest.raises(FirstFrameOutOfMemory) as caught:
        guarded.process(FRAME)
    message = str(caught.value)
    assert isinstance(caught.value, EngineError)
    assert "out of memory on the first frame at 640x480" in message and "strict" in message
    assert "Tried to allocate" in message and "\n" not in message
    assert engine.sizes == [(640, 480)]


def test_out_of_memory_at_every_size_ends_in_a_clear_error():
    inner, engine = fake_pipeline(limit_pixels=1)
    with pytest.raises(FirstFrameOutOfMemory) as caught:
        MemoryFallbackPipeline(inner, strict=False, max_attempts=3).process(FRAME)
    assert "after 3 smaller size(s)" in str(caught.value) and "352x256 -> 256x192" in str(caught.value)
    assert len(engine.sizes) == 4


def test_other_errors_are_not_taken_for_out_of_memory():
    inner, engine = fake_pipeline(limit_pixels=10**9)
    guarded = MemoryFallbackPipeline(inner, strict=False)
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        guarded.process(np.zeros((4, 4), np.uint8))
    engine.limit_pixels = 0
    with pytest.raises(FirstFrameOutOfMemory):
        MemoryFallbackPipeline(inner, strict=True).process(FRAME)
    assert guarded.fallbacks == []


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "fallback"])
def test_node_survives_first_frame_out_of_memory(monkeypatch, weights, strict):  # noqa: F811
    module, node = make_node(monkeypatch, weights, strict=strict)
    state = ros.LifecycleState()
    assert configure(node) == ros.TransitionCallbackReturn.SUCCESS
    assert node.on_activate(state) == ros.TransitionCallbackReturn.SUCCESS
    subscribe_all(node)
    inner, engine = fake_pipeline(limit_pixels=48 * 32, size=(64, 32))
    node._pipeline = MemoryFallbackPipeline(inner, strict=strict)  # as configure wraps Pipeline.create
    subscription(node, "image").callback(image_msg(1))
    assert node._worker.wait_idle(30)
    labels = publishers(node)["semantic/labels"].sent
    stats = node._worker.stats()
    node.timers[-1].callback()
    report = publishers(node)["/diagnostics"].sent[-1].status[0]
    if strict:
        assert labels == [] and stats.errors == 1
        assert any("out of memory on the first frame at 64x32" in m for m in errors_of(node)), errors_of(node)
        assert report.level == ros.DiagnosticStatus.ERROR and "out of memory" in report.message
    else:
        # the 96x64 frame fitted into 64x32 (network 64x32) ran out; inside 32x32 it is 32x21
        assert stats.errors == 0 and len(labels) == 1 and (labels[0].width, labels[0].height) == (32, 21)
    # Alive either way: it can be cleaned up and configured again.
    assert node.on_deactivate(state) == ros.TransitionCallbackReturn.SUCCESS
    assert node.on_cleanup(state) == ros.TransitionCallbackReturn.SUCCESS
    assert configure(node) == ros.TransitionCallbackReturn.SUCCESS
    node.release()


# -- output bag on a read-only folder or a full disk ----------------------------------------------


def test_read_only_output_folder_is_a_clear_error_and_leaves_nothing(shared_dir, pipeline):  # noqa: F811
    source = write_bag(shared_dir / "in", "sqlite3", frames=2)
    before = tree_digest(source)
    locked = shared_dir / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    with as_unprivileged_user(), pytest.raises(BagError) as caught:
        replay_bag(source, locked / "out", pipeline, progress=False)
    error = caught.value
    assert error.reason == "write_failed" and str(locked / "out") in str(error)
    assert "Permission denied" in str(error) and "\n" not in str(error)
    assert list(locked.iterdir()) == [] and tree_digest(source) == before


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_disk_full_mid_bag_is_a_clear_error_and_keeps_the_old_bag(tmp_path, pipeline, monkeypatch, storage):  # noqa: F811
    source = write_bag(tmp_path / "in", storage, frames=4)
    target = tmp_path / "out"
    replay_bag(source, target, pipeline, progress=False)  # a good earlier result, replaced with --overwrite
    old_bag, old_input = tree_digest(target), tree_digest(source)
    real_write, writes = Writer.write, []

    def write_until_full(self, connection, timestamp, data):
        writes.append(timestamp)
        if len(writes) == 9:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        return real_write(self, connection, timestamp, data)

    monkeypatch.setattr(Writer, "write", write_until_full)
    with pytest.raises(BagError) as caught:
        replay_bag(source, target, pipeline, overwrite=True, progress=False)
    message = str(caught.value)
    assert caught.value.reason == "write_failed" and str(target) in message
    assert "No space left on device (disk full)" in message and "\n" not in message
    assert tree_digest(target) == old_bag and tree_digest(source) == old_input
    assert leftovers(tmp_path) == []


def test_disk_full_on_a_fresh_output_leaves_no_folder(tmp_path, pipeline, monkeypatch):  # noqa: F811
    source = write_bag(tmp_path / "in", "mcap", frames=3)

    def full(self, *args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Writer, "write", full)
    with pytest.raises(BagError, match="disk full"):
        replay_bag(source, tmp_path / "out", pipeline, progress=False)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_tensorrt_engine_is_not_stepped_down_to_a_size_it_was_not_built_for():
    """A fixed-shape TensorRT engine cannot run a smaller input: a clear refusal, not a broken node."""
    from types import SimpleNamespace

    from hydranet_ros.runtime.engines.tensorrt_engine import TensorRTEngine
    from hydranet_ros.runtime.memory_fallback import FirstFrameOutOfMemory, same_engine_at

    engine = SimpleNamespace(name="tensorrt", fixed_input_size=TensorRTEngine.fixed_input_size)
    fake = SimpleNamespace(engine=engine, config=SimpleNamespace(input_size=(640, 480)))
    with pytest.raises(FirstFrameOutOfMemory, match="built for one input size"):
        same_engine_at(fake, (480, 352))


def test_first_frame_submitted_ahead_still_steps_down_on_out_of_memory():
    """Offline tools submit frames ahead (pipeline.in_order); the first one still runs to the end
    inside the guard, so its out-of-memory is caught before anything else is queued."""
    from hydranet_ros.runtime.pipeline import in_order

    inner, engine = fake_pipeline(limit_pixels=300 * 200)
    guarded = MemoryFallbackPipeline(inner, strict=False)
    out = list(in_order(guarded, [(i, FRAME, "rgb") for i in range(3)]))
    assert [tag for tag, _ in out] == [0, 1, 2]
    assert all(result.labels.shape == (192, 256) for _, result in out)
    assert engine.sizes == [(640, 480), (480, 352), (352, 256), (256, 192), (256, 192), (256, 192)]
