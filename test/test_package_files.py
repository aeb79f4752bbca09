"""The ROS packaging files, checked without ROS: package.xml, CMakeLists.txt, configs, launch, rviz.

colcon build only runs on a ROS machine; these checks catch what would make it fail there
(a malformed maintainer e-mail, a message file not generated, a msg/ subpackage clashing with
the generated one) and that the shipped configs hold values the node accepts.
"""

from __future__ import annotations

import os
import py_compile
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from hydranet_ros.outputs import fields as output_fields, params, plan
from hydranet_ros.ros import launch_args

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_XML = ROOT / "package.xml"
# CMakeLists.txt without its comments, so prose about a command does not count as calling it.
CMAKE = "\n".join(line.split("#", 1)[0] for line in (ROOT / "CMakeLists.txt").read_text().splitlines())
# catkin_pkg's own rule (catkin_pkg.package.Person.validate), which colcon applies at build time.
EMAIL = re.compile(r"^[-a-zA-Z0-9_%+]+(\.[-a-zA-Z0-9_%+]+)*@[-a-zA-Z0-9%]+(\.[-a-zA-Z0-9%]+)*\.[a-zA-Z]{2,}$")
# rosdep keys looked up in ros/rosdistro rosdep/python.yaml (commit 8468e88, 2026-08-22).
VERIFIED_ROSDEP_KEYS = {"python3-numpy", "python3-opencv", "python3-torch", "python3-yaml", "python3-pytest"}


def _tags(root: ET.Element, tag: str) -> set[str]:
    return {element.text.strip() for element in root.iter(tag)}


@pytest.fixture(scope="module")
def manifest() -> ET.Element:
    return ET.parse(PACKAGE_XML).getroot()


def test_package_xml_format_and_identity(manifest):
    assert manifest.tag == "package" and manifest.get("format") == "3"
    assert manifest.findtext("name") == "hydranet_ros"
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest.findtext("version"))
    assert manifest.find("export/build_type").text == "ament_cmake"
    assert manifest.findtext("license")
    maintainers = manifest.findall("maintainer")
    assert maintainers
    for maintainer in maintainers:
        assert EMAIL.match(maintainer.get("email", "")), maintainer.get("email")


def test_package_xml_declares_every_dependency(manifest):
    build_tools = _tags(manifest, "buildtool_depend")
    assert {"ament_cmake", "rosidl_default_generators"} <= build_tools
    run = _tags(manifest, "exec_depend") | _tags(manifest, "depend")
    assert {"rclpy", "sensor_msgs", "std_msgs", "vision_msgs", "diagnostic_msgs", "lifecycle_msgs",
            "rcl_interfaces", "launch", "launch_ros", "rosidl_default_runtime", "python3-numpy",
            "python3-opencv", "python3-torch", "ament_index_python"} <= run
    tests = _tags(manifest, "test_depend")
    assert {"launch_testing", "launch_testing_ament_cmake", "launch_testing_ros", "python3-pytest"} <= tests
    assert "rosidl_interface_packages" in _tags(manifest, "member_of_group")
    every = build_tools | run | tests
    assert {key for key in every if key.startswith("python3-")} <= VERIFIED_ROSDEP_KEYS


def test_package_xml_is_valid_for_catkin_pkg():
    catkin_package = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg (pip) checks what colcon checks")
    package = catkin_package.parse_package(str(PACKAGE_XML))
    package.validate()  # raises InvalidPackage on what would fail the build
    assert package.package_format == 3 and package.get_build_type() == "ament_cmake"


def test_cmake_generates_every_message():
    messages = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "msg").glob("*.msg"))
    assert messages, "msg/ holds the fused message"
    for message in messages:
        assert f'"{message}"' in CMAKE, f"{message} is not in rosidl_generate_interfaces"
    assert "rosidl_generate_interfaces(${PROJECT_NAME}" in CMAKE


def test_cmake_installs_python_beside_generated_messages():
    # ROS2_FACTS.md: ament_python_install_package(hydranet_ros) clashes with rosidl's targets.
    assert "ament_python_install_package" not in CMAKE
    assert "ament_get_python_install_dir(python_install_dir)" in CMAKE
    assert re.search(r"install\(DIRECTORY hydranet_ros/\s+DESTINATION \$\{python_install_dir\}/hydranet_ros\s+"
                     r'PATTERN "__pycache__" EXCLUDE', CMAKE)
    assert not (ROOT / "hydranet_ros" / "msg").exists(), "a msg subpackage would shadow the generated one"
    assert "project(hydranet_ros NONE)" not in CMAKE  # rosidl compiles C/C++ type support


