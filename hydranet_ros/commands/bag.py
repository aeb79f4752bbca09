"""`hydranet bag IN OUT`: replay a rosbag2 through the network, offline, as the ROS node would.

Exit status: 0 when the replay finished (frames the node would reject are counted in the
summary line, not errors); 1 when the bag has image frames but none could be processed (every
one rejected: the output bag holds only the copied input), or when parts of the input could not
be read (a damaged MCAP chunk or sqlite page: skipped and named, the rest replayed); 2 when
nothing was written (bad arguments or paths, unreadable bag, no image topic, bad weights, disk full).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydranet_ros.commands.common import (
    add_max_pixels_argument, add_pipeline_arguments, network_options, node_defaults, pipeline_from_args,
)
from hydranet_ros.io.bag_topics import find_cameras
from hydranet_ros.outputs import params
from hydranet_ros.replay.bag import check_paths, replay_bag, replay_parameters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="rosbag2 folder (sqlite3 .db3 or MCAP) or a single .db3/.mcap file; never modified")
    parser.add_argument("output", metavar="OUT", help="folder for the new bag: IN's topics plus the node's outputs")
    parser.add_argument("--topic", action="append", default=None,
                        help="image topic to process (default: the bag's only image topic); repeat it for several "
                             "cameras, whose frames then run through the network in one batch")
    parser.add_argument("--all-cameras", action="store_true",
                        help="process every image topic of the bag (each camera's outputs under its own namespace)")
    parser.add_argument("--compressed", action="store_true",
                        help="read sensor_msgs/CompressedImage (TOPIC/compressed with --topic) instead of Image")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is an existing bag")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default=None,
                        help="storage format of OUT (default: the same as IN)")
    node = parser.add_argument_group("node parameters (the outputs are the node's for the same parameters)")
    node.add_argument("--params", metavar="FILE",
                      help="the node's parameter file (e.g. config/hydranet.yaml): its publish_*, use_camera_info, "
                           "compressed, depth_encoding, overlay_alpha, max_input_pixels and output QoS apply, and its "
                           "network parameters are the defaults of the network options")
    node.add_argument("--depth-encoding", choices=params.DEPTH_ENCODINGS,
                      help="depth/image as 32FC1 metres or 16UC1 millimetres (default: the --params file's, else 32FC1)")
    node.add_argument("--alpha", type=float, default=None,
                      help="opacity of the class colours in semantic/overlay, 0..1 (default: the --params file's, else 0.5)")
    add_max_pixels_argument(node, default=None)
    add_pipeline_arguments(parser, defaults_from_params=True)


def run(args: argparse.Namespace) -> int:
    source, target = Path(args.input), Path(args.output)
    values = {}
    if args.params:
        values = params.read_parameter_file(args.params)
    if args.depth_encoding is not None:
        values["depth_encoding"] = args.depth_encoding
    if args.alpha is not None:
        values["overlay_alpha"] = args.alpha
    if args.max_pixels is not None:
        values["max_input_pixels"] = args.max_pixels
    values = replay_parameters(values)  # every value checked by the node's rules before any work
    node_defaults(args, values if args.params else {})
    compressed = args.compressed or (bool(values["compressed"]) if args.params else False)
    # The cheap checks first: a wrong option, path or weights name, or a bag without images,
    # should not wait for torch and the weights.
    network_options(args)
    check_paths(source, target, args.overwrite)
    cameras = find_cameras(source, chosen=args.topic, compressed=compressed, all_cameras=args.all_cameras)
    from hydranet_ros.runtime.memory_fallback import MemoryFallbackPipeline

    # Out of GPU memory on the first frame: a smaller input size, or a clear error with --strict.
    # One network pass takes a frame of every camera.
    pipe = MemoryFallbackPipeline(pipeline_from_args(args, max_batch=len(cameras)), strict=args.strict)
    report = replay_bag(source, target, pipe, topic=[camera.image for camera in cameras], compressed=compressed,
                        overwrite=args.overwrite, storage=args.storage, parameters=values)
    print(f"{target}: {report.summary()}")
    if report.frames and not report.processed:
        print(f"hydranet bag: error: none of the {report.frames} frame(s) could be processed", file=sys.stderr)
        return 1
    if report.damaged:
        print(f"hydranet bag: error: {source} has {len(report.damaged)} damaged part(s) ({report.damaged[0]}); "
              f"the messages in them are missing from {target}, the rest is replayed", file=sys.stderr)
        return 1
    return 0
