"""Result -> message fields for every output, without ROS: one place for both shells.

The node (hydranet_ros/ros/) and the bag replay (hydranet_ros/replay/) plan a frame with
``plan``, build its messages with ``render`` and copy the fields into their own message types.
``params`` and ``qos`` are the node's settings that both follow. Nothing here imports rclpy or
torch, so the launch process may read ``params``.
"""
