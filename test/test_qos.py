"""QoS selection for the perception node (no ROS needed)."""

from __future__ import annotations

import pytest

from hydranet_ros.outputs import params
from hydranet_ros.outputs.qos import (
    DIAGNOSTICS_QOS,
    LABEL_INFO_QOS,
    QosSettings,
    compatible,
    incompatibility,
    qos_settings,
)

# What common subscribers ask for (their defaults).
RVIZ_IMAGE = QosSettings("reliable", "volatile", "keep_last", 10)
DEPTH_IMAGE_PROC = QosSettings("reliable", "volatile", "keep_last", 10)
LATE_LATCHED_READER = QosSettings("reliable", "transient_local", "keep_last", 1)
BEST_EFFORT_VIEWER = QosSettings("best_effort", "volatile", "keep_last", 1)
CAMERA_DRIVER_BEST_EFFORT = QosSettings("best_effort", "volatile", "keep_last", 5)
CAMERA_DRIVER_RELIABLE = QosSettings("reliable", "volatile", "keep_last", 10)


def test_sensor_data_matches_rclpy_preset():
    # rclpy's qos_profile_sensor_data: best effort, volatile, keep last 5.
    assert qos_settings("sensor_data", 5) == QosSettings("best_effort", "volatile", "keep_last", 5)


def test_every_parameter_choice_has_settings():
    for profile in params.SPECS["input_qos"].choices:
        settings = qos_settings(profile, 3)
        assert settings.depth == 3 and settings.history == "keep_last"


def test_default_input_connects_to_any_camera():
    sub = qos_settings(params.SPECS["input_qos"].default, params.SPECS["input_depth"].default)
    assert compatible(CAMERA_DRIVER_BEST_EFFORT, sub)
    assert compatible(CAMERA_DRIVER_RELIABLE, sub)
    # The alternative that would fail: a reliable subscription to a best-effort camera.
    assert not compatible(CAMERA_DRIVER_BEST_EFFORT, qos_settings("reliable", 1))


def test_default_output_reaches_rviz_and_depth_image_proc():
    pub = qos_settings(params.SPECS["output_qos"].default, params.SPECS["output_depth"].default)
    assert compatible(pub, RVIZ_IMAGE) and compatible(pub, DEPTH_IMAGE_PROC) and compatible(pub, BEST_EFFORT_VIEWER)
    best_effort_pub = qos_settings("best_effort", 5)
    reason = incompatibility(best_effort_pub, DEPTH_IMAGE_PROC)
    assert reason and "best-effort" in reason


def test_label_info_is_latched_and_reaches_everyone():
    assert LABEL_INFO_QOS.durability == "transient_local" and LABEL_INFO_QOS.depth == 1
    for sub in (LATE_LATCHED_READER, RVIZ_IMAGE, BEST_EFFORT_VIEWER):
        assert compatible(LABEL_INFO_QOS, sub)
    # A volatile publisher would leave a late latched reader without class names.
    assert "volatile" in incompatibility(qos_settings("reliable", 1), LATE_LATCHED_READER)


def test_diagnostics_is_reliable():
    assert DIAGNOSTICS_QOS.reliability == "reliable" and DIAGNOSTICS_QOS.durability == "volatile"


def test_system_default_leaves_policies_to_middleware():
    settings = qos_settings("system_default", 7)
    assert settings.reliability == "system_default" and settings.durability == "system_default"
    assert compatible(settings, RVIZ_IMAGE)


@pytest.mark.parametrize("profile, depth", [("fast", 1), ("reliable", 0), ("sensor_data", -3)])
def test_bad_profile_or_depth(profile, depth):
    with pytest.raises(ValueError):
        qos_settings(profile, depth)


def test_settings_validate_their_fields():
    with pytest.raises(ValueError):
        QosSettings("reliable-ish", "volatile", "keep_last", 1)
    with pytest.raises(ValueError):
        QosSettings("reliable", "volatile", "keep_all", 1)


def test_to_rclpy_maps_every_setting(monkeypatch):
    """to_rclpy against a stand-in rclpy.qos with the enum names Humble and Jazzy both define."""
    import enum
    import sys
    import types

    from hydranet_ros.ros.qos import to_rclpy

    qos_module = types.ModuleType("rclpy.qos")
    qos_module.HistoryPolicy = enum.IntEnum("HistoryPolicy", {"SYSTEM_DEFAULT": 0, "KEEP_LAST": 1, "KEEP_ALL": 2})
    qos_module.ReliabilityPolicy = enum.IntEnum("ReliabilityPolicy", {"SYSTEM_DEFAULT": 0, "RELIABLE": 1, "BEST_EFFORT": 2})
    qos_module.DurabilityPolicy = enum.IntEnum("DurabilityPolicy", {"SYSTEM_DEFAULT": 0, "TRANSIENT_LOCAL": 1, "VOLATILE": 2})

    class QoSProfile:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    qos_module.QoSProfile = QoSProfile
    rclpy_module = types.ModuleType("rclpy")
    rclpy_module.qos = qos_module
    monkeypatch.setitem(sys.modules, "rclpy", rclpy_module)
    monkeypatch.setitem(sys.modules, "rclpy.qos", qos_module)

    latched = to_rclpy(LABEL_INFO_QOS).kwargs
    assert latched == {
        "history": qos_module.HistoryPolicy.KEEP_LAST,
        "depth": 1,
        "reliability": qos_module.ReliabilityPolicy.RELIABLE,
        "durability": qos_module.DurabilityPolicy.TRANSIENT_LOCAL,
    }
    camera = to_rclpy(qos_settings("sensor_data", 2)).kwargs
    assert camera["reliability"] is qos_module.ReliabilityPolicy.BEST_EFFORT
    assert camera["durability"] is qos_module.DurabilityPolicy.VOLATILE
    default = to_rclpy(qos_settings("system_default", 4)).kwargs
    assert default["reliability"] is qos_module.ReliabilityPolicy.SYSTEM_DEFAULT
    assert default["durability"] is qos_module.DurabilityPolicy.SYSTEM_DEFAULT
