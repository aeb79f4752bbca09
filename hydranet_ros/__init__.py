"""hydranet_ros: HydraNet joint semantic segmentation and metric depth for ROS 2.

Layers, bottom first (test/test_layering.py keeps imports pointing down): presets, errors,
paths; io (messages <-> numpy, files, bags) and model (the network, its weights); runtime
(frame -> Result on a device); outputs (Result -> message fields, the node's parameters) and
train; the shells: ros (rclpy node, launch helpers) and replay (bag replay); commands; cli.
Only hydranet_ros/ros/ imports rclpy.
"""

__version__ = "0.1.0"
