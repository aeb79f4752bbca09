"""`hydranet build-engine`: build a TensorRT engine, an OpenVINO or ONNX Runtime model (fp32 or
int8), or an ONNX export into the engine cache
ahead of time, e.g. while making a deployment image, and print where it went.

A TensorRT build takes minutes on a Jetson; the node then starts in seconds because it finds the
engine in the cache (same weights, size, precision, GPU and library versions).
"""

from __future__ import annotations

import argparse

from hydranet_ros.commands.common import check_device, positive_int
from hydranet_ros.errors import UsageError
from hydranet_ros.model.locate import locate_weights
from hydranet_ros.runtime.sizes import network_size
from hydranet_ros.runtime.choices import ENGINES, build_size
from hydranet_ros.runtime.geometry import round_up

BUILD_BACKENDS = ("tensorrt", "openvino", "onnxruntime", "onnx")
DEFAULT_PRECISION = {"tensorrt": "fp16"}  # the others: fp32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default="default",
                        help="a .safetensors file, a published .ckpt, a downloaded preset name, or 'default'")
    parser.add_argument("--backend", default="tensorrt", choices=BUILD_BACKENDS, help="what to build (default: tensorrt)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"),
                        help="engine precision (default: fp16 for tensorrt, else fp32; int8 needs --calibration; "
                             "onnx is always fp32)")
    parser.add_argument("--size", default="640x480", help="network input size WIDTHxHEIGHT (default: 640x480; "
                                                          "'input' = dynamic, ONNX only)")
    parser.add_argument("--device", help="tensorrt: the GPU to build for, cuda or cuda:N (default: cuda); "
                                         "openvino and onnxruntime build for this machine's CPU")
    parser.add_argument("--calibration", help="int8: folder of frames, a video or a rosbag2 from the robot's camera")
    parser.add_argument("--calibration-frames", type=positive_int, default=64,
                        help="int8: frames to calibrate on (default: 64; openvino and onnxruntime hold up to 16 more "
                             "out to check the int8 model's accuracy against fp32)")
    parser.add_argument("--cache-dir", help="engine cache directory (default: $HYDRANET_ENGINE_CACHE or "
                                            "$XDG_CACHE_HOME/hydranet_ros/engines)")
    parser.add_argument("--opset", type=int, default=17, help="onnx: opset version (default: 17)")
    parser.add_argument("--max-batch", type=positive_int, default=1,
                        help="tensorrt: cameras per network pass, for the multi-camera node (its number of cameras): "
                             "1 builds a fixed batch of one (default), N a dynamic batch 1..N")


def run(args: argparse.Namespace) -> int:
    # The cheap checks first, without torch: the size, the device, the weights name.
    size = network_size(args.size)
    args.precision = args.precision or DEFAULT_PRECISION.get(args.backend, "fp32")
    args.device = args.device or ("cuda" if args.backend == "tensorrt" else "cpu")
    check_device(args.device)
    if args.max_batch != 1 and args.backend != "tensorrt":
        # Only TensorRT is built for a batch range; the CPU engines' exports take one frame.
        raise UsageError(f"--max-batch is for TensorRT engines: an {args.backend} model runs one frame at a time")
    located = locate_weights(args.weights)
    import torch

    from hydranet_ros.model.checkpoints import load_weights
    from hydranet_ros.runtime.engine_cache import EngineCache
    from hydranet_ros.runtime.engines.base import EngineError, create_engine

    if args.backend == "tensorrt" and size is None:
        raise EngineError("a TensorRT engine is built for one input size: pass --size WIDTHxHEIGHT")
    if args.backend == "tensorrt" and (args.device == "cpu" or not torch.cuda.is_available()):
        where = "--device cpu was given" if args.device == "cpu" else (
            "this torch has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible")
        raise EngineError(f"a TensorRT engine is built on the GPU it runs on, and needs CUDA: {where}; "
                          "build on the robot, or use --backend onnx for a portable file")
    weights = load_weights(located.path)
    if size == "auto":
        size = weights.trained_input_size
        if size is None and args.backend == "tensorrt":
            raise EngineError(f"{located.path} records no training size; pass --size WIDTHxHEIGHT for the engine")
    if isinstance(size, tuple):
        # The size the pipeline builds this backend for (choices.build_size: padded to the stride
        # for a fixed-size engine), so the node finds this engine in the cache; a fixed-size ONNX
        # file is exported at the size the network is fed, padded to the stride.
        size = build_size(args.backend, size) if args.backend in ENGINES else tuple(round_up(v) for v in size)
    model = weights.build_model()
    if args.backend == "onnx":
        from hydranet_ros.commands.export_onnx import check_opset
        from hydranet_ros.runtime.engines.onnx_export import cached_onnx

        check_opset(args.opset)
        if args.precision != "fp32":
            print(f"note: ONNX exports are fp32; --precision {args.precision} applies when a runtime builds from it")
        path = cached_onnx(model, weights_sha256=weights.sha256, input_size=size, opset=args.opset,
                           cache=EngineCache(directory=args.cache_dir))
        print(path)
        return 0
    if size is None and args.precision == "int8":
        raise EngineError(f"a {args.backend} int8 model is calibrated for one input size: pass --size WIDTHxHEIGHT")
    options = {"cache_dir": args.cache_dir, "calibration": args.calibration, "calibration_frames": args.calibration_frames}
    if args.backend == "tensorrt":
        options["max_batch"] = args.max_batch
    engine = create_engine(args.backend, model, device=torch.device(args.device), precision=args.precision, input_size=size,
                           weights_sha256=weights.sha256, options=options)
    print(engine.engine_path if args.backend == "tensorrt" else engine.model_path)
    if gate := engine.describe().get("int8_gate"):
        print(f"int8 accuracy: {gate}")
    return 0
