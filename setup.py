"""pip install for use without ROS (the `hydranet` command, training, tests).

On a ROS 2 machine colcon builds this package with ament_cmake (see CMakeLists.txt and
package.xml) and ignores this file. torch is not pinned: on a Jetson it comes from JetPack and
pip must not replace it.
"""

from setuptools import find_packages, setup

setup(
    name="hydranet_ros",
    version="0.1.0",
    description="HydraNet joint semantic segmentation and metric depth, for ROS 2 and offline use",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["hydranet_ros", "hydranet_ros.*"]),
    package_data={"hydranet_ros": ["weights/*.safetensors", "weights/*.json", "msg_defs/*.msg"]},
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
        "test": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6.80", "onnx>=1.15", "onnxruntime>=1.17", "catkin_pkg>=0.5"],
        "train": [],
    },
    entry_points={"console_scripts": ["hydranet=hydranet_ros.cli:main"]},
)
