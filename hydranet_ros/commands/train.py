"""`hydranet train --config config/train/<name>.yaml`: train (or resume training) a HydraNet.

Under torchrun (``torchrun --nproc_per_node=N -m hydranet_ros.commands.train --config ...``) every process runs
this same command and joins DistributedDataParallel training.
"""

from __future__ import annotations

import argparse
import logging
import sys

LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training YAML, e.g. config/train/synthetic_kitti6.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry, e.g. --set schedule.steps=500 (repeatable)")
    parser.add_argument("--out-dir", help="where the run is written (default: the config's out_dir)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's device)")
    parser.add_argument("--restart", action="store_true",
                        help="start from step 0 even if the output folder holds checkpoints (default: resume)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and CI)")


def run(args: argparse.Namespace) -> int:
    import torch

    from hydranet_ros.train.checkpointing import CheckpointError
    from hydranet_ros.train.config import ConfigError, load_config, parse_override
    from hydranet_ros.train.trainer import TrainingError, train

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        overrides = dict(parse_override(text) for text in args.overrides)
        if args.out_dir:
            overrides["out_dir"] = args.out_dir
        if args.device:
            overrides["device"] = args.device
        config = load_config(args.config, overrides=overrides)
        summary = train(config, resume=not args.restart, progress=not args.no_progress)
    except (ConfigError, CheckpointError, TrainingError) as error:
        print(f"hydranet train: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hydranet train: interrupted; run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 130
    print(f"trained {summary.steps} steps in {summary.seconds:.0f} s ({summary.images_per_s:.1f} images/s)"
          + (f", resumed from step {summary.resumed_from}" if summary.resumed_from else ""))
    print(f"weights: {summary.weights}")
    if summary.evaluation is not None:
        from hydranet_ros.train.evaluate import format_table

        print(format_table(summary.evaluation))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m hydranet_ros.commands.train``), e.g. under torchrun."""
    from hydranet_ros.commands.common import standalone_main

    return standalone_main("hydranet train", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
