"""perception.launch.py under the real launch and launch_ros, without starting a node.

Run by `colcon test` (ament_add_pytest_test in CMakeLists.txt) in a sourced workspace:
- `ros2 launch hydranet_ros perception.launch.py --show-args` describes every argument;
- a wrong argument ends the launch with the argument named, before any process starts;
- the actions the launch file returns for given arguments, as launch_ros objects: autostart
  adds the configure and activate events, rviz:=true adds rviz2 with the shipped view (rviz2 is
  not part of the prebuilt ROS 2 used in CI, so it is checked here and never started).
The launch tests beside this file start the node through the same file with real arguments.
"""

import subprocess
from pathlib import Path

import pytest
from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext
from launch.actions import EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.launch_description_sources import get_launch_description_from_python_launch_file
from launch.utilities import perform_substitutions
from launch_ros.actions import LifecycleNode, Node

SHARE = Path(get_package_share_directory("hydranet_ros"))
LAUNCH_FILE = SHARE / "launch" / "perception.launch.py"


MULTI_LAUNCH_FILE = SHARE / "launch" / "multi_camera.launch.py"


def ros2_launch(*arguments, launch_file="perception.launch.py"):
    return subprocess.run(["ros2", "launch", "hydranet_ros", launch_file, *arguments],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def description():
    return get_launch_description_from_python_launch_file(str(LAUNCH_FILE))


@pytest.fixture(scope="module")
def multi_description():
    return get_launch_description_from_python_launch_file(str(MULTI_LAUNCH_FILE))


def actions_for(description, **arguments):
    """What the launch file's OpaqueFunction returns for the defaults overridden by ``arguments``."""
    context = LaunchContext()
    for declared in description.get_launch_arguments():
        context.launch_configurations[declared.name] = perform_substitutions(context, declared.default_value)
    context.launch_configurations.update(arguments)
    [setup] = [entity for entity in description.entities if isinstance(entity, OpaqueFunction)]
    return context, setup.execute(context)


def test_show_args_describes_every_argument(description):
    shown = ros2_launch("--show-args")
    assert shown.returncode == 0, shown.stderr
    declared = description.get_launch_arguments()
    assert {"camera", "namespace", "resolution", "weights", "config", "use_sim_time", "autostart", "rviz"} <= {
        argument.name for argument in declared}
    for argument in declared:
        assert f"'{argument.name}':" in shown.stdout, argument.name
        assert len(argument.description) > 20 and argument.description.split(".")[0] in shown.stdout, argument.name


@pytest.mark.parametrize("argument, message", [
    ("resolution:=640by480", "resolution must look like 640x480"),
    ("precision:=fp64", '"precision" provided value "fp64" is not valid'),  # launch's own choices check
    ("weights:=kiti", "launch argument weights"),
    ("config:=/nonexistent/hydranet.yaml", "config file /nonexistent/hydranet.yaml does not exist"),
])
def test_a_wrong_argument_fails_the_launch_with_its_name(argument, message):
    launched = ros2_launch(argument)
    output = launched.stdout + launched.stderr
    assert launched.returncode != 0, output
    assert message in output, output
    assert "process started" not in output  # refused before the node was started


def test_autostart_brings_the_node_up_and_false_leaves_it_to_a_manager(description):
    _, actions = actions_for(description)
    assert [type(action) for action in actions] == [LifecycleNode, RegisterEventHandler, EmitEvent]
    node = actions[0]
    assert (node.node_package, node.node_executable) == ("hydranet_ros", "perception_node")
    _, actions = actions_for(description, autostart="false")
    assert [type(action) for action in actions] == [LifecycleNode]


def test_rviz_adds_rviz2_with_the_shipped_view(description):
    context, actions = actions_for(description, rviz="true", autostart="false")
    assert [type(action) for action in actions] == [LifecycleNode, Node]
    rviz = actions[1]
    assert (rviz.node_package, rviz.node_executable) == ("rviz2", "rviz2")
    arguments = []
    for part in rviz.cmd[1:]:
        try:
            arguments.append(perform_substitutions(context, part))
        except AttributeError:  # the --ros-args part is filled in only when the node is executed
            pass
    assert arguments[:2] == ["-d", str(SHARE / "rviz" / "hydranet.rviz")]
    assert Path(arguments[1]).is_file()


def test_the_hydranet_command_runs_from_the_colcon_install():
    # colcon ignores setup.py's console script; CMakeLists.txt installs the CLI as a program.
    shown = subprocess.run(["ros2", "run", "hydranet_ros", "hydranet", "bag", "--help"],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert shown.returncode == 0, shown.stderr
    assert "usage: hydranet bag" in shown.stdout
    refused = subprocess.run(["ros2", "run", "hydranet_ros", "hydranet", "infer", "/nonexistent/frame.png"],
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and refused.stderr.startswith("hydranet infer: error:"), refused.stderr


# -- multi_camera.launch.py ---------------------------------------------------------------------------

def test_multi_camera_show_args_describes_every_argument(multi_description):
    shown = ros2_launch("--show-args", launch_file="multi_camera.launch.py")
    assert shown.returncode == 0, shown.stderr
    declared = multi_description.get_launch_arguments()
    assert {"cameras", "camera_root", "batch_timeout_ms", "namespace", "resolution", "config"} <= {a.name for a in declared}
    for argument in declared:
        assert f"'{argument.name}':" in shown.stdout, argument.name


@pytest.mark.parametrize("argument, message", [
    ("cameras:=9", "a preset rig has 2 to 8 cameras, got 9"),
    ("cameras:=front,front", "cameras must be distinct"),
    ("cameras:=/front", "must be relative"),
    ("batch_timeout_ms:=soon", "batch_timeout_ms must be a number"),
    ("batch_timeout_ms:=5000", "batch_timeout_ms must be in [0.0, 1000.0]"),
    ("camera_info_topic:=/calib", "camera_info_topic '/calib' is absolute"),
])
def test_multi_camera_wrong_argument_fails_the_launch_with_its_name(argument, message):
    launched = ros2_launch(argument, launch_file="multi_camera.launch.py")
    output = launched.stdout + launched.stderr
    assert launched.returncode != 0, output
    assert message in output, output
    assert "process started" not in output


@pytest.mark.parametrize("cameras", ["2", "3", "8", "cam_a, cam_b"])
def test_multi_camera_presets_start_one_node(multi_description, cameras):
    """Each preset rig (and a list of names) makes one lifecycle node of the perception executable;
    which topics it reads and writes is checked on the wire by test_multi_camera.py (cameras:=3)
    and, for every rig, by the pip suite's test_launch_args.py (parse_cameras, camera_remappings)."""
    _, actions = actions_for(multi_description, cameras=cameras, camera_root="/sensors", image_topic="image_rect")
    assert [type(action) for action in actions] == [LifecycleNode, RegisterEventHandler, EmitEvent]
    node = actions[0]
    assert (node.node_package, node.node_executable) == ("hydranet_ros", "perception_node")
