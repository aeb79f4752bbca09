"""Multi-GPU / multi-node training through torchrun and torch.distributed.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK (and the rendezvous address) for every process.
With WORLD_SIZE unset or 1 nothing here touches torch.distributed, so a plain single-process run
works on machines where the distributed backends are missing or misconfigured.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from hydranet_ros.errors import UsageError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_reduce_mean(self, value: float) -> float:
        """Mean of a scalar over all processes (for logging the global loss)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device())
        torch.distributed.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def shutdown(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _collective_device() -> torch.device:
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def init_from_env(requested_device: str) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes (if any) and pick this process's device.

    NCCL on CUDA, gloo on CPU. Each process drives the GPU of its LOCAL_RANK.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(), resolve_device(requested_device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    LOG.info("distributed: rank %d of %d (local %d) on %s with %s", rank, world_size, local_rank, device, backend)
    return DistContext(world_size=world_size, rank=rank, local_rank=local_rank), device


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UsageError(f"device {requested!r} is not auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {requested!r} requested but CUDA is not available; use device: cpu or auto")
    return device
