"""What the subcommands share: one-line errors, the network options, checked before torch loads.

The order every command that runs the network follows: check the arguments, the paths and the
weights name (no torch: a typo is answered at once), then build the pipeline (imports torch and
loads the weights, seconds).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from hydranet_ros.errors import HydraNetError, UsageError, first_line
from hydranet_ros.io.camera_info import frame_focal_px, read_camera_calibration
from hydranet_ros.model.locate import locate_weights
from hydranet_ros.runtime.choices import AUTO, BACKENDS, DEVICES, MAX_FRAME_PIXELS, OUTPUT_SIZES, PRECISIONS
from hydranet_ros.runtime.sizes import network_size
from hydranet_ros.runtime.focal import CameraFocal, assumption_note

log = logging.getLogger("hydranet")

# The network options and their defaults; `hydranet bag --params FILE` takes its defaults from the
# node's parameter file instead (see node_defaults).
DEFAULTS = {"weights": "default", "backend": AUTO, "device": "auto", "precision": "fp32", "size": "auto",
            "output_size": "input", "strict": False, "classes": "all"}


class Parser(argparse.ArgumentParser):
    """argparse with the command's one-line errors: ``hydranet CMD: error: ...`` and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(exc: BaseException) -> str:
    """What the user reads: the error's first line; an OSError as 'path: cause'."""
    if isinstance(exc, OSError) and not isinstance(exc, HydraNetError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    return first_line(exc)


def run_command(command: str, run: Callable[[argparse.Namespace], int], args: argparse.Namespace, *,
                debug: bool = False) -> int:
    """``run(args)`` with the one error model: a HydraNetError or an OSError (a path the user gave
    cannot be read or written) becomes one line and exit 2; anything else propagates (a bug)."""
    try:
        return run(args)
    except (HydraNetError, OSError) as exc:
        if debug:
            traceback.print_exc()
        print(f"hydranet {command}: error: {one_line(exc)}", file=sys.stderr)
        return 2


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (threads, frames, steps)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0 (a limit where 0 means none)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, got {value}")
    return value


def add_max_pixels_argument(parser: argparse.ArgumentParser, *, default: int | None) -> None:
    """--max-pixels, as the node's max_input_pixels: frames with more pixels are refused from their
    header before decoding; 0 = no limit."""
    said = f"{MAX_FRAME_PIXELS} (3840x2160)" if default is not None else f"the --params file's, else {MAX_FRAME_PIXELS} (3840x2160)"
    parser.add_argument("--max-pixels", type=non_negative_int, default=default, metavar="N",
                        help=f"refuse frames with more than N pixels, read from the image header before decoding; "
                             f"0 = no limit (default: {said}, the node's max_input_pixels)")


def check_device(device: str) -> str:
    if device not in DEVICES and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise UsageError(f"device {device!r} is not one of {', '.join(DEVICES)} or cuda:N")
    return device


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (default: torch's choice, all cores); 1 on a shared machine")


def set_threads(threads: int | None) -> None:
    """torch.set_num_threads when asked (imports torch: call it once the cheap checks are done)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def add_pipeline_arguments(parser: argparse.ArgumentParser, *, default_size: str = "auto",
                           defaults_from_params: bool = False) -> None:
    """The network options. ``defaults_from_params``: leave unset options None, so that
    ``node_defaults`` can fill them from a node parameter file first."""
    defaults = {**DEFAULTS, "size": default_size}

    def default(name: str) -> Any:
        return None if defaults_from_params else defaults[name]

    def said(name: str) -> str:
        return f"the --params file's, else {defaults[name]}" if defaults_from_params else str(defaults[name])

    group = parser.add_argument_group("network")
    group.add_argument("--weights", default=default("weights"),
                       help="a .safetensors file, a published .ckpt, a preset name whose weights were downloaded "
                            "(kitti, nyud, nyud_kitti, nyud_three), or 'default' (cached kitti, else the shipped model)")
    group.add_argument("--backend", default=default("backend"), choices=BACKENDS, help=f"inference backend (default: {said('backend')}; auto = the fastest installed "
                            "for the device: tensorrt, cuda-graph, torch on CUDA; openvino, onnxruntime, torch on the CPU)")
    group.add_argument("--device", default=default("device"), help=f"auto, cpu, cuda or cuda:N (default: {said('device')})")
    group.add_argument("--precision", default=default("precision"), choices=PRECISIONS, help=f"numeric precision (default: {said('precision')})")
    group.add_argument("--size", default=default("size"),
                       help="network input: each frame is scaled to fit inside WIDTHxHEIGHT with its aspect ratio kept "
                            "(never stretched), then padded to multiples of 32; 'input' runs each frame at its own size; "
                            "'auto' fits it inside the size the weights were trained at if they record it, else runs it "
                            f"at its own size (default: {said('size')})")
    group.add_argument("--output-size", default=default("output_size"), choices=OUTPUT_SIZES,
                       help="outputs at the input frame's size, or at the frame's size as scaled for the network "
                            f"(without the padding) (default: {said('output_size')})")
    group.add_argument("--strict", action="store_true", default=default("strict"),
                       help="fail instead of falling back to another backend/device")
    camera = group.add_mutually_exclusive_group()
    camera.add_argument("--focal", type=float, metavar="PX",
                        help="the camera's focal length in pixels of the frames given, for metric depth (depth scales "
                             "with it); without it or --camera-info, the training camera's field of view is assumed")
    camera.add_argument("--camera-info", metavar="FILE",
                        help="a ROS camera calibration YAML (as camera_calibration writes it): its focal length "
                             "(projection_matrix's, camera_matrix's where it has none), scaled from its image_width to "
                             "the frames'; `infer --points` unprojects with its whole camera model")
    group.add_argument("--classes", default=default("classes"),
                       help="labels from one dataset's classes only, for weights trained on several: 'nyud' "
                            "(ids 0-39) or 'kitti' (ids 40-45) for nyud_kitti; 'all' takes every class "
                            f"(default: {said('classes')})")
    add_threads_argument(group)


def node_defaults(args: argparse.Namespace, values: Mapping[str, Any]) -> None:
    """Fill the network options left unset on the command line from node parameter ``values``
    (checked ones: weights, backend, device, precision, input_width/height, output_size, strict),
    then from DEFAULTS."""
    from_node = {name: values[name] for name in ("weights", "backend", "device", "precision", "output_size", "strict", "classes")
                 if name in values}
    if "input_width" in values or "input_height" in values:
        width, height = int(values.get("input_width", 0)), int(values.get("input_height", 0))
        from_node["size"] = f"{width}x{height}" if width and height else "auto"
    for name, default in DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, from_node.get(name, default))


@dataclass(frozen=True)
class NetworkOptions:
    """The network options, checked: everything Pipeline.create needs, found without torch."""

    weights: str
    backend: str
    device: str
    precision: str
    input_size: tuple[int, int] | None | str
    output_size: str
    strict: bool
    threads: int | None
    classes: str = "all"


def network_options(args: argparse.Namespace) -> NetworkOptions:
    """Check the network options without torch: the size, the device and that the weights name
    means a file that exists (loading it, and what it holds, come with the pipeline)."""
    options = NetworkOptions(
        weights=str(args.weights), backend=args.backend, device=check_device(args.device), precision=args.precision,
        input_size=network_size(args.size), output_size=args.output_size, strict=bool(args.strict),
        threads=getattr(args, "threads", None), classes=getattr(args, "classes", None) or "all")
    locate_weights(options.weights)
    return options


def pipeline_from_args(args: argparse.Namespace, *, max_batch: int = 1) -> Any:
    """The pipeline the network options ask for (checks them first; imports torch). ``max_batch``:
    cameras per network pass (several cameras of one bag), for engines built for a batch range."""
    options = network_options(args)
    set_threads(options.threads)
    from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig

    config = PipelineConfig(weights=options.weights, backend=options.backend, device=options.device,
                            precision=options.precision, input_size=options.input_size,
                            output_size=options.output_size, strict=options.strict, classes=options.classes,
                            max_batch=max_batch)
    pipe = Pipeline.create(config)
    log.info("running %s %s on %s%s with %s", pipe.info["backend"], pipe.info["precision"], pipe.info["device"],
             " (backend auto)" if args.backend == AUTO else "", pipe.info["weights"])
    return pipe


def camera_focal_from_args(args: argparse.Namespace) -> CameraFocal | None:
    """--focal or --camera-info as a CameraFocal; None when neither was given. UsageError (a
    one-line reason naming the file) for a bad value or file; no torch needed."""
    if getattr(args, "focal", None) is not None:
        if not 0 < args.focal < math.inf:  # also NaN: its depth would be NaN everywhere
            raise UsageError(f"--focal must be a number of pixels > 0, got {args.focal}")
        return CameraFocal(args.focal, None, "--focal")
    path = getattr(args, "camera_info", None)
    if path is None:
        return None
    # The reader and the focal-length rule (P's, K's where P is empty) of the node's CameraInfo
    # and of infer --points, so that depth and the cloud use one focal length.
    calibration = read_camera_calibration(path)
    focal = frame_focal_px(calibration, calibration.width, calibration.height)
    if focal is None:
        raise UsageError(f"{path}: not a usable camera calibration: its focal lengths "
                         f"(P: {calibration.p[0]:g}, {calibration.p[5]:g}; K: {calibration.k[0]:g}, {calibration.k[4]:g}) "
                         "give no usable focal length")
    return CameraFocal(focal, calibration.width, str(path))


def say_depth_camera(pipe: Any, focal: CameraFocal | None) -> None:
    """The one line about the camera metric depth assumes, when none was given."""
    if focal is None:
        print(f"note: {assumption_note(pipe.training_camera)} (--focal PX or --camera-info FILE)", flush=True)


def standalone_main(prog: str, description: str | None, add_arguments, run, argv: list[str] | None = None) -> int:
    """Run one subcommand module on its own (``python -m hydranet_ros.commands.train``), as torchrun
    does, with the same one-line errors as `hydranet`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = Parser(prog=prog, description=description)
    add_arguments(parser)
    return run_command(prog.removeprefix("hydranet "), run, parser.parse_args(argv))
