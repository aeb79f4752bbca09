"""Start ONE HydraNet perception node for several cameras (one network, their frames batched) and
bring it to ACTIVE.

    ros2 launch hydranet_ros multi_camera.launch.py cameras:=4                        # front left right rear
    ros2 launch hydranet_ros multi_camera.launch.py cameras:=front,rear camera_root:=/sensors resolution:=640x480
    ros2 launch hydranet_ros multi_camera.launch.py --show-args                       # every argument, described

Camera C's driver publishes <camera_root>/C/<image_topic> and <camera_root>/C/<camera_info_topic>;
the node publishes C's outputs under <namespace>/C/ exactly as perception.launch.py's node
publishes one camera's (semantic/labels, depth/image, depth/camera_info, ...). Parameters are
[config YAML, {overrides from the arguments}]. Argument parsing lives in
hydranet_ros.ros.launch_args (plain functions, tested without ROS).
"""

from __future__ import annotations

import os
from typing import List

import lifecycle_msgs.msg
from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from hydranet_ros.ros import launch_args

PACKAGE = "hydranet_ros"


def _setup(context: LaunchContext) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    share = get_package_share_directory(PACKAGE)
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

    node = LifecycleNode(
        package=PACKAGE,
        executable="perception_node",
        name="perception_node",
        namespace=arg("namespace"),
        parameters=[config, typed],
        remappings=launch_args.camera_remappings(cameras, arg("camera_root"), arg("image_topic"),
                                                 arg("camera_info_topic")),
        ros_arguments=["--log-level", arg("log_level")],
        output="screen",
        emulate_tty=True,
    )
    actions: list = [node]
    if launch_args.parse_bool(arg("autostart"), name="autostart"):
        actions += [
            # Activate once configure has succeeded; start_state keeps a later deactivate from
            # re-triggering activation.
            RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
                entities=[EmitEvent(event=ChangeState(
                    lifecycle_node_matcher=matches_action(node),
                    transition_id=lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE))],
            )),
            EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(node),
                transition_id=lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE)),
        ]
    return actions


def generate_launch_description() -> LaunchDescription:
    shipped_config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "multi_camera.yaml"])
    declared = [
        DeclareLaunchArgument(a.name, default_value=a.default if a.default is not None else shipped_config,
                              description=a.description, choices=list(a.choices) if a.choices else None)
        for a in launch_args.MULTI_CAMERA_ARGUMENTS
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_setup)])
