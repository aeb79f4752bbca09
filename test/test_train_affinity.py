"""Task-affinity study: the relative-performance table by hand, and a tiny end-to-end study."""

import json
import math

import pytest
import torch
from train_fakes import FakeStreets

from hydranet_ros.train.affinity import affinity_table, format_affinity, relative_change, run_affinity
from hydranet_ros.train.config import config_from_dict


def test_relative_change_sign_means_better():
    assert relative_change(0.6, 0.5, higher_is_better=True) == pytest.approx(20.0)
    assert relative_change(0.09, 0.10, higher_is_better=False) == pytest.approx(10.0)
    assert math.isnan(relative_change(0.1, 0.0, higher_is_better=True))


def test_affinity_table_by_hand():
    variants = {
        "segm": {"miou": 0.50}, "depth": {"abs_rel": 0.20}, "normals": {"normals_mean_deg": 20.0},
        "segm+depth": {"miou": 0.55, "abs_rel": 0.25},
        "segm+normals": {"miou": 0.45, "normals_mean_deg": 18.0},
        "depth+normals": {"abs_rel": 0.18, "normals_mean_deg": 22.0},
    }
    table = affinity_table(("segm", "depth", "normals"), variants)
    assert table["segm"]["segm"] is None
    assert table["segm"]["depth"] == pytest.approx(-25.0)  # depth got worse next to segm
    assert table["depth"]["segm"] == pytest.approx(10.0)  # segm improved next to depth
    assert table["segm"]["normals"] == pytest.approx(10.0)
    assert table["normals"]["segm"] == pytest.approx(-10.0)
    assert table["depth"]["normals"] == pytest.approx(-10.0)
    assert table["normals"]["depth"] == pytest.approx(10.0)
    assert table["segm"]["average"] == pytest.approx((-25.0 + 10.0) / 2)
    assert table["average"]["segm"] == pytest.approx((10.0 - 10.0) / 2)
    assert table["average"]["depth"] == pytest.approx((-25.0 + 10.0) / 2)


def _config(tmp_path, tasks):
    return config_from_dict({
        "name": "aff", "tasks": tasks, "device": "cpu", "out_dir": str(tmp_path / "unused"),
        "data": {"batch_size": 2}, "schedule": {"steps": 10, "warmup_steps": 1}, "log_every": 1,
        "loss": {"depth": "l1", "weights": {"segm": 1.0, "depth": 0.1, "normals": 1.0}},
    })


def test_tiny_study_with_normals(tmp_path):
    torch.set_num_threads(1)
    train = FakeStreets(size=(64, 32), length=8, with_normals=True)
    val = FakeStreets(size=(64, 32), length=2, seed=5, with_normals=True)
    report = run_affinity(config=_config(tmp_path, ["segm", "depth"]), tasks=["segm", "depth", "normals"], steps=2,
                          out_dir=tmp_path / "aff", train_dataset=train, val_dataset=val, progress=False)
    assert set(report.variants) == {"segm", "depth", "normals", "segm+depth", "segm+normals", "depth+normals"}
    assert set(report.variants["segm+normals"]) >= {"miou", "normals_mean_deg"}
    assert "abs_rel" not in report.variants["segm"]  # a single-task network is measured on its task only
    saved = json.loads((tmp_path / "aff" / "affinity.json").read_text())
    assert set(saved["relative_change_percent"]) == {"segm", "depth", "normals", "average"}
    text = format_affinity(report)
    assert "average" in text and "normals" in text


def test_study_without_normals_in_the_data_says_so(tmp_path):
    torch.set_num_threads(1)
    train = FakeStreets(size=(64, 32), length=4)
    report = run_affinity(config=_config(tmp_path, ["segm", "depth"]), tasks=["segm", "depth", "normals"], steps=1,
                          out_dir=tmp_path / "aff", train_dataset=train, val_dataset=FakeStreets(size=(64, 32), length=2),
                          progress=False)
    assert report.tasks == ("segm", "depth")
    assert any("no surface normals" in note for note in report.notes)
    assert set(report.variants) == {"segm", "depth", "segm+depth"}
