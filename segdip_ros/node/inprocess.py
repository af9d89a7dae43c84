# SPDX-License-Identifier: Apache-2.0
"""Teardown shared by the tools that run the node in-process (demo, latency benchmark)."""

from __future__ import annotations

from typing import Any

import rclpy

__all__ = ['shutdown_in_process']


def shutdown_in_process(executor: Any, context: Any, *nodes: Any) -> None:
    """Destroy `nodes` (None entries skipped), stop the executor, shut the context down.

    Order matters: nodes first, so the node's own destroy_node() can still stop its training
    thread while the context is alive.
    """
    for node in nodes:
        if node is not None:
            node.destroy_node()
    executor.shutdown(timeout_sec=2.0)
    rclpy.try_shutdown(context=context)
