"""`hydranet bag IN OUT`: replay a rosbag2 through the network, offline, as the ROS node would."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydranet_ros.commands.common import add_pipeline_arguments, pipeline_from_args
from hydranet_ros.io.bag_topics import find_camera
from hydranet_ros.replay.bag import BagError, check_paths, replay_bag
from hydranet_ros.runtime.memory_fallback import MemoryFallbackPipeline


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="rosbag2 folder (sqlite3 .db3 or MCAP) or a single .db3/.mcap file; never modified")
    parser.add_argument("output", metavar="OUT", help="folder for the new bag: IN's topics plus the node's outputs")
    parser.add_argument("--topic", help="image topic to process (default: the bag's only image topic)")
    parser.add_argument("--compressed", action="store_true",
                        help="read sensor_msgs/CompressedImage (TOPIC/compressed with --topic) instead of Image")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is an existing bag")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default=None,
                        help="storage format of OUT (default: the same as IN)")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the class colours in semantic/overlay (0..1)")
    parser.add_argument("--max-pixels", type=int, default=None, help="drop frames larger than this many pixels")
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    source, target = Path(args.input), Path(args.output)
    try:
        # The cheap checks first: a wrong path or a bag without images should not wait for weights.
        check_paths(source, target, args.overwrite)
        camera = find_camera(source, topic=args.topic, compressed=args.compressed)
        # Out of GPU memory on the first frame: a smaller input size, or a clear error with --strict.
        pipe = MemoryFallbackPipeline(pipeline_from_args(args), strict=args.strict)
        report = replay_bag(source, target, pipe, topic=camera.image, compressed=args.compressed,
                            overwrite=args.overwrite, storage=args.storage, alpha=args.alpha, max_pixels=args.max_pixels)
    except BagError as exc:
        print(f"hydranet bag: error: {exc}", file=sys.stderr)
        return 2
    print(f"{target}: {report.summary()}")
    if report.frames and not report.processed:
        print(f"hydranet bag: error: none of the {report.frames} frame(s) could be processed", file=sys.stderr)
        return 1
    return 0
