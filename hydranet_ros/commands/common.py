"""Options shared by the subcommands that run the pipeline."""

from __future__ import annotations

import argparse
import logging

from hydranet_ros.runtime.choices import AUTO, BACKENDS, OUTPUT_SIZES, PRECISIONS
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig, parse_size

log = logging.getLogger("hydranet")


def add_pipeline_arguments(parser: argparse.ArgumentParser, *, default_size: str = "auto") -> None:
    group = parser.add_argument_group("network")
    group.add_argument("--weights", default="default",
                       help="a .safetensors file, a published .ckpt, a preset name whose weights were downloaded "
                            "(kitti, nyud, nyud_kitti, nyud_three), or 'default' (cached kitti, else the shipped model)")
    group.add_argument("--backend", default=AUTO, choices=BACKENDS,
                       help="inference backend (default: auto, the fastest installed for the device: "
                            "tensorrt, cuda-graph, torch on CUDA; openvino, onnxruntime, torch on the CPU)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    group.add_argument("--precision", default="fp32", choices=PRECISIONS, help="numeric precision (default: fp32)")
    group.add_argument("--size", default=default_size,
                       help="network input size WIDTHxHEIGHT, 'input' for each frame's own size, or 'auto': the size "
                            f"the weights were trained at if they record it, else the frame's (default: {default_size})")
    group.add_argument("--output-size", default="input", choices=OUTPUT_SIZES,
                       help="outputs at the input frame's size or at the network's size (default: input)")
    group.add_argument("--strict", action="store_true", help="fail instead of falling back to another backend/device")


def pipeline_from_args(args: argparse.Namespace) -> Pipeline:
    config = PipelineConfig(
        weights=args.weights, backend=args.backend, device=args.device, precision=args.precision,
        input_size=parse_size(args.size), output_size=args.output_size, strict=args.strict,
    )
    pipe = Pipeline.create(config)
    log.info("running %s %s on %s%s with %s", pipe.info["backend"], pipe.info["precision"], pipe.info["device"],
             " (backend auto)" if args.backend == AUTO else "", pipe.info["weights"])
    return pipe


def standalone_main(prog: str, description: str | None, add_arguments, run, argv: list[str] | None = None) -> int:
    """Run one subcommand module on its own (``python -m hydranet_ros.commands.train``), as torchrun does."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    return run(parser.parse_args(argv))
