"""CI smoke test: train a few dozen steps on tiny synthetic streets, see the loss fall, save,
resume where it stopped, and evaluate the result through the `hydranet eval` command."""

import argparse
import json
import math
import time

import pytest
import torch

from hydranet_ros.commands import evaluate as eval_command
from hydranet_ros.train.checkpointing import load_model_weights
from hydranet_ros.train.config import load_config
from hydranet_ros.train.trainer import Trainer

SMOKE_CONFIG = "config/train/smoke.yaml"


@pytest.mark.timeout(120)
def test_train_resume_evaluate(tmp_path, capsys):
    torch.set_num_threads(1)  # 2 threads on a loaded 2-core machine are ~10x slower (OpenMP contention)
    started = time.perf_counter()
    out = tmp_path / "run"
    config = load_config(SMOKE_CONFIG, overrides={"out_dir": str(out)})
    first = Trainer(config=config, progress=False).run()
    assert first.steps == config.schedule.steps and first.resumed_from is None

    rows = first_rows = _read_log(out)
    assert [r["step"] for r in rows] == list(range(config.log_every, config.schedule.steps + 1, config.log_every))
    assert rows[-1]["loss"] < rows[0]["loss"], f"training loss did not fall: {[r['loss'] for r in rows]}"
    assert rows[-1]["loss_segm"] < rows[0]["loss_segm"]
    for name in ("model.safetensors", "loss_curves.png", "eval.json", "eval_confusion.png", "eval_depth_error.png",
                 "config.yaml", "checkpoints/latest.json"):
        assert (out / name).is_file(), name
    weights, metadata = load_model_weights(out / "model.safetensors")
    assert metadata["preset"] == "kitti" and metadata["step"] == str(config.schedule.steps)
    assert metadata["input_size"] == "128x64" and metadata["tasks"] == "segm,depth"

    # Resume: a new trainer with a longer schedule restores weights, optimizer and step exactly...
    longer = load_config(SMOKE_CONFIG, overrides={"out_dir": str(out), "schedule.steps": config.schedule.steps + 5})
    second = Trainer(config=longer, progress=False)
    assert second.try_resume() == config.schedule.steps
    for key, value in second.model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    saved_state = _adam_state(torch.load(out / "checkpoints" / f"step_{config.schedule.steps:07d}.state.pt",
                                         weights_only=True)["optimizer"])
    assert _adam_state(second.optimizer.state_dict()) == pytest.approx(saved_state)
    # ... and continues counting from there.
    summary = second.run()
    assert summary.resumed_from == config.schedule.steps and summary.steps == config.schedule.steps + 5
    steps = [r["step"] for r in _read_log(out)]
    assert steps == sorted(set(steps)) and steps[-1] == config.schedule.steps + 5
    assert len(steps) == len(first_rows) + 1

    # Evaluate the trained weights through the CLI module.
    parser = argparse.ArgumentParser()
    eval_command.add_arguments(parser)
    args = parser.parse_args(["--weights", str(out / "model.safetensors"), "--config", SMOKE_CONFIG,
                              "--out-dir", str(tmp_path / "eval"), "--max-frames", "4"])
    assert eval_command.run(args) == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["frames"] == 4
    assert 0.0 <= report["segmentation"]["miou"] <= 1.0 and report["depth"]["abs_rel"] > 0
    assert "mIoU" in capsys.readouterr().out
    assert (tmp_path / "eval" / "eval_confusion.png").is_file()
    print(f"smoke test took {time.perf_counter() - started:.1f} s")


def _read_log(out):
    import csv

    with (out / "train_log.csv").open() as handle:
        return [{k: float(v) if v else math.nan for k, v in row.items()} for row in csv.DictReader(handle)]


def _adam_state(optimizer_state):
    """Sum of each parameter's first-moment buffer: a compact fingerprint of the optimizer state."""
    return [float(s["exp_avg"].sum()) for _, s in sorted(optimizer_state["state"].items())]
