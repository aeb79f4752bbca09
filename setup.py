"""pip install for use without ROS (the `hydranet` command, training, tests).

On a ROS 2 machine colcon builds this package with ament_cmake (see CMakeLists.txt and
package.xml) and ignores this file. torch is not pinned: on a Jetson it comes from JetPack and
pip must not replace it.
"""

import glob
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPyWithMessages(build_py):
    """Ship msg/*.msg inside the package so offline tools (hydranet bag) can write our messages."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "hydranet_ros", "msg_defs")
        os.makedirs(target, exist_ok=True)
        for path in glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "msg", "*.msg")):
            shutil.copy(path, target)


setup(
    name="hydranet_ros",
    version="0.1.0",
    description="HydraNet joint semantic segmentation and metric depth, for ROS 2 and offline use",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["hydranet_ros", "hydranet_ros.*"]),
    package_data={"hydranet_ros": ["weights/*.safetensors", "weights/*.json"]},
    cmdclass={"build_py": BuildPyWithMessages},
    install_requires=[
        "numpy>=1.21",
        "opencv-python-headless>=4.5",
        "safetensors>=0.4",
        "pyyaml>=5.4",
        "tqdm>=4.60",
        "rosbags>=0.9.20",
        "torch>=2.1",
    ],
    extras_require={
        # CPU engines (runtime/engines/onnxruntime_engine.py, openvino_engine.py); onnx writes the
        # export both read. Imported only when chosen, so neither is needed for the torch backend.
        "onnxruntime": ["onnx>=1.15", "onnxruntime>=1.17"],
        "openvino": ["onnx>=1.15", "openvino>=2024.0", "nncf>=2.10"],
        # CI tests both CPU engines instead of skipping them: about 130 MB of wheels, 40 s to install.
        "test": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6.80", "onnx>=1.15", "onnxruntime>=1.17",
                 "openvino>=2024.0", "nncf>=2.10", "catkin_pkg>=0.5"],
        "train": [],
    },
    entry_points={"console_scripts": ["hydranet=hydranet_ros.cli:main"]},
)
