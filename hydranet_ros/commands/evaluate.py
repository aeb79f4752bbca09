"""`hydranet eval`: metrics of a weights file on a dataset, as a table, JSON and plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydranet_ros.commands.common import add_threads_argument, check_device, positive_int, set_threads
from hydranet_ros.errors import UsageError
from hydranet_ros.model.locate import locate_weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="a .safetensors file written by `hydranet train`")
    source = parser.add_argument_group("data (either a training config's validation set, or a dataset)")
    source.add_argument("--config", help="training YAML: evaluate on its data.val")
    source.add_argument("--data", help="dataset kind: synthetic, kitti, nyud, cityscapes, folder")
    source.add_argument("--data-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="argument of the dataset, e.g. --data-arg root=/data/kitti (repeatable)")
    parser.add_argument("--out-dir", default="eval", help="where eval.json and the PNGs go (default: ./eval)")
    parser.add_argument("--max-frames", type=positive_int, help="evaluate only the first N frames")
    parser.add_argument("--batch-size", type=positive_int, default=1,
                        help="frames per forward pass; >1 only when all frames have one size (default: 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--depth-max", type=float, default=80.0,
                        help="ignore ground truth beyond this depth in metres (KITTI convention: 80); 0 = no cap")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    # The cheap checks first, before torch loads: which data, the weights file, the device.
    if (args.config is None) == (args.data is None):
        raise UsageError("give exactly one of --config (its validation set) or --data")
    if args.config and not Path(args.config).is_file():
        raise UsageError(f"--config {args.config}: no such file")
    located = locate_weights(args.weights)
    check_device(args.device)
    set_threads(args.threads)
    from hydranet_ros.train.checkpointing import model_from_weights
    from hydranet_ros.train.config import ConfigError, DatasetSpec, load_config, parse_override
    from hydranet_ros.train.data import build_dataset
    from hydranet_ros.train.distributed import resolve_device
    from hydranet_ros.train.evaluate import evaluate_model, format_table, write_report

    if args.config:
        config = load_config(args.config)
        if config.data.val is None:
            raise ConfigError(f"{args.config} has no data.val to evaluate on")
        spec = config.data.val
    else:
        spec = DatasetSpec(kind=args.data, args=dict(parse_override(a) for a in args.data_arg))
    dataset = build_dataset(spec)
    model, preset, metadata = model_from_weights(located.path)
    device = resolve_device(args.device)
    model.to(device)
    trained = metadata.get("tasks", "").split(",") if metadata.get("tasks") else list(model.heads)
    tasks = [t for t in trained if t in model.heads]
    if "normals" in tasks and len(dataset) and dataset[0].get("normals") is None:
        print("hydranet eval: the data has no surface normals; normals not evaluated", file=sys.stderr)
        tasks.remove("normals")
    result = evaluate_model(model, dataset, preset=preset, tasks=tasks, device=device,
                            batch_size=args.batch_size, max_frames=args.max_frames,
                            depth_max_m=args.depth_max or None, progress=sys.stderr.isatty())
    result.extra.update({"weights": str(args.weights), "dataset": {"kind": spec.kind, "args": spec.args},
                         "depth_max_m": args.depth_max or None})
    written = write_report(result, Path(args.out_dir))
    print(format_table(result))
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m hydranet_ros.commands.evaluate``), e.g. under torchrun."""
    from hydranet_ros.commands.common import standalone_main

    return standalone_main("hydranet eval", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
