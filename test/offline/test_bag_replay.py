# SPDX-License-Identifier: Apache-2.0
"""replay_bag: step mode against a stand-in node, timed mode with /clock, clear errors."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'OFF'  # before rclpy: keep DDS in this process

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import String

from segdip_ros.tools import make_bag, replay_bag


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    from test_bag_io import make_frames_dir

    make_frames_dir(tmp_path / 'data', n=5)
    path = tmp_path / 'bag'
    frames = make_bag.load_sequence(tmp_path / 'data', 'toy')
    make_bag.write_sequence_bag(path, frames, make_bag.simulate_clicks(frames[0][1], 2), fps=10)
    return path


class StandIn:
    """A minimal 'node': answers each frame with a mask carrying the frame's header, after a
    delay, and records what it received and when."""

    def __init__(self, ctx: Any, delay: float = 0.0) -> None:
        self.node = Node('stand_in', context=ctx)
        self.frames: list[tuple[int, int, float]] = []
        self.anns: list[str] = []
        self.clocks: list[int] = []
        self.delay = delay
        self.pub = self.node.create_publisher(Image, '/segdip/mask', 10)
        self.node.create_subscription(Image, '/camera/image_raw', self.on_image, 10)
        self.node.create_subscription(
            String, '/segdip/annotations', lambda m: self.anns.append(m.data), 10
        )
        self.node.create_subscription(
            Clock,
            '/clock',
            lambda m: self.clocks.append(m.clock.sec * 10**9 + m.clock.nanosec),
            10,
        )

    def on_image(self, m: Image) -> None:
        self.frames.append((m.header.stamp.sec, m.header.stamp.nanosec, time.monotonic()))
        time.sleep(self.delay)
        out = Image(
            header=m.header,
            height=m.height,
            width=m.width,
            encoding='mono8',
            step=m.width,
            data=bytes([len(self.frames)]) * (m.height * m.width),
        )
        self.pub.publish(out)


def run_with(ctx: Any, stand_in: StandIn, **kwargs: Any) -> replay_bag.ReplayStats:
    """Replay in a thread while this thread spins the stand-in; returns the stats."""
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(stand_in.node)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box['stats'] = replay_bag.replay(context=ctx, **kwargs)
        except Exception as err:  # surfaced in the main thread below
            box['error'] = err

    th = threading.Thread(target=target)
    th.start()
    try:
        deadline = time.monotonic() + 30
        while th.is_alive() and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.01)
        th.join(timeout=5)
    finally:
        ex.shutdown()
        stand_in.node.destroy_node()
    if 'error' in box:
        raise box['error']
    return box['stats']


@pytest.fixture
def ctx():
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=43)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


def test_step_mode_waits_for_each_mask(ctx: Any, bag: Path) -> None:
    stand_in = StandIn(ctx, delay=0.15)  # slower than the bag's 10 fps
    stats = run_with(
        ctx, stand_in, bag=bag, step=True, clock=True, collect_masks=True, step_timeout=10
    )
    stamps = [s * 10**9 + n for s, n, _ in stand_in.frames]
    assert stamps == [1000 * 10**9 + k * 10**8 for k in range(5)]  # all, in order, none lost
    assert stats.frames == 5 and stats.published == 5 + 5 + 2
    assert sorted(stats.masks) == stamps  # the replay saw every mask
    assert [int(m[0, 0]) for _, m in sorted(stats.masks.items())] == [1, 2, 3, 4, 5]
    gaps = np.diff([t for _, _, t in stand_in.frames])
    assert gaps.min() >= 0.14  # never ahead of the node
    assert len(stand_in.anns) == 2 and '"stamp"' in stand_in.anns[0]
    assert stand_in.clocks and stand_in.clocks == sorted(stand_in.clocks)


def test_timed_mode_keeps_rate_and_publishes_clock(ctx: Any, bag: Path) -> None:
    stand_in = StandIn(ctx)
    stats = run_with(ctx, stand_in, bag=bag, rate=2.0, clock=True, start_offset=0.1, delay=0.3)
    assert stats.frames == 4  # frame 0 skipped by the offset
    times = [t for _, _, t in stand_in.frames]
    assert len(times) == 4
    assert 0.14 <= stats.wall_seconds < 1.0  # 0.3 s of bag at rate 2 = 0.15 s
    assert times == sorted(times) and times[-1] - times[0] < 0.8
    assert stand_in.clocks[0] >= 1000 * 10**9 + 10**8
    assert stand_in.anns == []  # annotations lie before the offset


def test_step_mode_without_node_times_out_clearly(ctx: Any, bag: Path) -> None:
    node = Node('listener', context=ctx)  # subscribes, never answers
    node.create_subscription(Image, '/camera/image_raw', lambda m: None, 10)
    node.create_subscription(String, '/segdip/annotations', lambda m: None, 10)
    try:
        with pytest.raises(replay_bag.ReplayError, match='no mask with stamp .* within 1 s'):
            replay_bag.replay(bag, step=True, step_timeout=1.0, context=ctx)
    finally:
        node.destroy_node()


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert replay_bag.main([str(tmp_path / 'nothing'), '--domain-id', '44']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'does not exist' in err[0]
    assert replay_bag.main([str(tmp_path), '--rate', '0', '--domain-id', '44']) == 1
    assert 'rate must be > 0' in capsys.readouterr().err
