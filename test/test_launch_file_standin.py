"""perception.launch.py evaluated against stand-ins of launch / launch_ros (not installable here).

The stand-ins accept exactly the keyword arguments that the Humble and Jazzy sources of
launch and launch_ros define for these classes, and record them; the test then checks what the
launch file would start: parameters [yaml, {overrides}], remappings, log level, and the
configure -> activate events that bring the lifecycle node to ACTIVE.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    allowed: set[str] = set()
    positional = 0

    def __init__(self, *args, **kwargs):
        assert len(args) <= self.positional, f"{type(self).__name__} takes {self.positional} positional args"
        unknown = set(kwargs) - self.allowed
        assert not unknown, f"{type(self).__name__} has no keyword {unknown}"
        self.args, self.kwargs = args, kwargs


class DeclareLaunchArgument(Recorder):
    positional, allowed = 1, {"default_value", "description", "choices"}


class EmitEvent(Recorder):
    allowed = {"event"}


class OpaqueFunction(Recorder):
    allowed = {"function", "args", "kwargs"}


class RegisterEventHandler(Recorder):
    positional, allowed = 1, set()


class LaunchDescription(Recorder):
    positional = 1


class LaunchContext:
    def __init__(self, configurations):
        self.launch_configurations = configurations


class LaunchConfiguration(Recorder):
    positional = 1

    def perform(self, context):
        return context.launch_configurations[self.args[0]]


class PathJoinSubstitution(Recorder):
    positional = 1


class FindPackageShare(Recorder):
    positional = 1


_NODE_KEYWORDS = {"executable", "package", "name", "namespace", "exec_name", "parameters", "remappings",
                  "ros_arguments", "arguments", "output", "emulate_tty", "condition"}


class Node(Recorder):
    allowed = _NODE_KEYWORDS


class LifecycleNode(Node):
    def __init__(self, **kwargs):
        assert "name" in kwargs and "namespace" in kwargs, "launch_ros LifecycleNode requires name and namespace"
        super().__init__(**kwargs)


class OnStateTransition(Recorder):
    allowed = {"entities", "target_lifecycle_node", "transition", "start_state", "goal_state", "matcher"}


class ChangeState(Recorder):
    allowed = {"lifecycle_node_matcher", "transition_id"}


class ParameterValue(Recorder):
    positional, allowed = 1, {"value_type"}


class Transition:
    TRANSITION_CONFIGURE = 1
    TRANSITION_ACTIVATE = 3


def matches_action(action):
    return ("matches", action)


def _module(name, **attributes):
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


@pytest.fixture
def launch_module(monkeypatch, tmp_path):
    share = tmp_path / "share" / "hydranet_ros"
    shutil.copytree(ROOT / "config", share / "config")
    stand_ins = {
        "lifecycle_msgs": _module("lifecycle_msgs"),
        "lifecycle_msgs.msg": _module("lifecycle_msgs.msg", Transition=Transition),
        "ament_index_python": _module("ament_index_python"),
        "ament_index_python.packages": _module("ament_index_python.packages",
                                               get_package_share_directory=lambda name: str(share)),
        "launch": _module("launch", LaunchContext=LaunchContext, LaunchDescription=LaunchDescription),
        "launch.actions": _module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument, EmitEvent=EmitEvent,
                                  OpaqueFunction=OpaqueFunction, RegisterEventHandler=RegisterEventHandler),
        "launch.events": _module("launch.events", matches_action=matches_action),
        "launch.substitutions": _module("launch.substitutions", LaunchConfiguration=LaunchConfiguration,
                                        PathJoinSubstitution=PathJoinSubstitution),
        "launch_ros": _module("launch_ros"),
        "launch_ros.actions": _module("launch_ros.actions", LifecycleNode=LifecycleNode, Node=Node),
        "launch_ros.event_handlers": _module("launch_ros.event_handlers", OnStateTransition=OnStateTransition),
        "launch_ros.events": _module("launch_ros.events"),
        "launch_ros.events.lifecycle": _module("launch_ros.events.lifecycle", ChangeState=ChangeState),
        "launch_ros.parameter_descriptions": _module("launch_ros.parameter_descriptions", ParameterValue=ParameterValue),
        "launch_ros.substitutions": _module("launch_ros.substitutions", FindPackageShare=FindPackageShare),
    }
    for name, module in stand_ins.items():
        monkeypatch.setitem(sys.modules, name, module)
        parent, _, child = name.rpartition(".")
        if parent:  # as the import system does: `import a.b` makes b an attribute of a
            setattr(stand_ins[parent], child, module)
    spec = importlib.util.spec_from_file_location("perception_launch", ROOT / "launch" / "perception.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, share


def run_setup(module, share, **arguments):
    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs for e in entities if isinstance(e, DeclareLaunchArgument)}
    configurations = {name: kwargs["default_value"] for name, kwargs in declared.items()}
    configurations["config"] = str(share / "config" / "hydranet.yaml")  # what the PathJoinSubstitution gives
    configurations.update(arguments)
    [opaque] = [e for e in entities if isinstance(e, OpaqueFunction)]
    return declared, opaque.kwargs["function"](LaunchContext(configurations))


def test_every_argument_is_declared_with_a_description(launch_module):
    module, share = launch_module
    declared, _ = run_setup(module, share)
    from hydranet_ros.ros.launch_args import LAUNCH_ARGUMENTS

    assert list(declared) == [a.name for a in LAUNCH_ARGUMENTS]
    assert all(kwargs["description"] for kwargs in declared.values())
    config_default = declared["config"]["default_value"]
    assert isinstance(config_default, PathJoinSubstitution)
    assert config_default.args[0][1:] == ["config", "hydranet.yaml"]


def test_defaults_start_a_lifecycle_node_and_bring_it_to_active(launch_module):
    module, share = launch_module
    _, actions = run_setup(module, share)
    node = actions[0]
    assert isinstance(node, LifecycleNode)
    assert node.kwargs["package"] == "hydranet_ros" and node.kwargs["executable"] == "perception_node"
    assert node.kwargs["name"] == "perception_node" and node.kwargs["namespace"] == ""
    config, overrides = node.kwargs["parameters"]
    assert config == str(share / "config" / "hydranet.yaml")
    assert overrides == {"use_sim_time": False}  # nothing else overrides the YAML
    assert node.kwargs["remappings"] == [("image", "/camera/image_raw"),
                                         ("image/compressed", "/camera/image_raw/compressed"),
                                         ("camera_info", "/camera/camera_info")]
    assert node.kwargs["ros_arguments"] == ["--log-level", "info"]

    handler, configure = actions[1], actions[2]
    transition = handler.args[0]
    assert isinstance(transition, OnStateTransition)
    assert transition.kwargs["target_lifecycle_node"] is node
    assert (transition.kwargs["start_state"], transition.kwargs["goal_state"]) == ("configuring", "inactive")
    [activate] = transition.kwargs["entities"]
    assert activate.kwargs["event"].kwargs == {"lifecycle_node_matcher": ("matches", node),
                                              "transition_id": Transition.TRANSITION_ACTIVATE}
    assert configure.kwargs["event"].kwargs == {"lifecycle_node_matcher": ("matches", node),
                                               "transition_id": Transition.TRANSITION_CONFIGURE}
    assert len(actions) == 3  # no rviz by default


def test_arguments_override_the_config_and_strings_stay_strings(launch_module):
    module, share = launch_module
    _, actions = run_setup(module, share, resolution="640x480", precision="fp16", backend="tensorrt",
                           device="cuda", weights="/models/2024.safetensors", compressed="true", use_sim_time="true",
                           namespace="robot1", camera="front", image_topic="image_rect", log_level="debug",
                           rviz="true", autostart="false")
    node = actions[0]
    _, overrides = node.kwargs["parameters"]
    assert overrides["input_width"] == 640 and overrides["input_height"] == 480
    assert overrides["compressed"] is True and overrides["use_sim_time"] is True
    weights = "/models/2024.safetensors"
    for name, value in (("precision", "fp16"), ("backend", "tensorrt"), ("device", "cuda"), ("weights", weights)):
        assert isinstance(overrides[name], ParameterValue), name  # never re-typed by launch_ros's YAML parsing
        assert overrides[name].args == (value,) and overrides[name].kwargs == {"value_type": str}
    assert node.kwargs["namespace"] == "robot1"
    assert ("image", "/front/image_rect") in node.kwargs["remappings"]
    assert node.kwargs["ros_arguments"] == ["--log-level", "debug"]
    # autostart:=false leaves the node unconfigured; rviz:=true adds rviz2 with the shipped view.
    assert len(actions) == 2
    rviz = actions[1]
    assert rviz.kwargs["package"] == "rviz2" and rviz.kwargs["arguments"][0] == "-d"
    assert rviz.kwargs["arguments"][1].endswith("rviz/hydranet.rviz")


def test_bad_arguments_fail_with_the_argument_named(launch_module):
    module, share = launch_module
    with pytest.raises(ValueError, match="resolution"):
        run_setup(module, share, resolution="640by480")
    with pytest.raises(ValueError, match="launch argument precision"):
        run_setup(module, share, precision="fp64")
    with pytest.raises(RuntimeError, match="does not exist"):
        run_setup(module, share, config=str(share / "config" / "missing.yaml"))
