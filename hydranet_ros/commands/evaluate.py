"""`hydranet eval`: metrics of a weights file on a dataset, as a table, JSON and plots.

Frames go through the same Pipeline as `hydranet infer` (geometry, pre- and post-processing,
--size, --weights default, focal-length correction), compared at the ground truth's size, so
eval and infer agree on the same frame.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydranet_ros.commands.common import add_pipeline_arguments, camera_focal_from_args, pipeline_from_args, say_depth_camera
from hydranet_ros.errors import first_line
from hydranet_ros.model.checkpoints import WeightsError
from hydranet_ros.runtime.engines.base import EngineError


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
    parser.add_argument("--max-frames", type=int, help="evaluate only the first N frames")
    parser.add_argument("--depth-max", type=float, default=80.0,
                        help="ignore ground truth beyond this depth in metres (KITTI convention: 80); 0 = no cap")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    # The same network options as `hydranet infer`: eval measures the pipeline that ships.
    add_pipeline_arguments(parser)
    parser.set_defaults(output_size="input")


def run(args: argparse.Namespace) -> int:
    import torch

    from hydranet_ros.train.config import ConfigError, DatasetSpec, load_config, parse_override
    from hydranet_ros.train.data import build_dataset
    from hydranet_ros.train.evaluate import evaluate_pipeline, format_table, write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if (args.config is None) == (args.data is None):
            raise ConfigError("give exactly one of --config (its validation set) or --data")
        if args.config:
            config = load_config(args.config)
            if config.data.val is None:
                raise ConfigError(f"{args.config} has no data.val to evaluate on")
            spec = config.data.val
        else:
            spec = DatasetSpec(kind=args.data, args=dict(parse_override(a) for a in args.data_arg))
        dataset = build_dataset(spec)
        focal = camera_focal_from_args(args)
        args.output_size = "input"  # metrics at the ground truth's size
        pipe = pipeline_from_args(args)
        if focal is None and len(dataset) and dataset[0].get("camera_k") is None:
            say_depth_camera(pipe, focal)
        tasks = ["segm", "depth"] + (["normals"] if pipe.preset.with_normals else [])
        if "normals" in tasks and len(dataset) and dataset[0].get("normals") is None:
            print("hydranet eval: the data has no surface normals; normals not evaluated", file=sys.stderr)
            tasks.remove("normals")
        result = evaluate_pipeline(pipe, dataset, tasks=tasks, max_frames=args.max_frames,
                                   depth_max_m=args.depth_max or None, focal=focal, progress=sys.stderr.isatty())
    except (ConfigError, WeightsError, EngineError, RuntimeError, ValueError) as error:
        print(f"hydranet eval: {first_line(error)}", file=sys.stderr)
        return 2
    result.extra.update({"weights": pipe.info["weights"], "weights_sha256": pipe.info["weights_sha256"],
                         "size": args.size, "dataset": {"kind": spec.kind, "args": spec.args},
                         "depth_max_m": args.depth_max or None,
                         "network_input": "x".join(map(str, pipe.config.input_size)) if pipe.config.input_size else "frame"})
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
