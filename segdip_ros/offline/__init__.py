# SPDX-License-Identifier: Apache-2.0
"""Offline work without rclpy: rosbag2 reading and writing, tracking evaluation, datasets."""
