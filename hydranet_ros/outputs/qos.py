"""QoS for the perception node: profile names to plain settings, and the DDS matching rule.

Decisions are plain data (strings and ints) so they can be tested without ROS; the node turns
them into rclpy profiles (hydranet_ros/ros/qos.py) and the bag replay records them as rosbag2 does.

Why these choices:
- Camera input: best effort, volatile, short history. Every camera driver publishes
  best-effort-compatible; a reliable subscription never connects to a best-effort camera, and a
  long history would queue stale frames ahead of new ones.
- Outputs: reliable, so rviz2, rosbag2 record and depth_image_proc (all reliable by default)
  connect; a best-effort publisher never matches a reliable subscription.
- LabelInfo: transient local (latched) with depth 1, so a node started later still learns the
  class names. Always reliable: a reliable publisher matches best-effort subscribers as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from hydranet_ros.outputs.params import QOS_PROFILES

__all__ = [
    "QosSettings",
    "qos_settings",
    "LABEL_INFO_QOS",
    "DIAGNOSTICS_QOS",
    "compatible",
    "incompatibility",
]

RELIABILITIES = ("reliable", "best_effort", "system_default")
DURABILITIES = ("volatile", "transient_local", "system_default")
HISTORIES = ("keep_last", "system_default")


@dataclass(frozen=True)
class QosSettings:
    reliability: str
    durability: str
    history: str
    depth: int

    def __post_init__(self) -> None:
        if self.reliability not in RELIABILITIES:
            raise ValueError(f"reliability must be one of {RELIABILITIES}, got {self.reliability!r}")
        if self.durability not in DURABILITIES:
            raise ValueError(f"durability must be one of {DURABILITIES}, got {self.durability!r}")
        if self.history not in HISTORIES:
            raise ValueError(f"history must be one of {HISTORIES}, got {self.history!r}")
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0, got {self.depth}")


def qos_settings(profile: str, depth: int) -> QosSettings:
    """The settings for a profile name (a value of the input_qos / output_qos parameters)."""
    if depth < 1:
        raise ValueError(f"QoS depth must be at least 1, got {depth}")
    if profile == "sensor_data":
        return QosSettings("best_effort", "volatile", "keep_last", depth)
    if profile == "best_effort":
        return QosSettings("best_effort", "volatile", "keep_last", depth)
    if profile == "reliable":
        return QosSettings("reliable", "volatile", "keep_last", depth)
    if profile == "system_default":
        # Leave reliability and durability to the middleware's defaults; the depth still bounds
        # the queue, so history stays keep_last.
        return QosSettings("system_default", "system_default", "keep_last", depth)
    raise ValueError(f"unknown QoS profile {profile!r}; known: {', '.join(QOS_PROFILES)}")


LABEL_INFO_QOS = QosSettings("reliable", "transient_local", "keep_last", 1)
DIAGNOSTICS_QOS = QosSettings("reliable", "volatile", "keep_last", 10)


def incompatibility(publisher: QosSettings, subscription: QosSettings) -> str | None:
    """Why a publisher and a subscription with these settings would not connect, or None.

    The DDS request/offer rule: the offer (publisher) must be at least as strong as the request.
    system_default is left to the middleware and treated as compatible here.
    """
    if publisher.reliability == "best_effort" and subscription.reliability == "reliable":
        return "a best-effort publisher cannot serve a reliable subscription"
    if publisher.durability == "volatile" and subscription.durability == "transient_local":
        return "a volatile publisher cannot serve a transient-local (latched) subscription"
    return None


def compatible(publisher: QosSettings, subscription: QosSettings) -> bool:
    return incompatibility(publisher, subscription) is None
