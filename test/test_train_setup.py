"""Configuration, schedule, samplers, checkpoints and encoder initialisation of the trainer."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fakes import FakeStreets

from hydranet_ros.commands import train as train_command
from hydranet_ros.model import HydraNet, get_preset
from hydranet_ros.train.checkpointing import CheckpointError, CheckpointStore, init_encoder_from_published, load_model_weights
from hydranet_ros.train.config import ConfigError, ScheduleConfig, config_from_dict, load_config, parse_override
from hydranet_ros.commands.common import run_command
from hydranet_ros.train.data import ShuffledSampler, SizeBuckets, SkipFirst, WeightedEpochSampler, pixel_budget_batches
from hydranet_ros.train.logs import CsvLog
from hydranet_ros.train.optim import lr_factor
from hydranet_ros.train.trainer import Trainer, TrainingError

torch.set_num_threads(1)


def test_config_rejects_unknown_keys_and_wrong_types(tmp_path):
    with pytest.raises(ConfigError, match=r"optim: unknown key\(s\) \['encoder_lrr'\]"):
        config_from_dict({"optim": {"encoder_lrr": 1e-3}})
    with pytest.raises(ConfigError, match="schedule.steps"):
        config_from_dict({"schedule": {"steps": "many"}})
    with pytest.raises(ConfigError, match="tasks"):
        config_from_dict({"tasks": ["segm", "colour"]})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "c.yaml"
    path.write_text("schedule: {steps: 10, warmup_steps: 2}\n")
    config = load_config(path, overrides=dict([parse_override("schedule.steps=20"), parse_override("optim.amp=false")]))
    assert config.schedule.steps == 20 and config.optim.amp is False
    assert isinstance(config_from_dict({"optim": {"encoder_lr": 1}}).optim.encoder_lr, float)


def test_shipped_configs_load():
    for name in ("smoke", "synthetic_kitti6"):
        config = load_config(f"config/train/{name}.yaml")
        assert config.data.val is not None and config.tasks == ["segm", "depth"]


def test_learning_rate_schedule_by_hand():
    poly = ScheduleConfig(steps=104, warmup_steps=4, kind="poly", power=1.0)
    assert [lr_factor(s, poly) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(54, poly) == pytest.approx(0.5)  # halfway through the decay, power 1
    assert lr_factor(104, poly) == pytest.approx(0.0)
    cosine = ScheduleConfig(steps=100, warmup_steps=0, kind="cosine", min_lr_factor=0.1)
    assert lr_factor(0, cosine) == pytest.approx(1.0)
    assert lr_factor(50, cosine) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(100, cosine) == pytest.approx(0.1)


def test_resumed_sampler_continues_the_same_permutation():
    full = ShuffledSampler(20, seed=3)
    full.set_epoch(2)
    skipped = SkipFirst(ShuffledSampler(20, seed=3), skip=8)
    skipped.set_epoch(2)
    assert list(skipped) == list(full)[8:] and len(skipped) == 12
    other_epoch = ShuffledSampler(20, seed=3)
    other_epoch.set_epoch(3)
    assert list(other_epoch) != list(full) and sorted(other_epoch) == list(range(20))


def test_size_buckets_make_batches_of_one_size_and_resume_at_the_same_batch():
    sizes = {i: (64, 32) if i % 3 else (32, 64) for i in range(30)}  # 20 short, 10 tall
    batch_for = {(64, 32): 4, (32, 64): 3}
    def buckets(skip=0):
        sampler = SizeBuckets(ShuffledSampler(30, seed=1), size_of=sizes.__getitem__, batch_for=batch_for,
                              skip_batches=skip)
        sampler.set_epoch(4)
        return sampler
    batches = list(buckets())
    assert len(batches) == len(buckets()) == 20 // 4 + 10 // 3
    for batch in batches:
        assert len({sizes[i] for i in batch}) == 1 and len(batch) == batch_for[sizes[batch[0]]]
    seen = [i for batch in batches for i in batch]
    assert len(seen) == len(set(seen)) == 29  # one tall frame left over: dropped, as drop_last does
    assert list(buckets(skip=5)) == batches[5:] and len(buckets(skip=5)) == len(batches) - 5
    with pytest.raises(ValueError, match="at least 1"):
        SizeBuckets(ShuffledSampler(3, seed=0), size_of=sizes.__getitem__, batch_for={(64, 32): 0})


def test_pixel_budget_batches_give_every_size_about_the_first_sizes_pixels():
    assert pixel_budget_batches([(384, 128), (576, 384), (1248, 384), (64, 32)], 8) == {
        (384, 128): 8, (576, 384): 2, (1248, 384): 1, (64, 32): 192}


def test_trainer_batches_synthetic_frames_of_several_sizes(tmp_path):
    from hydranet_ros.train.synthetic import SyntheticStreets

    config = config_from_dict({"name": "sizes", "device": "cpu", "out_dir": str(tmp_path), "data": {"batch_size": 4},
                               "schedule": {"steps": 3, "warmup_steps": 0}, "log_every": 1, "loss": {"depth": "l1"}})
    frames = SyntheticStreets(sizes=[(64, 32), (64, 64)], size_weights=[2, 1], length=24, seed=3)
    trainer = Trainer(config=config, train_dataset=frames, progress=False)
    shapes = {tuple(batch["image"].shape) for batch in trainer._loader(epoch=0, skip_batches=0)}
    assert shapes == {(4, 3, 32, 64), (2, 3, 64, 64)}
    assert trainer.steps_per_epoch() == len(list(trainer._loader(epoch=1, skip_batches=0)))
    summary = trainer.run()
    assert summary.steps == 3
    assert load_model_weights(summary.weights)[1]["input_size"] == "64x32"  # the first size


class _CountedStreets:
    """Synthetic frames of several sizes that count the frames read."""

    def __init__(self, **kwargs):
        from hydranet_ros.train.synthetic import SyntheticStreets

        self.streets, self.read = SyntheticStreets(**kwargs), 0
        self.sizes, self.size_of = self.streets.sizes, self.streets.size_of

    def __len__(self):
        return len(self.streets)

    def __getitem__(self, index):
        self.read += 1
        return self.streets[index]


@pytest.mark.parametrize("data, error, message", [
    ({"balanced_sampling": True}, ConfigError, "several sizes"),
    ({"augment": {"crop_size": [48, 32]}}, ConfigError, "crop_size"),
    ({"batch_size": 8}, TrainingError, r"64x32: 5 frames, fewer than its batch of 8"),  # 5 short frames of 9
])
def test_what_several_sizes_cannot_do_is_refused_before_a_frame_is_read(tmp_path, data, error, message):
    config = config_from_dict({"name": "sizes", "device": "cpu", "out_dir": str(tmp_path),
                               "data": {"batch_size": 4, **data}, "schedule": {"steps": 1, "warmup_steps": 0}})
    frames = _CountedStreets(sizes=[(64, 32), (64, 64)], size_weights=[2, 1], length=9, seed=3)
    with pytest.raises(error, match=message):
        Trainer(config=config, train_dataset=frames, progress=False)
    assert frames.read == 0


def test_a_validation_set_of_several_sizes_is_refused(tmp_path):
    config = config_from_dict({"name": "sizes", "device": "cpu", "out_dir": str(tmp_path), "data": {"batch_size": 2},
                               "schedule": {"steps": 1, "warmup_steps": 0}})
    from hydranet_ros.train.synthetic import SyntheticStreets

    with pytest.raises(ConfigError, match="data.val: frames of several sizes"):
        Trainer(config=config, train_dataset=SyntheticStreets(size=(64, 32), length=4),
                val_dataset=SyntheticStreets(sizes=[(64, 32), (64, 64)], length=4), progress=False)
    # From the config, where the validation set is wrapped for canonical depth.
    from_config = config_from_dict({**config.to_dict(), "data": {
        "batch_size": 2, "canonical_focal_px": 50.0,
        "val": {"kind": "synthetic", "args": {"sizes": [[64, 32], [64, 64]], "length": 4}}}})
    with pytest.raises(ConfigError, match="data.val: frames of several sizes"):
        Trainer(config=from_config, train_dataset=SyntheticStreets(size=(64, 32), length=4), progress=False)


def test_weighted_sampler_prefers_heavy_frames_and_shards_by_rank():
    weights = np.array([1.0, 1.0, 1.0, 97.0])
    draws = list(WeightedEpochSampler(weights, seed=0))
    assert len(draws) == 4
    many = np.concatenate([list(WeightedEpochSampler(weights, seed=s)) for s in range(50)])
    assert (many == 3).mean() > 0.8
    ranks = [list(WeightedEpochSampler(weights, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(WeightedEpochSampler(weights, seed=1))
    odd = [WeightedEpochSampler(np.ones(5), seed=1, rank=r, world_size=2) for r in (0, 1)]
    assert [len(list(s)) for s in odd] == [len(s) for s in odd] == [2, 2]  # equal shares or DDP hangs


def test_checkpoint_store_keeps_the_newest_pairs(tmp_path):
    preset = get_preset("kitti")
    store = CheckpointStore(folder=tmp_path, keep=2)
    tensor = {"w": torch.arange(3.0)}
    for step in (10, 20, 30):
        store.save(step=step, model_state=tensor, training_state={"x": torch.tensor(step)}, preset=preset,
                   metadata={})
    assert sorted(p.name for p in tmp_path.glob("step_*")) == [
        "step_0000020.safetensors", "step_0000020.state.pt", "step_0000030.safetensors", "step_0000030.state.pt"]
    weights, state, step = store.latest()
    assert step == 30 and weights.name == "step_0000030.safetensors"
    # A crash mid-write leaves a temporary file behind; latest still names the last complete pair.
    (tmp_path / ".step_0000040.safetensors.tmp-123").write_bytes(b"partial")
    assert store.latest()[2] == 30
    (tmp_path / "latest.json").write_text(json.dumps({"step": 40, "weights": "gone.safetensors", "state": "x"}))
    with pytest.raises(CheckpointError, match="gone"):
        store.latest()
    (tmp_path / "latest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged"):
        store.latest()


def test_csv_log_truncates_rows_after_a_resume_point(tmp_path):
    log = CsvLog(path=tmp_path / "log.csv")
    for step in (5, 10, 15):
        log.append({"step": step, "loss": 1.0 / step})
    log.truncate_after(10)
    reopened = CsvLog(path=tmp_path / "log.csv")
    reopened.append({"step": 15, "loss": 0.5})
    assert [r["step"] for r in reopened.read()] == [5, 10, 15]


def test_encoder_initialisation_from_a_published_style_checkpoint(tmp_path):
    torch.manual_seed(1)
    source = HydraNet(get_preset("nyud"))  # other classes: only the encoder is taken
    published = {"state_dict": {f"module.{k.removeprefix('encoder.stages.')}" if k.startswith("encoder.") else
                                f"module.{k}": v for k, v in source.state_dict().items()}}
    path = tmp_path / "ExpNYUD_joint.ckpt"
    torch.save(published, path)
    target = HydraNet(get_preset("kitti"))
    count = init_encoder_from_published(target, path)
    assert count == len(source.encoder.state_dict())
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(target.encoder.state_dict()[key], value), key
    assert not torch.equal(target.decoder.conv8.weight, source.decoder.conv8.weight)

    broken = {"state_dict": dict(published["state_dict"])}
    broken["state_dict"]["module.layer1.0.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(broken, tmp_path / "broken.ckpt")
    with pytest.raises(CheckpointError, match="wrong shape"):
        init_encoder_from_published(target, tmp_path / "broken.ckpt")


def test_encoder_initialisation_refuses_pickled_code(tmp_path):
    torch.save({"state_dict": {}, "hook": argparse.Namespace(a=1)}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="refused"):
        init_encoder_from_published(HydraNet(get_preset("kitti")), tmp_path / "evil.ckpt")


def test_trainer_with_augmentation_balancing_and_learned_weights(tmp_path):
    config = config_from_dict({
        "name": "features", "device": "cpu", "out_dir": str(tmp_path),
        "data": {"batch_size": 2, "augment": {"crop_size": [48, 32], "scale_range": [1.0, 1.3]},
                 "balanced_sampling": True},
        "schedule": {"steps": 2, "warmup_steps": 1}, "log_every": 1,
        "loss": {"depth": "silog", "class_weights": "median_frequency", "weighting": "uncertainty"},
    })
    trainer = Trainer(config=config, train_dataset=FakeStreets(size=(64, 32), length=6), progress=False)
    weights = trainer.class_weights
    assert weights is not None and weights.shape == (6,) and float(weights.max()) > float(weights.min()) > 0
    assert trainer.sample_weights is not None and trainer.sample_weights.mean() == pytest.approx(1.0)
    batch = next(iter(trainer._loader(epoch=0, skip_batches=0)))
    assert batch["image"].shape == (2, 3, 32, 48)  # the augmentation's crop
    summary = trainer.run()
    assert summary.steps == 2
    row = trainer.train_log.read()[-1]
    assert row["log_var_segm"] != 0.0 and np.isfinite(row["loss"])


def test_train_command_reports_bad_config_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule: {stepz: 3}\n")
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    assert run_command("train", train_command.run, parser.parse_args(["--config", str(bad)])) == 2
    assert "stepz" in capsys.readouterr().err


def test_restart_discards_the_previous_run(tmp_path):
    def config(steps):
        return config_from_dict({"name": "restart", "device": "cpu", "out_dir": str(tmp_path), "data": {"batch_size": 2},
                                 "schedule": {"steps": steps, "warmup_steps": 0}, "log_every": 1,
                                 "checkpoint_every": 1, "loss": {"depth": "l1"}})

    frames = FakeStreets(size=(64, 32), length=4)
    Trainer(config=config(3), train_dataset=frames, progress=False).run()
    again = Trainer(config=config(1), train_dataset=frames, progress=False)
    summary = again.run(resume=False)
    assert summary.resumed_from is None and summary.steps == 1
    assert again.checkpoints.latest()[2] == 1
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.safetensors")) == ["step_0000001.safetensors"]
    assert [r["step"] for r in again.train_log.read()] == [1]


# -- interrupted runs (issue 12, item 8) ------------------------------------------------------------


def small_config(tmp_path, steps: int):
    return config_from_dict({"name": "interrupted", "device": "cpu", "out_dir": str(tmp_path),
                             "data": {"batch_size": 2}, "schedule": {"steps": steps, "warmup_steps": 0},
                             "log_every": 1, "checkpoint_every": 2, "loss": {"depth": "l1"}})


def test_ctrl_c_during_the_first_checkpoint_leaves_nothing_half_written(tmp_path, monkeypatch, caplog):
    """Ctrl-C while the first training state is written: no temporary file stays, the weights file
    without its state goes, and the rerun says it starts from step 0 and logs each step once."""
    from hydranet_ros.train import checkpointing

    real_save = torch.save

    def interrupted_save(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"half a state file")  # torch.save had begun writing
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpointing.torch, "save", interrupted_save)
    frames = FakeStreets(size=(64, 32), length=4)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config=small_config(tmp_path, 4), train_dataset=frames, progress=False).run()
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_0000002.safetensors"]  # no .tmp-<pid>, no state
    assert [r["step"] for r in CsvLog(path=tmp_path / "train_log.csv").read()] == [1, 2]

    monkeypatch.setattr(checkpointing.torch, "save", real_save)
    caplog.set_level("INFO", logger="hydranet_ros.train.trainer")
    summary = Trainer(config=small_config(tmp_path, 4), train_dataset=frames, progress=False).run()
    assert summary.resumed_from is None and summary.steps == 4
    said = caplog.text
    assert "step_0000002.safetensors" in said and "no complete checkpoint" in said and "starting from step 0" in said
    assert [r["step"] for r in CsvLog(path=tmp_path / "train_log.csv").read()] == [1, 2, 3, 4]
    assert sorted(p.name for p in folder.iterdir()) == [
        "latest.json", "step_0000002.safetensors", "step_0000002.state.pt", "step_0000004.safetensors",
        "step_0000004.state.pt"]


def test_a_killed_run_resumes_from_its_last_complete_checkpoint_and_says_which(tmp_path, caplog):
    """What SIGKILL can leave (temporaries, a pair newer than latest.json, a weights file alone) is
    removed; the run resumes from latest.json's pair and names it."""
    frames = FakeStreets(size=(64, 32), length=4)
    Trainer(config=small_config(tmp_path, 2), train_dataset=frames, progress=False).run()
    folder = tmp_path / "checkpoints"
    leftovers = [".step_0000004.state.pt.tmp-4194305", ".step_0000004.safetensors.abc123.tmp",
                 ".latest.json.4194305.abcdefgh.partial.json", "step_0000004.safetensors"]
    for name in leftovers:
        (folder / name).write_bytes(b"left by a killed run")
    caplog.set_level("INFO", logger="hydranet_ros.train.trainer")
    summary = Trainer(config=small_config(tmp_path, 4), train_dataset=frames, progress=False).run()
    assert summary.resumed_from == 2 and summary.steps == 4
    assert "resuming from step 2" in caplog.text and "step_0000002.safetensors" in caplog.text
    assert all(name in caplog.text for name in leftovers)
    assert not any((folder / name).read_bytes() == b"left by a killed run" for name in leftovers if (folder / name).exists())
    assert [r["step"] for r in CsvLog(path=tmp_path / "train_log.csv").read()] == [1, 2, 3, 4]
