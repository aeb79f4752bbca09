"""The int8 accuracy gate and its helpers as plain functions (no runtime needed)."""

from __future__ import annotations

import numpy as np
import pytest

from hydranet_ros.runtime.engine_cache import cpu_identity
from hydranet_ros.runtime.engines import int8
from hydranet_ros.runtime.engines.base import EngineError
from hydranet_ros.runtime.engines.openvino_engine import MAGIC, unpack


def test_held_out_frames_are_spread_and_never_calibrated_on():
    held, calib = int8.split_held_out(80)
    assert len(held) == int8.GATE_FRAMES and not set(held) & set(calib) and len(held) + len(calib) == 80
    assert held[0] < 10 and held[-1] > 70  # over the whole source, not its start
    held, calib = int8.split_held_out(8)
    assert len(held) == 2 and len(calib) == 6
    assert int8.split_held_out(1) == ([0], [0])  # one frame: both, and the log says so


def outputs(logits, depth):
    return {"segm": np.asarray(logits, np.float32)[None], "depth": np.asarray(depth, np.float32)[None, None]}


def test_measure_gate_counts_labels_and_median_relative_depth_error():
    frame = np.zeros((1, 3, 8, 8), np.float32)  # only its size matters: outputs come from the stand-ins
    logits = np.zeros((2, 2, 2), np.float32)
    logits[0] = 1.0  # class 0 everywhere
    flipped = logits.copy()
    flipped[1, 0, 0] = 2.0  # one of four cells says class 1
    depth = np.full((2, 2), 10.0, np.float32)
    fp32 = lambda x: outputs(logits, depth)  # noqa: E731
    same = int8.measure_gate(fp32, fp32, [frame])
    assert same.labels_agree == 1.0 and same.depth_median_rel == 0.0 and same.passed
    figures = int8.measure_gate(lambda x: outputs(flipped, depth * 1.02), fp32, [frame])
    assert 0.5 < figures.labels_agree < 0.95 and figures.depth_median_rel == pytest.approx(0.02, rel=1e-3)
    assert not figures.passed and "labels equal to fp32 on" in figures.describe()
    # A depth int8 lost (inf or NaN where fp32 has one) is the worst error, not skipped.
    lost = depth.copy()
    lost[:] = np.nan
    assert int8.measure_gate(lambda x: outputs(logits, lost), fp32, [frame]).depth_median_rel == float("inf")


def test_check_gate_refuses_with_the_figures():
    with pytest.raises(int8.GateMissed, match=r"missed the int8 accuracy gate: labels equal to fp32 on 97\.00 %.*1\.00 %"):
        int8.check_gate(int8.GateFigures(labels_agree=0.97, depth_median_rel=0.01, frames=4), "the model")
    int8.check_gate(int8.GateFigures(labels_agree=0.98, depth_median_rel=0.03, frames=4), "the model")  # at the gate: passes


def test_packed_ir_is_checked():
    graph, weights = b"<net/>", b"\x00\x01\x02"
    blob = MAGIC + len(graph).to_bytes(8, "little") + graph + weights
    assert unpack(blob) == (graph, weights)
    with pytest.raises(EngineError, match="truncated"):
        unpack(blob[:len(MAGIC) + 8 + 3])
    with pytest.raises(EngineError, match="not a packed"):
        unpack(b"garbage" * 10)


def test_cpu_identity_keeps_the_flags_that_choose_kernels():
    text = "processor: 0\nflags : fpu sse2 avx avx2 fma avx512f avx512_vnni ht\nprocessor: 1\nflags : fpu avx2\n"
    identity = cpu_identity(text)
    assert identity.split()[1:] == ["avx", "avx2", "avx512_vnni", "avx512f", "fma"]
    assert cpu_identity("Features : fp asimd asimddp i8mm\n").split()[1:] == ["asimd", "asimddp", "i8mm"]
