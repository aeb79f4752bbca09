"""Options shared by the subcommands that run the pipeline."""

from __future__ import annotations

import argparse
import logging

from pathlib import Path

from hydranet_ros.runtime.choices import BACKENDS, OUTPUT_SIZES, PRECISIONS
from hydranet_ros.runtime.focal import CameraFocal, assumption_note, focal_from_camera_info_yaml
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig, parse_size

log = logging.getLogger("hydranet")


def add_pipeline_arguments(parser: argparse.ArgumentParser, *, default_size: str = "auto") -> None:
    group = parser.add_argument_group("network")
    group.add_argument("--weights", default="default",
                       help="a .safetensors file, a published .ckpt, a preset name whose weights were downloaded "
                            "(kitti, nyud, nyud_kitti, nyud_three), or 'default' (cached kitti, else the shipped model)")
    group.add_argument("--backend", default="torch", choices=BACKENDS, help="inference backend (default: torch)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    group.add_argument("--precision", default="fp32", choices=PRECISIONS, help="numeric precision (default: fp32)")
    group.add_argument("--size", default=default_size,
                       help="network input: each frame is scaled to fit inside WIDTHxHEIGHT with its aspect ratio kept "
                            "(never stretched), then padded to multiples of 32; 'input' runs each frame at its own size; "
                            "'auto' fits it inside the size the weights were trained at if they record it, else runs it "
                            f"at its own size (default: {default_size})")
    group.add_argument("--output-size", default="input", choices=OUTPUT_SIZES,
                       help="outputs at the input frame's size, or at the frame's size as scaled for the network "
                            "(without the padding) (default: input)")
    camera = group.add_mutually_exclusive_group()
    camera.add_argument("--focal", type=float, metavar="PX",
                        help="the camera's focal length in pixels of the frames given, for metric depth (depth scales "
                             "with it); without it or --camera-info, the training camera's field of view is assumed")
    camera.add_argument("--camera-info", metavar="FILE",
                        help="a ROS camera calibration YAML (as camera_calibration writes it): its focal length, "
                             "scaled from its image_width to the frames'")
    group.add_argument("--strict", action="store_true", help="fail instead of falling back to another backend/device")
    group.add_argument("--classes", default="all",
                       help="labels from one dataset's classes only, for weights trained on several: 'nyud' "
                            "(ids 0-39) or 'kitti' (ids 40-45) for nyud_kitti; 'all' (default) takes every class")


def pipeline_from_args(args: argparse.Namespace) -> Pipeline:
    config = PipelineConfig(
        weights=args.weights, backend=args.backend, device=args.device, precision=args.precision,
        input_size=parse_size(args.size), output_size=args.output_size, strict=args.strict,
        classes=getattr(args, "classes", "all"),
    )
    pipe = Pipeline.create(config)
    log.info("running %s %s on %s with %s", pipe.info["backend"], pipe.info["precision"], pipe.info["device"], pipe.info["weights"])
    return pipe


def camera_focal_from_args(args: argparse.Namespace) -> CameraFocal | None:
    """--focal or --camera-info as a CameraFocal; None when neither was given. ValueError (a
    one-line reason naming the file) for a bad value or file."""
    if getattr(args, "focal", None) is not None:
        if not args.focal > 0:
            raise ValueError(f"--focal must be > 0 pixels, got {args.focal}")
        return CameraFocal(args.focal, None, "--focal")
    path = getattr(args, "camera_info", None)
    if path is None:
        return None
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ValueError(f"--camera-info {path}: {error.strerror or error}") from None
    try:
        return focal_from_camera_info_yaml(text, source=str(path))
    except ValueError as error:
        raise ValueError(f"--camera-info {path}: {error}") from None


def say_depth_camera(pipe: Pipeline, focal: CameraFocal | None) -> None:
    """The one line about the camera metric depth assumes, when none was given."""
    if focal is None:
        print(f"note: {assumption_note(pipe.training_camera)} (--focal PX or --camera-info FILE)", flush=True)


def standalone_main(prog: str, description: str | None, add_arguments, run, argv: list[str] | None = None) -> int:
    """Run one subcommand module on its own (``python -m hydranet_ros.commands.train``), as torchrun does."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    return run(parser.parse_args(argv))
