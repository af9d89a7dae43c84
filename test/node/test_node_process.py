# SPDX-License-Identifier: Apache-2.0
"""The node in its own process (`python -m segdip_ros.segdip_node --ros-args -p ...`) and a
client here talk over LOCALHOST discovery: frame + click in, mask with the frame's header out,
a service answered, and SIGINT ends the node cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import rclpy
from node_harness import TINY, header, stamp_ns
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from segdip_ros.core.synthetic import two_class_scene
from segdip_ros.ros.convert import rgb_to_image_msg

DOMAIN = 18


def test_node_in_another_process():
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    params = [a for k, v in {**TINY, 'mode': 'still'}.items() for a in ('-p', f'{k}:={v}')]
    proc = subprocess.Popen(
        [sys.executable, '-m', 'segdip_ros.segdip_node', '--ros-args', *params],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    old = os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE')
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'  # read by rclpy.init below
    ctx = Context()
    executor = node = None
    try:
        rclpy.init(context=ctx, domain_id=DOMAIN)
        executor = SingleThreadedExecutor(context=ctx)
        node = rclpy.create_node('segdip_client', context=ctx)
        executor.add_node(node)
        masks: list[Image] = []
        node.create_subscription(Image, '/segdip/mask', masks.append, 10)
        img = node.create_publisher(Image, 'image', 5)
        ann = node.create_publisher(String, '/segdip/annotations', 100)

        def spin_until(cond, timeout):
            import time

            end = time.monotonic() + timeout
            while time.monotonic() < end and not cond():
                assert proc.poll() is None, proc.stdout.read()
                executor.spin_once(timeout_sec=0.05)
            return cond()

        assert spin_until(
            lambda: img.get_subscription_count() > 0 and ann.get_subscription_count() > 0, 30
        ), 'no discovery'
        scene = two_class_scene()
        frame = rgb_to_image_msg(scene.rgb, header(21, 4, 'cam'))
        # best effort: until both sides have matched, a frame can be lost, so repeat it
        for _ in range(30):
            img.publish(frame)
            if spin_until(lambda: masks and stamp_ns(masks[-1].header) == 21_000_000_004, 1.0):
                break
        assert masks, 'no mask from the node'
        ann.publish(String(data=json.dumps({'type': 'click', 'x': 88, 'y': 60, 'class_id': 1})))
        assert spin_until(lambda: 1 in bytes(masks[-1].data), 60)
        assert masks[-1].header.frame_id == 'cam'
        client = node.create_client(Trigger, '/segdip/undo')
        assert spin_until(client.service_is_ready, 10)
        fut = client.call_async(Trigger.Request())
        assert spin_until(fut.done, 15) and fut.result().success, fut.result()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if node is not None:
            node.destroy_node()
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown(context=ctx)
        if old is None:
            os.environ.pop('ROS_AUTOMATIC_DISCOVERY_RANGE', None)
        else:
            os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = old
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_bad_parameter_stops_the_node_with_a_clear_message_and_exit_code_1():
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE='OFF')
    out = subprocess.run(
        [sys.executable, '-m', 'segdip_ros.segdip_node', '--ros-args', '-p', 'preset:=bogus'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert 'cannot start' in out.stdout + out.stderr and 'bogus' in out.stdout + out.stderr
