"""Choosing the torch backend must not import TensorRT, torch-tensorrt, ONNX Runtime, OpenVINO,
NNCF or onnx: they are large, slow to import, and absent on most machines. Nor may finding out
which are installed (backend: auto) import them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch_tensorrt", "tensorrt", "onnxruntime", "onnx", "modelopt", "openvino", "nncf")
ROOT = Path(__file__).resolve().parent.parent

SCRIPT = f"""
import json, sys
import numpy as np
import torch
torch.set_num_threads(1)
from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import get_preset
import hydranet_ros.runtime.engines.tensorrt_engine  # the module itself imports nothing heavy either
import hydranet_ros.runtime.engines.cuda_graph_engine
import hydranet_ros.runtime.engines.onnxruntime_engine
import hydranet_ros.runtime.engines.openvino_engine
import hydranet_ros.runtime.engine_cache
from hydranet_ros.runtime.choices import installed_backends
installed_backends()
preset = get_preset("kitti")
pipe = Pipeline.from_model(HydraNet(preset).eval(), preset, PipelineConfig(backend="torch", device="cpu", input_size=(64, 48)))
pipe.process(np.zeros((48, 64, 3), np.uint8))
print(json.dumps({{"backend": pipe.info["backend"], "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def test_torch_backend_imports_no_heavy_runtime():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"backend": "torch", "loaded": []}
