"""The torch engine's opt-in torch.compile: compiled at build time, eager with a warning if it fails.
(A real inductor compile takes ~50 s here, so torch.compile is stood in for.)"""

from __future__ import annotations

import logging

import torch

from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset
from hydranet_ros.runtime.engines.base import create_engine

MODEL = HydraNet(get_preset("kitti")).eval()
CPU = torch.device("cpu")


def test_off_by_default():
    engine = create_engine("torch", MODEL, device=CPU, precision="fp32", input_size=(64, 48))
    assert not engine.compiled and "compiled" not in engine.describe()


def test_compiled_at_build_time(monkeypatch):
    calls = []

    def fake_compile(model, **kwargs):
        def run(x):
            calls.append(tuple(x.shape))
            return model(x)
        return run

    monkeypatch.setattr(torch, "compile", fake_compile)
    engine = create_engine("torch", MODEL, device=CPU, precision="fp32", input_size=(64, 48), options={"compile": True})
    assert engine.compiled and engine.describe()["compiled"] == "torch.compile"
    assert calls == [(1, 3, 48, 64)]  # traced once at build, not on the first camera frame
    out = engine(torch.zeros(1, 3, 48, 64).contiguous(memory_format=torch.channels_last))
    assert out["segm"].shape == (1, 6, 12, 16)


def test_failed_compile_runs_eager_with_a_warning(monkeypatch, caplog):
    def broken_compile(model, **kwargs):
        def run(x):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    with caplog.at_level(logging.WARNING):
        engine = create_engine("torch", MODEL, device=CPU, precision="fp32", input_size=(64, 48), options={"compile": True})
    assert not engine.compiled and "torch.compile failed" in caplog.text and "no C++ compiler" in caplog.text
    assert engine(torch.zeros(1, 3, 48, 64))["depth"].shape == (1, 1, 12, 16)
