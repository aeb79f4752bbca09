"""DistributedDataParallel through torchrun (2 CPU processes, gloo): replicas stay identical,
only rank 0 writes the run's files, and the learned task weights are synchronised too."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

HERE = Path(__file__).parent


@pytest.mark.timeout(180)
def test_two_process_training_keeps_replicas_identical(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
               str(HERE / "ddp_worker.py"), str(tmp_path), "uncertainty"]
    # Own session: on a timeout the whole group (torchrun and its workers) is killed, not just torchrun.
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=170)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail("torchrun did not finish in 170 s:\n" + output[-3000:])
    assert process.returncode == 0, output[-3000:]
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    with safe_open(tmp_path / "rank1.safetensors", framework="pt") as handle:
        assert handle.metadata() == {"steps": "3", "world_size": "2"}
    assert rank0.keys() == rank1.keys()
    # Parameters must agree exactly. BatchNorm running statistics may not: each rank updates them
    # from its own last batch, and DDP re-broadcasts rank 0's at the start of every forward.
    parameters = [k for k in rank0 if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(parameters) > 150
    for key in parameters:
        assert torch.equal(rank0[key], rank1[key]), key
    # the log-variances moved away from their start (0) and are the same on both ranks
    assert float(rank0["weighting.log_variance.segm"]) != 0.0
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "checkpoints" / "latest.json").is_file()
    rows = (tmp_path / "train_log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3  # header + one line per step, written once (by rank 0)


def _free_port() -> int:
    """torchrun's static rendezvous needs a concrete port (port 0 makes the workers wait forever)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
