"""Run by test_train_ddp.py under torchrun: one DDP training process on tiny fake frames.

Each rank writes its final weights to rank<N>.safetensors so the test can check that
DistributedDataParallel kept the replicas identical.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from train_fakes import FakeStreets  # noqa: E402

from hydranet_ros.train.config import config_from_dict  # noqa: E402
from hydranet_ros.train.trainer import Trainer  # noqa: E402


def main(out_dir: str, weighting: str) -> None:
    torch.set_num_threads(1)
    config = config_from_dict({
        "name": "ddp", "device": "cpu", "out_dir": out_dir, "data": {"batch_size": 2},
        "schedule": {"steps": 3, "warmup_steps": 1}, "log_every": 1, "checkpoint_every": 3,
        "loss": {"depth": "l1", "weighting": weighting},
    })
    trainer = Trainer(config=config, train_dataset=FakeStreets(size=(64, 32), length=8),
                      val_dataset=FakeStreets(size=(64, 32), length=2, seed=3), progress=False)
    summary = trainer.run()
    state = {f"model.{k}": v.contiguous() for k, v in trainer.model.state_dict().items()}
    state.update({f"weighting.{k}": v.detach().reshape(1) for k, v in
                  trainer.step_module.criterion.weighting.state_dict().items()})
    save_file(state, str(Path(out_dir) / f"rank{trainer.dist.rank}.safetensors"),
              metadata={"steps": str(summary.steps), "world_size": str(trainer.dist.world_size)})
    trainer.dist.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
