# SPDX-License-Identifier: Apache-2.0
"""segdip_web: a labelling console in the browser for a running segdip node.

`messages` validates what a browser sends (no ROS, no aiohttp), `server` is the HTTP and
websocket side (aiohttp, no rclpy), `bridge` is the ROS side (rclpy node + `main()`).
The console talks to the segdip node only through its topics and services.
"""
