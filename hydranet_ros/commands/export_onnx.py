"""`hydranet export-onnx`: the network as an ONNX file (opset >= 17), checked against PyTorch.

The file takes the normalised image (1,3,H,W) float32 named 'image' and returns the heads
('segm', 'depth'[, 'normals']) at 1/4 resolution; the preset and weights hash are in its metadata.
"""

from __future__ import annotations

import argparse

from hydranet_ros.errors import UsageError
from hydranet_ros.model.locate import locate_weights
from hydranet_ros.runtime.sizes import network_size

TOLERANCE = 1e-4  # relative to the largest output value: fp32 exporters agree far closer than this


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="where to write the .onnx file")
    parser.add_argument("--weights", default="default",
                        help="a .safetensors file, a published .ckpt, a downloaded preset name, or 'default'")
    parser.add_argument("--size", default="640x480", help="input size WIDTHxHEIGHT (padded to multiples of 32, as the "
                                                          "pipeline feeds a fixed-size model), or 'input' for dynamic "
                                                          "height and width (default: 640x480)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 or newer (default: 17)")
    parser.add_argument("--exporter", default="auto", choices=("auto", "torchscript", "dynamo"),
                        help="torch.onnx exporter (default: auto = torchscript where available)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-PyTorch comparison")


def check_opset(opset: int, exporter: str = "auto") -> None:
    """Refuse an opset the installed torch cannot write, naming the range, instead of letting the
    exporter fail and the fallback to the other exporter blame a missing package."""
    import torch.onnx

    from hydranet_ros.runtime.engines.onnx_export import MIN_OPSET

    constants = getattr(torch.onnx, "_constants", None)
    newest = getattr(constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET" if exporter != "dynamo" else "ONNX_MAX_OPSET", None)
    if opset < MIN_OPSET or (newest is not None and opset > newest):
        upper = f"..{newest}" if newest is not None else " or newer"
        raise UsageError(f"--opset {opset}: this torch ({torch.__version__}) exports opset {MIN_OPSET}{upper}")


def run(args: argparse.Namespace) -> int:
    if not args.output.endswith(".onnx"):
        raise UsageError(f"output {args.output!r} must end in .onnx")
    size = network_size(args.size)
    if size == "auto":
        raise UsageError("--size auto is not an export size: give WIDTHxHEIGHT, or 'input' for a dynamic size")
    located = locate_weights(args.weights)
    import numpy as np
    import torch

    from hydranet_ros.model.checkpoints import load_weights
    from hydranet_ros.runtime.calibration import prepare
    from hydranet_ros.runtime.engines.onnx_export import compare_with_eager, export_onnx
    from hydranet_ros.runtime.geometry import round_up

    check_opset(args.opset, args.exporter)
    weights = load_weights(located.path)
    if isinstance(size, tuple):
        # A fixed-size model gets what the pipeline would feed it: the size padded to the stride.
        size = tuple(round_up(v) for v in size)
    model = weights.build_model()
    path = export_onnx(model, args.output, input_size=size, opset=args.opset, weights_sha256=weights.sha256,
                       exporter=args.exporter)
    print(f"wrote {path} ({'dynamic size' if size is None else f'{size[0]}x{size[1]}'}, opset {args.opset}, "
          f"preset {weights.preset.name}, weights sha256 {weights.sha256[:16]})")
    if args.no_check:
        return 0
    width, height = size or (320, 240)
    rng = np.random.default_rng(0)
    # Smooth random scenes (upsampled noise): image-like statistics without shipping a sample.
    frames = [np.ascontiguousarray(np.kron(rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3)),
                                           np.ones((8, 8, 1)))[:height, :width].astype(np.uint8)) for _ in range(2)]
    images = [prepare(f, size=(width, height), mean=weights.preset.mean, std=weights.preset.std) for f in frames]
    worst = compare_with_eager(path, model, images)
    with torch.no_grad():
        scale = max(1.0, max(float(v.abs().max()) for v in model(images[0]).values()))
    ok = max(worst.values()) <= TOLERANCE * scale
    print("onnxruntime vs PyTorch, largest difference: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items())
          + (" (ok)" if ok else f" (FAILED: above {TOLERANCE:g} x {scale:.1f})"))
    return 0 if ok else 1
