"""QoS settings (hydranet_ros/outputs/qos.py, plain data) as rclpy profiles."""

from __future__ import annotations

from typing import Any

from hydranet_ros.outputs.qos import QosSettings

__all__ = ["to_rclpy"]


def to_rclpy(settings: QosSettings) -> Any:
    """An rclpy.qos.QoSProfile for ``settings`` (Humble and Jazzy share these enum names)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history={"keep_last": HistoryPolicy.KEEP_LAST, "system_default": HistoryPolicy.SYSTEM_DEFAULT}[settings.history],
        depth=settings.depth,
        reliability={
            "reliable": ReliabilityPolicy.RELIABLE,
            "best_effort": ReliabilityPolicy.BEST_EFFORT,
            "system_default": ReliabilityPolicy.SYSTEM_DEFAULT,
        }[settings.reliability],
        durability={
            "volatile": DurabilityPolicy.VOLATILE,
            "transient_local": DurabilityPolicy.TRANSIENT_LOCAL,
            "system_default": DurabilityPolicy.SYSTEM_DEFAULT,
        }[settings.durability],
    )
