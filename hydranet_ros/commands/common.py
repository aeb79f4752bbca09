"""Options shared by the subcommands that run the pipeline."""

from __future__ import annotations

import argparse
import logging
from typing import Any, Mapping

from hydranet_ros.runtime.choices import BACKENDS, OUTPUT_SIZES, PRECISIONS
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig, parse_size

log = logging.getLogger("hydranet")

# The network options and their defaults; `hydranet bag --params FILE` takes its defaults from the
# node's parameter file instead (see node_defaults).
DEFAULTS = {"weights": "default", "backend": "torch", "device": "auto", "precision": "fp32", "size": "auto",
            "output_size": "input", "strict": False}


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
    group.add_argument("--backend", default=default("backend"), choices=BACKENDS, help=f"inference backend (default: {said('backend')})")
    group.add_argument("--device", default=default("device"), help=f"auto, cpu, cuda or cuda:N (default: {said('device')})")
    group.add_argument("--precision", default=default("precision"), choices=PRECISIONS, help=f"numeric precision (default: {said('precision')})")
    group.add_argument("--size", default=default("size"),
                       help="network input size WIDTHxHEIGHT, 'input' for each frame's own size, or 'auto': the size "
                            f"the weights were trained at if they record it, else the frame's (default: {said('size')})")
    group.add_argument("--output-size", default=default("output_size"), choices=OUTPUT_SIZES,
                       help=f"outputs at the input frame's size or at the network's size (default: {said('output_size')})")
    group.add_argument("--strict", action="store_true", default=default("strict"),
                       help="fail instead of falling back to another backend/device")


def node_defaults(args: argparse.Namespace, values: Mapping[str, Any]) -> None:
    """Fill the network options left unset on the command line from node parameter ``values``
    (checked ones: weights, backend, device, precision, input_width/height, output_size, strict),
    then from DEFAULTS."""
    from_node = {name: values[name] for name in ("weights", "backend", "device", "precision", "output_size", "strict")
                 if name in values}
    if "input_width" in values or "input_height" in values:
        width, height = int(values.get("input_width", 0)), int(values.get("input_height", 0))
        from_node["size"] = f"{width}x{height}" if width and height else "auto"
    for name, default in DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, from_node.get(name, default))


def pipeline_from_args(args: argparse.Namespace) -> Pipeline:
    config = PipelineConfig(
        weights=args.weights, backend=args.backend, device=args.device, precision=args.precision,
        input_size=parse_size(args.size), output_size=args.output_size, strict=args.strict,
    )
    pipe = Pipeline.create(config)
    log.info("running %s %s on %s with %s", pipe.info["backend"], pipe.info["precision"], pipe.info["device"], pipe.info["weights"])
    return pipe


def standalone_main(prog: str, description: str | None, add_arguments, run, argv: list[str] | None = None) -> int:
    """Run one subcommand module on its own (``python -m hydranet_ros.commands.train``), as torchrun does."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    return run(parser.parse_args(argv))
