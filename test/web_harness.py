# SPDX-License-Identifier: Apache-2.0
"""Shared harness for the web console tests (no tests here): a segdip node spinning in a
background thread, the web console (bridge + server) beside it, a tester node, and the
Debian chromium for Playwright.

Domain ids 62..75 belong to the web tests; each test passes its own.
"""

from __future__ import annotations

import os

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'OFF')

import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from segdip_ros.ros.convert import rgb_to_image_msg
from segdip_ros.segdip_node import SegDipNode
from segdip_ros.web.bridge import WebConsole

__all__ = ['CHROMIUM', 'CHROMIUM_ARGS', 'LiveConsole', 'chromium_path', 'wait_for']

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = [
    '--no-sandbox',
    '--headless',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
]


def chromium_path() -> str | None:
    """Debian's chromium, or None (the browser tests skip; never a downloaded browser)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which('chromium')


def wait_for(cond: Callable[[], Any], timeout: float, period: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(period)
    return bool(cond())


class LiveConsole:
    """Node under test + web console in one private context; always call close() (finally).

    The node spins on a MultiThreadedExecutor in a thread, as it would in its own process;
    the console has its own executor and server threads (WebConsole).
    """

    def __init__(
        self, domain_id: int, params: dict[str, Any], web_params: dict[str, Any] | None = None
    ) -> None:
        assert 62 <= domain_id <= 75
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.console: WebConsole | None = None
        self.node: SegDipNode | None = None
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.ctx)
        self._thread: threading.Thread | None = None
        try:
            self.node = SegDipNode(
                'segdip',
                context=self.ctx,
                parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
            )
            self.tester = Node('web_tester', context=self.ctx)
            self.masks: list[Image] = []
            self.tester.create_subscription(Image, '/segdip/mask', self.masks.append, 10)
            self._image_pub = self.tester.create_publisher(Image, 'image', 5)
            self.executor.add_node(self.node)
            self.executor.add_node(self.tester)
            self._thread = threading.Thread(target=self.executor.spin, daemon=True)
            self._thread.start()
            wp = {'port': 0, 'node': '/segdip', **(web_params or {})}
            self.console = WebConsole(
                context=self.ctx,
                parameter_overrides=[Parameter(k, value=v) for k, v in wp.items()],
            )
            self.url = self.console.start()
        except BaseException:
            self.close()
            raise

    @property
    def stats(self) -> Any:
        return self.node.trainer.stats

    def send_image(self, rgb: np.ndarray, header: Header) -> None:
        self._image_pub.publish(rgb_to_image_msg(rgb, header))

    def close(self) -> None:
        try:
            if self.console is not None:
                self.console.close()
            if self.node is not None:
                self.node.destroy_node()
        finally:
            self.executor.shutdown(timeout_sec=2.0)
            if self._thread is not None:
                self._thread.join(5.0)
            rclpy.try_shutdown(context=self.ctx)
