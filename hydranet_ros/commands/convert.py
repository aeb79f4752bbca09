"""`hydranet convert`: a published checkpoint -> the project's safetensors with metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from hydranet_ros.errors import UsageError
from hydranet_ros.model.locate import WeightsError
from hydranet_ros.presets import PRESETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="published checkpoint ({'state_dict': ...}, .ckpt/.pth)")
    parser.add_argument("output", help="where to write the .safetensors file")
    parser.add_argument("--preset", choices=list(PRESETS), help="what the weights are (default: inferred from the heads)")
    parser.add_argument("--fp16", action="store_true", help="store weights in half precision (half the size)")


def run(args: argparse.Namespace) -> int:
    if not args.output.endswith(".safetensors"):
        raise UsageError(f"output {args.output!r} must end in .safetensors")
    source = Path(args.input)
    if not source.is_file():
        raise WeightsError(source, "no such file" if not source.exists() else "not a regular file")
    if Path(args.output).resolve() == source.resolve():
        raise UsageError(f"output {args.output} is the input; the input is never overwritten")
    import torch

    from hydranet_ros.model.checkpoints import load_published, save_safetensors

    weights = load_published(args.input, preset=args.preset)
    digest = save_safetensors(args.output, weights.state_dict, weights.preset,
                              extra={"source": weights.source}, dtype=torch.float16 if args.fp16 else None)
    print(f"{args.input} -> {args.output}: preset {weights.preset.name}, {weights.preset.num_classes} classes, sha256 {digest[:16]}")
    return 0
