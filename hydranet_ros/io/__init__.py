"""Input and output without ROS: colour maps, image files, video, message conversions, bags."""
