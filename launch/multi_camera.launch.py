"""Start ONE HydraNet perception node for several cameras (one network, their frames batched) and
bring it to ACTIVE.

    ros2 launch hydranet_ros multi_camera.launch.py cameras:=4                        # front left right rear
    ros2 launch hydranet_ros multi_camera.launch.py cameras:=front,rear camera_root:=/sensors resolution:=640x480
    ros2 launch hydranet_ros multi_camera.launch.py --show-args                       # every argument, described

Camera C's driver publishes <camera_root>/C/<image_topic> and <camera_root>/C/<camera_info_topic>;
the node publishes C's outputs under <namespace>/C/ exactly as perception.launch.py's node
publishes one camera's (semantic/labels, depth/image, depth/camera_info, ...). Parameters are
[config YAML, {overrides from the arguments}]. Argument parsing lives in
hydranet_ros.ros.launch_args (plain functions, tested without ROS); the node and its way to ACTIVE
in hydranet_ros.ros.launch_actions (shared with perception.launch.py).
"""

from __future__ import annotations

import os
from typing import List

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch_ros.parameter_descriptions import ParameterValue

from hydranet_ros.ros import launch_actions, launch_args


def _setup(context: LaunchContext) -> list:
    arg = launch_actions.argument_reader(context)
    share = get_package_share_directory(launch_actions.PACKAGE)
    config = arg("config") or os.path.join(share, "config", "multi_camera.yaml")
    if not os.path.isfile(config):
        raise RuntimeError(f"config file {config} does not exist")
    overrides = launch_args.multi_camera_overrides(
        cameras=arg("cameras"), batch_timeout_ms=arg("batch_timeout_ms"), resolution=arg("resolution"),
        precision=arg("precision"), backend=arg("backend"), device=arg("device"), weights=arg("weights"),
        compressed=arg("compressed"), use_sim_time=arg("use_sim_time"))
    cameras = overrides["cameras"]
    # launch_ros types plain string values by YAML rules ("1e3" would become a float, "on" a
    # bool): every string parameter goes through ParameterValue(..., value_type=str); the camera
    # names are a string array (a name like "true" stays a name).
    typed = {name: ParameterValue(value, value_type=str) if isinstance(value, str)
             else ParameterValue(value, value_type=List[str]) if name == "cameras" else value
             for name, value in overrides.items()}
    return launch_actions.perception_node(
        arg, parameters=[config, typed],
        remappings=launch_args.camera_remappings(cameras, arg("camera_root"), arg("image_topic"),
                                                 arg("camera_info_topic")),
        autostart=launch_args.parse_bool(arg("autostart"), name="autostart"))


def generate_launch_description() -> LaunchDescription:
    return launch_actions.description(launch_args.MULTI_CAMERA_ARGUMENTS, "multi_camera.yaml", _setup)