def test_cmake_installs_executable_and_share_files():
    match = re.search(r"install\(PROGRAMS (\S+)\s+DESTINATION lib/\$\{PROJECT_NAME\}\s+RENAME perception_node\s*\)", CMAKE)
    assert match
    program = ROOT / match.group(1)
    assert program.read_text().startswith("#!/usr/bin/env python3")
    assert os.access(program, os.X_OK)
    assert re.search(r"install\(DIRECTORY launch config rviz\s+DESTINATION share/\$\{PROJECT_NAME\}", CMAKE)


def test_cmake_registers_every_ros_test():
    """A test in test/ros/ that CMakeLists.txt does not name would never run: the pip suite leaves
    that folder out, and colcon runs only what is registered."""
    [launch_tests] = re.findall(r"foreach\(launch_test\s+([^)]*)\)\s+add_launch_test\(test/ros/\$\{launch_test\}\.py", CMAKE)
    registered = set(launch_tests.split())
    registered |= set(re.findall(r"ament_add_pytest_test\((\w+) test/ros/\1\.py", CMAKE))
    tests = {path.stem for path in (ROOT / "test" / "ros").glob("test_*.py")}
    assert tests and registered == tests
    for stem in launch_tests.split():
        assert "def generate_test_description" in (ROOT / "test" / "ros" / f"{stem}.py").read_text(), stem


def test_ros_tests_install_what_setup_py_requires():
    """.ci/ros_tests installs setup.py's requirements into ROS 2's venv by hand (the package itself
    comes from colcon): the two lists must name the same packages."""
    setup = (ROOT / "setup.py").read_text()
    required = re.search(r"install_requires=\[(.*?)\]", setup, re.S).group(1)
    names = {re.split(r"[<>=]", item)[0] for item in re.findall(r'"([^"]+)"', required)}
    script = (ROOT / ".ci" / "ros_tests").read_text()
    pip_line = re.search(r"^pip install (.*?[^\\])$", script, re.S | re.M).group(1)
    installed = {re.split(r"[<>=]", item.strip('"'))[0] for item in pip_line.replace("\\\n", " ").split()
                 if not item.startswith("-")}
    assert names <= installed, names - installed


def test_fused_message_fields():
    fields = {}
    for line in (ROOT / "msg" / "HydraNetResult.msg").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            field_type, name = line.split()
            fields[name] = field_type
    assert fields["header"] == "std_msgs/Header"
    assert fields["labels"] == fields["depth"] == fields["confidence"] == "sensor_msgs/Image"
    assert fields["min_confidence"] == "float32"
    assert fields["camera_info"] == "sensor_msgs/CameraInfo" and fields["has_camera_info"] == "bool"
    assert fields["class_names"] == "string[]"
    # The node fills exactly these timing fields.
    timing_fields = {name for name, field_type in fields.items() if field_type == "float32" and name.endswith("_ms")}
    assert timing_fields == set(output_fields.stage_timings({}))


