# SPDX-License-Identifier: Apache-2.0
"""The segdip node's parts (rclpy): parameters, inputs, the training thread, outputs, disk.

`segdip_ros.segdip_node` wires them to rclpy; each module here has one job and most are
testable without DDS.
"""
