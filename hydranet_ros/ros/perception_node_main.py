#!/usr/bin/env python3
"""Executable for `ros2 run hydranet_ros perception_node` (installed as lib/hydranet_ros/perception_node).

init() and try/finally shutdown rather than `with rclpy.init()`: the context-manager form does
not exist in the rclpy of Humble and Jazzy.
"""

from __future__ import annotations

import signal
import sys


def main(args: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from hydranet_ros.ros.node import PerceptionNode

    rclpy.init(args=args)
    node = None
    try:
        node = PerceptionNode()
        # One executor thread is enough: callbacks only convert and hand frames to the worker.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C (Humble raises KeyboardInterrupt; Jazzy shuts the context down first)
    finally:
        # A second Ctrl-C (launch forwards SIGINT to the group, a user presses again) must not cut
        # the release of the engine short; launch escalates to SIGTERM if cleanup hangs.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.release()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
