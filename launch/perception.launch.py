"""Start the HydraNet perception node (a lifecycle node) and bring it to ACTIVE.

    ros2 launch hydranet_ros perception.launch.py camera:=camera resolution:=640x480 precision:=fp16
    ros2 launch hydranet_ros perception.launch.py --show-args    # every argument, described

Parameters are [config YAML, {overrides from the arguments}]: the arguments win where given.
Argument parsing lives in hydranet_ros.ros.launch_args (plain functions, tested without ROS); the
node and its way to ACTIVE in hydranet_ros.ros.launch_actions (shared with multi_camera.launch.py).
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from hydranet_ros.ros import launch_actions, launch_args


def _setup(context: LaunchContext) -> list:
    arg = launch_actions.argument_reader(context)
    share = get_package_share_directory(launch_actions.PACKAGE)
    config = arg("config") or os.path.join(share, "config", "hydranet.yaml")
    if not os.path.isfile(config):
        raise RuntimeError(f"config file {config} does not exist")
    overrides = launch_args.node_overrides(
        resolution=arg("resolution"), precision=arg("precision"), backend=arg("backend"),
        device=arg("device"), weights=arg("weights"), compressed=arg("compressed"),
        use_sim_time=arg("use_sim_time"))
    # launch_ros types plain string values by YAML rules ("1e3" would become a float, "on" a
    # bool): every string parameter goes through ParameterValue(..., value_type=str).
    typed = {name: ParameterValue(value, value_type=str) if isinstance(value, str) else value
             for name, value in overrides.items()}
    actions = launch_actions.perception_node(
        arg, parameters=[config, typed],
        remappings=launch_args.remappings(arg("camera"), arg("image_topic"), arg("camera_info_topic")),
        autostart=launch_args.parse_bool(arg("autostart"), name="autostart"))
    if launch_args.parse_bool(arg("rviz"), name="rviz"):
        actions.append(Node(
            package="rviz2", executable="rviz2", name="hydranet_rviz",
            arguments=["-d", os.path.join(share, "rviz", "hydranet.rviz")],
            parameters=[{"use_sim_time": overrides["use_sim_time"]}],
            output="screen",
        ))
    return actions


def generate_launch_description() -> LaunchDescription:
    return launch_actions.description(launch_args.LAUNCH_ARGUMENTS, "hydranet.yaml", _setup)
