"""hydranet_ros: HydraNet joint semantic segmentation and metric depth for ROS 2.

The core (model, runtime, io, train) imports no ROS module; only ``hydranet_ros.ros.node``
needs rclpy.
"""

__version__ = "0.1.0"
