"""The launch actions perception.launch.py and multi_camera.launch.py share: their declared
arguments, the one lifecycle node they start, and its way to ACTIVE.

Imported by the launch files in the launch process: launch and launch_ros only (no rclpy, torch
or OpenCV). What the arguments mean is parsed in ros/launch_args.py (plain functions).
"""

from __future__ import annotations

from typing import Callable, Iterable

import lifecycle_msgs.msg
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare

from hydranet_ros.ros.launch_args import LaunchArgument

PACKAGE = "hydranet_ros"


def description(arguments: Iterable[LaunchArgument], config_name: str,
                setup: Callable[[LaunchContext], list]) -> LaunchDescription:
    """``arguments`` declared (the one without a default is the package's ``config/<config_name>``),
    then ``setup`` run with their values."""
    shipped_config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", config_name])
    declared = [
        DeclareLaunchArgument(a.name, default_value=a.default if a.default is not None else shipped_config,
                              description=a.description, choices=list(a.choices) if a.choices else None)
        for a in arguments
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=setup)])


def argument_reader(context: LaunchContext) -> Callable[[str], str]:
    return lambda name: LaunchConfiguration(name).perform(context)


def perception_node(arg: Callable[[str], str], *, parameters: list, remappings: list, autostart: bool) -> list:
    """The perception lifecycle node, and with ``autostart`` the events that configure it and,
    once configured, activate it."""
    node = LifecycleNode(
        package=PACKAGE,
        executable="perception_node",
        name="perception_node",
        namespace=arg("namespace"),
        parameters=parameters,
        remappings=remappings,
        ros_arguments=["--log-level", arg("log_level")],
        output="screen",
        emulate_tty=True,
    )
    if not autostart:
        return [node]
    return [
        node,
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
