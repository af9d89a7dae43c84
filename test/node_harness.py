# SPDX-License-Identifier: Apache-2.0
"""Shared harness for the node tests (no tests here): one rclpy Context per test, the node
under test and a test node in it, one executor, spin_once until a condition or a timeout.

Domain ids 10..42, 44..55 and 76..95 belong to the node tests; each test passes its own.
"""

from __future__ import annotations

import os

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'OFF')

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from segdip_ros.ros.convert import image_msg_to_numpy_raw, rgb_to_image_msg
from segdip_ros.segdip_node import SegDipNode

__all__ = ['TINY', 'Harness', 'header', 'mask_of', 'stamp_ns']

# Small and fast: tests that need no quality threshold use these.
TINY = {
    'working_size': 64,
    'publish_rate': 20.0,
    'torch_threads': 1,
    'engine_overrides': [
        'width=16',
        'warmup_iterations=10',
        'iterations_first=10',
        'iterations_per_click=5',
        'iterations_per_frame=5',
    ],
}


def header(sec: int, nanosec: int = 0, frame_id: str = 'camera') -> Header:
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def stamp_ns(h: Header) -> int:
    return h.stamp.sec * 1_000_000_000 + h.stamp.nanosec


def mask_of(msg: Image) -> np.ndarray:
    return image_msg_to_numpy_raw(msg).reshape(msg.height, msg.width)


class Harness:
    """Node under test + test node in a private context; always call close() (finally)."""

    def __init__(
        self,
        domain_id: int,
        params: dict[str, Any] | None = None,
        node_name: str = 'segdip',
        with_node: bool = True,
        args: list[str] | None = None,
    ) -> None:
        assert (10 <= domain_id <= 55 and domain_id != 43) or 76 <= domain_id <= 95, domain_id
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain_id, args=args)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.node: SegDipNode | None = None
        self.tester = Node('segdip_tester', context=self.ctx)
        self.executor.add_node(self.tester)
        self.received: dict[str, list[Any]] = {}
        if with_node:
            overrides = [Parameter(k, value=v) for k, v in (params or {}).items()]
            self.node = SegDipNode(node_name, context=self.ctx, parameter_overrides=overrides)
            self.executor.add_node(self.node)
        self._pubs: dict[str, Any] = {}

    def pub(self, msg_type: Any, topic: str, depth: int = 10) -> Any:
        if topic not in self._pubs:
            self._pubs[topic] = self.tester.create_publisher(msg_type, topic, depth)
        return self._pubs[topic]

    def sub(self, msg_type: Any, topic: str, qos: Any = 10) -> list[Any]:
        box = self.received.setdefault(topic, [])
        self.tester.create_subscription(msg_type, topic, box.append, qos)
        return box

    def spin_until(self, cond: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return cond()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def wait_matched(self, pub: Any, timeout: float = 5.0) -> bool:
        return self.spin_until(lambda: pub.get_subscription_count() > 0, timeout)

    def send_image(
        self, rgb: np.ndarray, h: Header, topic: str = 'image', encoding: str = 'rgb8'
    ) -> None:
        self.pub(Image, topic, 5).publish(rgb_to_image_msg(rgb, h, encoding))

    def annotate(self, data: str, topic: str = '/segdip/annotations') -> None:
        self.pub(String, topic, 100).publish(String(data=data))

    def call(self, srv_type: Any, name: str, request: Any = None, timeout: float = 20.0) -> Any:
        """Call a service from the test node; the response, or AssertionError on a timeout."""
        client = self.tester.create_client(srv_type, name)
        try:
            assert self.spin_until(client.service_is_ready, timeout), f'{name} not available'
            future = client.call_async(request if request is not None else srv_type.Request())
            assert self.spin_until(future.done, timeout), f'{name} did not answer'
            return future.result()
        finally:
            self.tester.destroy_client(client)

    def wait_idle(self, timeout: float) -> bool:
        """Until the node's trainer has spent its iteration budget and has nothing queued."""
        tr = self.node.trainer
        return self.spin_until(
            lambda: tr.stats.state == 'idle' and tr.pending_commands == 0 and not tr._commands,
            timeout,
        )

    def wait_idle_all(self, nodes: Any, timeout: float) -> bool:
        """Until every node's trainer is idle with nothing queued (several nodes, one test)."""
        trainers = [n.trainer for n in nodes]
        return self.spin_until(
            lambda: all(
                t.stats.state == 'idle' and t.pending_commands == 0 and not t._commands
                for t in trainers
            ),
            timeout,
        )

    def close(self) -> None:
        try:
            if self.node is not None:
                self.node.destroy_node()
            self.tester.destroy_node()
        finally:
            self.executor.shutdown(timeout_sec=2.0)
            rclpy.try_shutdown(context=self.ctx)
