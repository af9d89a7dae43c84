# SPDX-License-Identifier: Apache-2.0
"""Conversion between ROS messages and numpy (images, encodings, the RViz image plane).

No Node here: functions of messages, usable by the node, the bag tools and tests alike.
"""
