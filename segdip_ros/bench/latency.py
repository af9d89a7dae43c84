# SPDX-License-Identifier: Apache-2.0
"""`segdip-bench speed --latency`: click-to-update latency through the real node, in-process.

A SegDipNode (node defaults, default engine preset, torch_threads 1) and a driver node share a
private rclpy Context on one ROS domain (60-69) with ROS_AUTOMATIC_DISCOVERY_RANGE=OFF. The
driver streams `two_class_scene` frames on `image` at `fps` (tracking mode: the node keeps
switching frames), waits until /diagnostics says warm-up is over, then sends clicks on
`~/annotations` one at a time, each placed by the RITM simulated user (bench.clicker) on a pixel
the latest received mask gets WRONG, with the ground-truth class.

Definition: a click is reflected by the first `~/mask` message received after the click was
published whose value at the clicked pixel equals the click's class. Because the pixel was
wrong in the last mask seen before the click, a reflected click is a visible change the node
made. Latency = receive time of that mask - publish time of the click (time.monotonic(), same
process). A click not reflected within `timeout` s is counted as missed, not timed. The next
click is sent `spacing` s after the previous one was reflected (or missed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from segdip_ros.bench.clicker import Clicker
from segdip_ros.core.synthetic import two_class_scene

__all__ = ['TINY_PARAMS', 'LatencyResult', 'LatencySettings', 'run_latency', 'run_latency_cli']

TINY_PARAMS = {'working_size': 64, 'publish_rate': 20.0}
UNLABELLED = 255


@dataclass(frozen=True)
class LatencySettings:
    clicks: int = 20
    domain_id: int = 60
    fps: float = 10.0  # frame stream rate, Hz
    spacing: float = 1.0  # s between a reflected click and the next one
    timeout: float = 20.0  # s before a click counts as missed
    ready_timeout: float = 120.0  # s for the warm-up to finish
    params: dict[str, Any] = field(default_factory=dict)  # node parameter overrides


@dataclass
class LatencyResult:
    settings: dict[str, Any]
    latencies: list[float]  # s, reflected clicks only, in click order
    missed: int
    clicks_sent: int
    first_mask_after_click: list[float]  # s, any mask (publish cadence), for comparison
    iterations_per_second: float  # node's own figure from the last /diagnostics

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float('nan')

    def summary(self) -> str:
        first = self.first_mask_after_click
        first_median = float(np.median(first)) if first else float('nan')
        return (
            f'{len(self.latencies)} of {self.clicks_sent} clicks reflected ({self.missed} '
            f'missed): click-to-mask latency median {self.percentile(50):.3f} s, p95 '
            f'{self.percentile(95):.3f} s, max '
            f'{max(self.latencies) if self.latencies else float("nan"):.3f} s; first mask '
            f'of any kind after a click: median '
            f'{first_median:.3f} s; '
            f'node {self.iterations_per_second:.1f} it/s'
        )


def run_latency(st: LatencySettings, log: Callable[[str], None] = print) -> LatencyResult:
    """Run the node and the simulated user; always tears the context down."""
    if not 60 <= st.domain_id <= 69:
        raise ValueError(
            f"domain_id must be in 60..69 (this benchmark's range), got {st.domain_id}"
        )
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'OFF')
    import rclpy
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header, String

    from segdip_ros.node.inprocess import shutdown_in_process
    from segdip_ros.ros.convert import image_msg_to_numpy_raw, rgb_to_image_msg
    from segdip_ros.segdip_node import SegDipNode

    scene = two_class_scene()
    params = {'torch_threads': 1, **st.params}
    ctx = Context()
    rclpy.init(context=ctx, domain_id=st.domain_id)
    executor = SingleThreadedExecutor(context=ctx)
    node = driver = None
    masks: list[tuple[float, np.ndarray]] = []
    diag: dict[str, str] = {}
    try:
        node = SegDipNode(
            'segdip',
            context=ctx,
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
        )
        driver = Node('segdip_latency_driver', context=ctx)
        executor.add_node(node)
        executor.add_node(driver)
        img_pub = driver.create_publisher(Image, 'image', 1)
        ann_pub = driver.create_publisher(String, '/segdip/annotations', 100)

        def on_mask(msg: Image) -> None:
            m = image_msg_to_numpy_raw(msg).reshape(msg.height, msg.width).copy()
            masks.append((time.monotonic(), m))

        def on_diag(msg: DiagnosticArray) -> None:
            for status in msg.status:
                diag.update({kv.key: kv.value for kv in status.values})

        driver.create_subscription(
            Image,
            '/segdip/mask',
            on_mask,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
        )
        driver.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
        period = 1.0 / st.fps
        frame_no = [0]
        next_frame = [0.0]

        def spin(until: Callable[[], bool], timeout: float) -> bool:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_frame[0]:
                    frame_no[0] += 1
                    hdr = Header(
                        stamp=Time(
                            sec=frame_no[0] // 10, nanosec=(frame_no[0] % 10) * 100_000_000
                        ),
                        frame_id='camera',
                    )
                    img_pub.publish(rgb_to_image_msg(scene.rgb, hdr, 'rgb8'))
                    next_frame[0] = now + period
                if until():
                    return True
                executor.spin_once(timeout_sec=min(0.01, max(0.0, next_frame[0] - now)))
            return until()

        ready = spin(
            lambda: (
                bool(masks) and diag.get('state') not in (None, 'waiting for image', 'warm-up')
            ),
            st.ready_timeout,
        )
        if not ready:
            raise RuntimeError(
                f'the node did not finish its warm-up within {st.ready_timeout} s '
                f'(state {diag.get("state")!r})'
            )
        log(f'node ready after {frame_no[0]} frames; clicking')
        clicker = Clicker(scene.labels, ignore_id=UNLABELLED)
        latencies: list[float] = []
        first_any: list[float] = []
        missed = sent = 0
        for i in range(st.clicks):
            click = clicker.click(masks[-1][1])
            if click is None:
                log('mask is perfect: no wrong pixel left to click')
                break
            seen = len(masks)
            t0 = time.monotonic()
            ann_pub.publish(
                String(
                    data=json.dumps(
                        {'type': 'click', 'x': click.x, 'y': click.y, 'class_id': click.label}
                    )
                )
            )
            sent += 1

            def reflected() -> bool:
                return any(m[click.y, click.x] == click.label for _, m in masks[seen:])

            ok = spin(reflected, st.timeout)
            if len(masks) > seen:
                first_any.append(masks[seen][0] - t0)
            if ok:
                t = next(t for t, m in masks[seen:] if m[click.y, click.x] == click.label)
                latencies.append(t - t0)
                log(
                    f'click {i + 1} ({click.x}, {click.y}) class {click.label}: '
                    f'{latencies[-1]:.3f} s'
                )
            else:
                missed += 1
                log(f'click {i + 1} ({click.x}, {click.y}) class {click.label}: missed')
            spin(lambda: False, st.spacing)
        rate = float(diag.get('iterations_per_second', 'nan'))
        return LatencyResult(
            asdict(st) | {'params': params}, latencies, missed, sent, first_any, rate
        )
    finally:
        shutdown_in_process(executor, ctx, node, driver)


def run_latency_cli(args: Any) -> int:
    """`segdip-bench speed --latency` (options from bench.speed.add_options)."""
    import sys
    from pathlib import Path

    st = LatencySettings(
        clicks=args.clicks, domain_id=args.domain_id, params=dict(TINY_PARAMS) if args.tiny else {}
    )
    try:
        res = run_latency(st, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (ValueError, RuntimeError) as err:
        print(f'segdip-bench speed --latency: {err}', file=sys.stderr)
        return 1
    print(res.summary())
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        data = asdict(res) | {'median_s': res.percentile(50), 'p95_s': res.percentile(95)}
        (out / 'latency.json').write_text(json.dumps(data, indent=1))
    return 0