@pytest.mark.parametrize("config", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_configs_hold_valid_parameters(config):
    document = yaml.safe_load(config.read_text())
    assert list(document) == ["/**"], "a wildcard node name works for any name and namespace"
    values = document["/**"]["ros__parameters"]
    unknown = set(values) - set(params.SPECS)
    assert not unknown, f"unknown parameters {unknown}"
    assert params.validate_all(values) == {}
    for name, value in values.items():
        spec = params.SPECS[name]
        # ROS parameters are typed: an int where a float is declared is refused at startup.
        assert type(value) is spec.type, f"{name}: {type(value).__name__} in YAML, declared {spec.type.__name__}"


def test_shipped_presets_exist():
    names = {path.name for path in (ROOT / "config").glob("*.yaml")}
    assert {"hydranet.yaml", "jetson_orin_fp16.yaml", "cpu_debug.yaml"} <= names
    jetson = yaml.safe_load((ROOT / "config" / "jetson_orin_fp16.yaml").read_text())["/**"]["ros__parameters"]
    assert jetson["precision"] == "fp16" and jetson["device"] == "cuda"
    cpu = yaml.safe_load((ROOT / "config" / "cpu_debug.yaml").read_text())["/**"]["ros__parameters"]
    assert cpu["device"] == "cpu"


@pytest.mark.parametrize("name, table", [("perception", "LAUNCH_ARGUMENTS"), ("multi_camera", "MULTI_CAMERA_ARGUMENTS")])
def test_launch_files_compile_and_use_the_argument_table_and_the_shared_node(tmp_path, name, table):
    """(Run on ROS 2 by test/ros/; here without it.) Both launch files declare their table and
    start the node through ros/launch_actions, which configures and then activates it."""
    for source in (ROOT / "launch" / f"{name}.launch.py", ROOT / "hydranet_ros" / "ros" / "launch_actions.py"):
        py_compile.compile(str(source), cfile=str(tmp_path / f"{source.stem}.pyc"), doraise=True)
    text = (ROOT / "launch" / f"{name}.launch.py").read_text()
    assert f"launch_args.{table}" in text and "launch_actions.perception_node(" in text
    assert "ParameterValue(value, value_type=str)" in text
    actions = (ROOT / "hydranet_ros" / "ros" / "launch_actions.py").read_text()
    assert "TRANSITION_CONFIGURE" in actions and "TRANSITION_ACTIVATE" in actions


def test_rviz_view_shows_camera_semantics_and_depth():
    view = yaml.safe_load((ROOT / "rviz" / "hydranet.rviz").read_text())
    displays = view["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    assert {"/camera/image_raw", "/" + plan.OUTPUTS["color"].topic, "/" + plan.OUTPUTS["depth"].topic} <= topics
    camera = launch_args.input_topics("camera", "image_raw", "camera_info")[0]
    assert camera in topics


def test_rviz_view_shows_the_semantic_cloud_coloured_by_class():
    view = yaml.safe_load((ROOT / "rviz" / "hydranet.rviz").read_text())
    clouds = {d["Topic"]["Value"]: d for d in view["Visualization Manager"]["Displays"]
              if d["Class"] == "rviz_default_plugins/PointCloud2"}
    points = clouds["/" + plan.OUTPUTS["points"].topic]
    # RGB8 reads the cloud's rgb field, which holds the class colours (points_color: class).
    assert points["Enabled"] and points["Color Transformer"] == "RGB8" and points["Position Transformer"] == "XYZ"
    assert params.SPECS["points_color"].default == "class"
    assert points["Topic"]["Reliability Policy"] == "Reliable"
    assert "/" + plan.OUTPUTS["obstacles"].topic in clouds


# Parameters of nav2_costmap_2d's obstacle layer (plugins/obstacle_layer.cpp, Humble to Jazzy):
# the layer's own, and each observation source's.
NAV2_LAYER_PARAMETERS = {"plugin", "enabled", "footprint_clearing_enabled", "min_obstacle_height", "max_obstacle_height",
                         "combination_method", "observation_sources"}
NAV2_SOURCE_PARAMETERS = {"topic", "sensor_frame", "observation_persistence", "expected_update_rate", "data_type",
                          "min_obstacle_height", "max_obstacle_height", "inf_is_valid", "marking", "clearing",
                          "obstacle_max_range", "obstacle_min_range", "raytrace_max_range", "raytrace_min_range"}


def test_nav2_costmap_snippet_subscribes_to_the_obstacles_cloud():
    document = yaml.safe_load((ROOT / "config" / "nav2" / "semantic_obstacles_costmap.yaml").read_text())
    costmap = document["local_costmap"]["local_costmap"]["ros__parameters"]
    layers = [costmap[name] for name in costmap["plugins"]]
    [layer] = [layer for layer in layers if layer["plugin"] in ("nav2_costmap_2d::ObstacleLayer", "nav2_costmap_2d::VoxelLayer")]
    sources = layer["observation_sources"].split()  # nav2 splits this string at whitespace
    assert set(layer) - set(sources) <= NAV2_LAYER_PARAMETERS, "a layer parameter nav2 does not read"
    by_topic = {}
    for name in sources:
        source = layer[name]
        assert set(source) <= NAV2_SOURCE_PARAMETERS, f"{name}: {set(source) - NAV2_SOURCE_PARAMETERS}"
        assert source["data_type"] == "PointCloud2"  # nav2's default is LaserScan
        for key in ("obstacle_max_range", "raytrace_max_range", "min_obstacle_height", "max_obstacle_height"):
            assert isinstance(source[key], float), f"{name}.{key} must be a double for nav2"
        assert source["raytrace_max_range"] >= source["obstacle_max_range"]
        by_topic[source["topic"]] = source
    obstacles = by_topic["/" + plan.OUTPUTS["obstacles"].topic]
    assert obstacles["marking"] is True
    free = by_topic["/" + plan.OUTPUTS["points"].topic]
    assert free["marking"] is False and free["clearing"] is True
    # The node parameters the comments recommend exist and are valid.
    recommended = {"points_stride": 4, "points_max_range": 30.0, "min_confidence": 0.5}
    assert params.validate_all(recommended) == {}
    text = (ROOT / "config" / "nav2" / "semantic_obstacles_costmap.yaml").read_text()
    assert all(f"{name}: {value}" in text for name, value in recommended.items())
