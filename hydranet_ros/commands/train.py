"""`hydranet train --config config/train/<name>.yaml`: train (or resume training) a HydraNet.

Under torchrun (``torchrun --nproc_per_node=N -m hydranet_ros.commands.train --config ...``) every process runs
this same command and joins DistributedDataParallel training.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hydranet_ros.commands.common import add_threads_argument, check_device, set_threads
from hydranet_ros.errors import UsageError

LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training YAML, e.g. config/train/synthetic_kitti6.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry, e.g. --set schedule.steps=500 (repeatable)")
    parser.add_argument("--out-dir", help="where the run is written (default: the config's out_dir)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's device)")
    parser.add_argument("--restart", action="store_true",
                        help="start from step 0 even if the output folder holds checkpoints (default: resume)")
    add_threads_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and CI)")


def run(args: argparse.Namespace) -> int:
    # The cheap checks first, before torch loads: the config file and the device's spelling.
    if not Path(args.config).is_file():
        raise UsageError(f"--config {args.config}: no such file")
    if args.device:
        check_device(args.device)
    set_threads(args.threads)
    from hydranet_ros.train.config import load_config, parse_override
    from hydranet_ros.train.trainer import train

    overrides = dict(parse_override(text) for text in args.overrides)
    if args.out_dir:
        overrides["out_dir"] = args.out_dir
    if args.device:
        overrides["device"] = args.device
    config = load_config(args.config, overrides=overrides)
    # Which checkpoint a run resumes from (or that it starts afresh) is said as it starts.
    logging.getLogger("hydranet_ros.train.trainer").setLevel(logging.INFO)
    try:
        summary = train(config, resume=not args.restart, progress=not args.no_progress)
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
