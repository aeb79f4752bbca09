"""`hydranet affinity`: which tasks help each other? Single-task vs pairwise multi-task training."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydranet_ros.commands.common import add_threads_argument, check_device, positive_int, set_threads
from hydranet_ros.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training YAML that defines data, model and optimiser")
    parser.add_argument("--tasks", default="segm,depth,normals",
                        help="comma-separated tasks to study (default: segm,depth,normals; normals are left out "
                             "when the data has none)")
    parser.add_argument("--steps", type=positive_int, default=300, help="training steps per variant (the fixed budget)")
    parser.add_argument("--out-dir", default="runs/affinity", help="one sub-folder per variant, plus affinity.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry (repeatable)")
    parser.add_argument("--device", help="auto, cpu or cuda[:N]")
    add_threads_argument(parser)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    # The cheap checks first, before torch loads: the config file and the device's spelling.
    if not Path(args.config).is_file():
        raise UsageError(f"--config {args.config}: no such file")
    if args.device:
        check_device(args.device)
    set_threads(args.threads)
    import torch

    from hydranet_ros.train.affinity import format_affinity, run_affinity
    from hydranet_ros.train.config import load_config, parse_override

    try:
        overrides = dict(parse_override(text) for text in args.overrides)
        if args.device:
            overrides["device"] = args.device
        config = load_config(args.config, overrides=overrides)
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        report = run_affinity(config=config, tasks=tasks, steps=args.steps, out_dir=args.out_dir,
                              progress=not args.no_progress)
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
