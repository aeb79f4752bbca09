"""Dependencies point down: each top-level package of hydranet_ros imports only from the layers
below it, the core imports no ROS module, and hydranet_ros/ros/ holds only the rclpy shell.

Read from the source with ``ast`` (imports inside functions count: they are dependencies too),
so the check needs neither ROS nor torch and names the file and line of every wrong import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hydranet_ros"

# Bottom first. A package may import from any layer below its own, never from its own layer's
# other members or from above: io and model know nothing of each other, the two shells (ros,
# replay) nothing of each other, and nothing below the shells knows they exist.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors"}),  # the one base exception
    frozenset({"paths", "presets"}),  # plain data and helpers: no torch, no ROS
    frozenset({"io", "model"}),  # pixels, messages and files (numpy, OpenCV, rosbags); the network (torch)
    frozenset({"runtime"}),  # frame -> Result on a device
    frozenset({"outputs", "train"}),  # Result -> message fields for every output; training and evaluation
    frozenset({"ros", "replay"}),  # the two shells: rclpy node, bag replay
    frozenset({"commands"}),  # the `hydranet` subcommands
    frozenset({"cli"}),  # the `hydranet` entry point
)
GENERATED = {"msg"}  # hydranet_ros.msg: rosidl's generated messages, beside our code on a ROS install
NOT_CODE = {"weights"}  # the shipped model's files
ROS_MODULES = ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "builtin_interfaces", "diagnostic_msgs",
               "vision_msgs", "lifecycle_msgs", "launch", "launch_ros", "rosidl_runtime_py", "ament_index_python")
# ROS imports outside ros/ that are optional lookups, each with its reason.
OPTIONAL_ROS_IMPORTS = {
    # Finds msg/*.msg in an ament install when there is one; pip installs carry their own copy.
    ("io/message_defs.py", "ament_index_python.packages"),
}
LAUNCH_HELPERS = {"ros/launch_args.py", "ros/launch_actions.py"}  # imported by the launch files: torch-free, no rclpy

_MODULE_PATH = re.compile(r"^hydranet_ros(\.\w+)+(:\w+)?$")  # "hydranet_ros.x.y" or "hydranet_ros.x.y:Class"


def layer_of(name: str) -> int:
    for index, members in enumerate(LAYERS):
        if name in members:
            return index
    raise KeyError(name)


def top_level(path: Path) -> str:
    """'runtime' for hydranet_ros/runtime/engines/base.py, 'cli' for hydranet_ros/cli.py."""
    first = path.relative_to(PACKAGE).parts[0]
    return first[:-3] if first.endswith(".py") else first


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, plus module paths named in string
    constants (importlib.import_module tables such as engines/base.ENGINE_MODULES)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"line {node.lineno}: relative import; write the absolute name"
            found.append((node.lineno, node.module or ""))
            # `from hydranet_ros import outputs` imports the subpackage outputs
            if node.module == "hydranet_ros":
                found += [(node.lineno, f"hydranet_ros.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_PATH.match(node.value):
            found.append((node.lineno, node.value.split(":")[0]))
    return found


def upward_imports(path_in_package: str, source: str) -> list[str]:
    """'file:line imports hydranet_ros.x (layer ...)' for every import that does not point down."""
    own = path_in_package.split("/")[0].removesuffix(".py")
    own_layer = layer_of(own)
    problems = []
    for line, module in imported_modules(source):
        parts = module.split(".")
        if parts[0] != "hydranet_ros" or len(parts) < 2:
            continue
        target = parts[1]
        if target == own or target in GENERATED:
            continue
        if target not in {name for layer in LAYERS for name in layer}:
            problems.append(f"{path_in_package}:{line} imports {module}: {target} is in no layer (add it to LAYERS)")
        elif layer_of(target) >= own_layer:
            problems.append(f"{path_in_package}:{line} imports {module}: {own} (layer {own_layer}) may not "
                            f"depend on {target} (layer {layer_of(target)})")
    return problems


def sources() -> list[tuple[str, str]]:
    return sorted((str(p.relative_to(PACKAGE)), p.read_text()) for p in PACKAGE.rglob("*.py"))


def test_every_top_level_package_has_a_layer():
    names = {top_level(p) for p in PACKAGE.iterdir() if p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__")}
    placed = {name for layer in LAYERS for name in layer}
    assert names - {"__init__"} - NOT_CODE == placed, "every top-level package and module belongs to exactly one layer"


def test_dependencies_point_down():
    problems = [problem for path, source in sources() if path != "__init__.py" for problem in upward_imports(path, source)]
    assert not problems, "imports that point up or sideways:\n" + "\n".join(problems)


@pytest.mark.parametrize("path, source, wrong", [
    ("io/bag.py", "from hydranet_ros.outputs import plan\n", "io (layer 2) may not depend on outputs (layer 4)"),
    ("model/presets.py", "def f():\n    from hydranet_ros.io import palettes\n", "model (layer 2) may not depend on io"),
    ("runtime/x.py", "import hydranet_ros.ros.node\n", "runtime (layer 3) may not depend on ros"),
    ("replay/x.py", "from hydranet_ros import ros\n", "replay (layer 5) may not depend on ros (layer 5)"),
    ("io/x.py", "TABLE = {'a': 'hydranet_ros.commands.bag:run'}\n", "io (layer 2) may not depend on commands"),
    ("errors.py", "from hydranet_ros.paths import cache_dir\n", "errors (layer 0) may not depend on paths"),
    ("runtime/x.py", "from hydranet_ros.newthing import y\n", "newthing is in no layer"),
])
def test_the_check_finds_an_upward_import(path, source, wrong):
    """The check itself: it would fail on the imports this layering was made to remove."""
    [problem] = upward_imports(path, source)
    assert wrong in problem and problem.startswith(path)


def test_downward_and_own_package_imports_pass():
    assert upward_imports("replay/bag.py", "from hydranet_ros.outputs import plan\nfrom hydranet_ros.replay import x\n") == []
    assert upward_imports("ros/node.py", "from hydranet_ros.msg import HydraNetResult\n") == []


def _ros_imports(source: str) -> list[tuple[int, str]]:
    return [(line, module) for line, module in imported_modules(source) if module.split(".")[0] in ROS_MODULES]


def test_the_core_imports_no_ros_module():
    found = [f"{path}:{line} imports {module}" for path, source in sources() if not path.startswith("ros/")
             for line, module in _ros_imports(source) if (path, module) not in OPTIONAL_ROS_IMPORTS]
    assert not found, "ROS imports outside hydranet_ros/ros/:\n" + "\n".join(found)


def test_ros_holds_only_the_rclpy_shell():
    """Every module of hydranet_ros/ros/ imports rclpy (or is a launch helper that must stay torch-free):
    plain decisions belong in the layers below, where tests reach them without ROS."""
    plain = [path for path, source in sources() if path.startswith("ros/") and not path.endswith("__init__.py")
             and path not in LAUNCH_HELPERS and not any(m.split(".")[0] == "rclpy" for _, m in imported_modules(source))]
    assert not plain, f"modules in hydranet_ros/ros/ that do not need rclpy: {plain}"


def test_the_outputs_layer_needs_no_torch():
    """outputs/ turns a Result into message fields with numpy (the point clouds and the confidence
    image included): the device work, confidence too, stays in runtime/, and both shells can build
    messages from a Result without torch."""
    found = [f"{path}:{line} imports {module}" for path, source in sources() if path.startswith("outputs/")
             for line, module in imported_modules(source) if module.split(".")[0] == "torch"]
    assert not found, found


def test_the_launch_process_reads_the_parameters_without_opencv_or_torch():
    """perception.launch.py checks arguments with outputs/params.py (via ros/launch_args.py): the
    new parameters' choices (outputs/choices.py) must not pull the cloud's or images' code in."""
    import subprocess
    import sys

    script = ("import sys, hydranet_ros.ros.launch_args, hydranet_ros.outputs.params, hydranet_ros.outputs.choices; "
              "print(sorted(m for m in ('cv2', 'torch', 'hydranet_ros.outputs.cloud', 'hydranet_ros.outputs.fields') "
              "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
