"""Offline work without rclpy: rosbag2 reading and writing, tracking evaluation, datasets."""
