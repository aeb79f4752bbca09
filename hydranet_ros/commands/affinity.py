"""`hydranet affinity`: which tasks help each other? Single-task vs pairwise multi-task training."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training YAML that defines data, model and optimiser")
    parser.add_argument("--tasks", default="segm,depth,normals",
                        help="comma-separated tasks to study (default: segm,depth,normals; normals are left out "
                             "when the data has none)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per variant (the fixed budget)")
    parser.add_argument("--out-dir", default="runs/affinity", help="one sub-folder per variant, plus affinity.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry (repeatable)")
    parser.add_argument("--device", help="auto, cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch

    from hydranet_ros.train.affinity import format_affinity, run_affinity
    from hydranet_ros.train.checkpointing import CheckpointError
    from hydranet_ros.train.config import ConfigError, load_config, parse_override
    from hydranet_ros.train.trainer import TrainingError

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 1:
        print("hydranet affinity: --steps must be at least 1", file=sys.stderr)
        return 2
    try:
        overrides = dict(parse_override(text) for text in args.overrides)
        if args.device:
            overrides["device"] = args.device
        config = load_config(args.config, overrides=overrides)
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        report = run_affinity(config=config, tasks=tasks, steps=args.steps, out_dir=args.out_dir,
                              progress=not args.no_progress)
    except (ConfigError, CheckpointError, TrainingError) as error:
        print(f"hydranet affinity: {error}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    print(format_affinity(report))
    print(f"wrote {args.out_dir}/affinity.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m hydranet_ros.commands.affinity``), e.g. under torchrun."""
    from hydranet_ros.commands.common import standalone_main

    return standalone_main("hydranet affinity", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
