"""`hydranet eval`: metrics of a weights file on a dataset, as a table, JSON and plots.

Frames go through the same Pipeline as `hydranet infer` (geometry, pre- and post-processing,
--size, --weights default, focal-length correction), compared at the ground truth's size, so
eval and infer agree on the same frame.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydranet_ros.commands.common import (
    add_pipeline_arguments, camera_focal_from_args, network_options, positive_int, say_depth_camera,
)
from hydranet_ros.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group(
        "data (either a training config's validation set, or a dataset)",
        "Dataset kinds and their --data-arg keys: synthetic (size=WxH, length=N, seed=S); "
        "kitti (root=DIR, layout=raw|examples, split=train|val, camera=image_02); nyud (root=DIR: "
        "<id>.png, <id>_segm_gt.png, <id>_depth_gt.png); cityscapes (root=DIR, split=val); folder "
        "(root=DIR). The authors' examples folder, e.g. ../shared/data/kitti: --data kitti "
        "--data-arg root=../shared/data/kitti --data-arg layout=examples.")
    source.add_argument("--config", help="training YAML: evaluate on its data.val")
    source.add_argument("--data", help="dataset kind: synthetic, kitti, nyud, cityscapes, folder")
    source.add_argument("--data-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="argument of the dataset, e.g. --data-arg root=/data/kitti (repeatable)")
    parser.add_argument("--out-dir", default="eval", help="where eval.json and the PNGs go (default: ./eval)")
    parser.add_argument("--max-frames", type=positive_int, help="evaluate only the first N frames")
    parser.add_argument("--depth-max", type=float, default=80.0,
                        help="ignore ground truth beyond this depth in metres (KITTI convention: 80); 0 = no cap")
    # The same network options as `hydranet infer` (--threads included): eval measures the pipeline
    # that ships. Outputs are compared at the ground truth's size, so --output-size is always input.
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # The cheap checks first, before torch loads: which data, the weights file, the device, the size.
    if (args.config is None) == (args.data is None):
        raise UsageError("give exactly one of --config (its validation set) or --data")
    if args.config and not Path(args.config).is_file():
        raise UsageError(f"--config {args.config}: no such file")
    args.output_size = "input"  # metrics at the ground truth's size
    network_options(args)
    focal = camera_focal_from_args(args)
    from hydranet_ros.commands.common import pipeline_from_args
    from hydranet_ros.train.config import ConfigError, DatasetSpec, load_config, parse_override
    from hydranet_ros.train.data import build_dataset
    from hydranet_ros.train.evaluate import evaluate_pipeline, format_table, write_report

    if args.config:
        config = load_config(args.config)
        if config.data.val is None:
            raise ConfigError(f"{args.config} has no data.val to evaluate on")
        spec = config.data.val
    else:
        spec = DatasetSpec(kind=args.data, args=dict(parse_override(a) for a in args.data_arg))
    dataset = build_dataset(spec)
    pipe = pipeline_from_args(args)
    if focal is None and len(dataset) and dataset[0].get("camera_k") is None:
        say_depth_camera(pipe, focal)  # frames with camera_k give their own focal length
    tasks = ["segm", "depth"] + (["normals"] if pipe.preset.with_normals else [])
    if "normals" in tasks and len(dataset) and dataset[0].get("normals") is None:
        print("hydranet eval: the data has no surface normals; normals not evaluated", file=sys.stderr)
        tasks.remove("normals")
    result = evaluate_pipeline(pipe, dataset, tasks=tasks, max_frames=args.max_frames,
                               depth_max_m=args.depth_max or None, focal=focal, progress=sys.stderr.isatty())
    result.extra.update({"weights": pipe.info["weights"], "weights_sha256": pipe.info["weights_sha256"],
                         "size": args.size, "dataset": {"kind": spec.kind, "args": spec.args},
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
