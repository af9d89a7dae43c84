# SPDX-License-Identifier: Apache-2.0
"""segdip_replay_bag: publish a rosbag2's messages on their topics, for the live node.

Works where `ros2 bag play` is not installed (no rosbag2_py here): messages are read with the
pure-Python `rosbags` package and published as the raw CDR bytes they were recorded as
(rclpy's ``Publisher.publish`` accepts serialized bytes), so no conversion can change them.

Modes:
- timed (default): original timing scaled by ``--rate``, ``--start-offset`` seconds skipped,
  ``--loop`` to repeat; ``--clock`` also publishes /clock (rosgraph_msgs/Clock) with the bag time,
  for nodes run with use_sim_time.
- ``--step``: as fast as the node goes, but frame k of the image topic is published only once the
  node has published its mask (``--mask-topic``) with the header stamp of frame k-1; the other
  topics (annotations, ground truth) go out in bag order at once, so frame 0's annotations
  follow frame 0 within milliseconds. Replay starts once the node subscribes to the image and
  annotation topics, and returns after the mask of the last frame. Everything is published
  reliable so nothing is lost.

`replay(bag, ..., context=ctx)` runs in the caller's rclpy context (for tests in a thread).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segdip_ros.offline.bagio import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    BagError,
    BagReader,
    decode_image,
    open_reader,
    stamp_to_ns,
)

__all__ = ['ReplayError', 'ReplayStats', 'build_parser', 'main', 'msg_class', 'replay', 'run']


class ReplayError(BagError):
    """Replay cannot go on: the node did not answer in step mode, or no topic can be published."""


@dataclass
class ReplayStats:
    """What a replay did; `masks` holds the node's masks by header stamp when collected."""

    published: int = 0
    frames: int = 0
    skipped_topics: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    masks: dict[int, Any] = field(default_factory=dict)


def msg_class(msgtype: str) -> Any:
    """'sensor_msgs/msg/Image' -> the installed rclpy message class (ImportError if absent).
    rosidl_runtime_py.get_message does this on a full ROS install; it is not always present."""
    pkg, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{pkg}.{kind}'), name)


def _qos(reliable: bool, depth: int) -> Any:
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )


class _Replayer:
    """One node, its publishers and the mask subscription of step mode."""

    def __init__(
        self,
        bag: Path,
        ctx: Any,
        *,
        image_topic: str | None,
        mask_topic: str,
        topics: Sequence[str] | None,
        step: bool,
        clock: bool,
        best_effort: bool,
        collect_masks: bool,
    ) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.reader = BagReader(bag, image_topic=image_topic, annotation_topic=None, gt_topic=None)
        self.image_topic = self.reader.image_topic
        self.step = step
        self.collect = collect_masks
        self.stats = ReplayStats()
        self.node = Node('segdip_replay_bag', context=ctx)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        self.pubs: dict[str, Any] = {}
        wanted = set(topics) if topics else None
        for topic, msgtype in sorted(self.reader.topics.items()):
            if wanted is not None and topic not in wanted:
                continue
            try:
                cls = msg_class(msgtype)
            except (ImportError, AttributeError, ValueError):
                self.stats.skipped_topics.append(f'{topic} ({msgtype}: not installed)')
                continue
            is_image = msgtype in (IMAGE_TYPE, COMPRESSED_TYPE) and topic == self.image_topic
            reliable = step or not (is_image and best_effort)
            depth = 100 if step else 10
            self.pubs[topic] = self.node.create_publisher(cls, topic, _qos(reliable, depth))
        if not self.pubs:
            raise ReplayError(f'no publishable topic in {bag} ({self.stats.skipped_topics})')
        self.clock_pub = None
        if clock:
            self.clock_pub = self.node.create_publisher(
                msg_class('rosgraph_msgs/msg/Clock'), '/clock', _qos(True, 1)
            )
        self.seen: set[int] = set()
        if step or collect_masks:
            self.node.create_subscription(
                msg_class(IMAGE_TYPE), mask_topic, self._on_mask, _qos(True, 100)
            )

    def _on_mask(self, msg: Any) -> None:
        stamp = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
        self.seen.add(stamp)
        if self.collect:
            self.stats.masks[stamp] = decode_image(msg, IMAGE_TYPE)

    def publish_clock(self, t_ns: int) -> None:
        if self.clock_pub is not None:
            cls = msg_class('rosgraph_msgs/msg/Clock')
            msg = cls()
            msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
            self.clock_pub.publish(msg)

    def wait_mask(self, stamp: int, timeout: float, stop: threading.Event | None) -> None:
        deadline = time.monotonic() + timeout
        while stamp not in self.seen:
            if stop is not None and stop.is_set():
                return
            if time.monotonic() > deadline:
                raise ReplayError(
                    f'no mask with stamp {stamp} ns within {timeout:.0f} s '
                    '(is the node running and publishing on the mask topic?)'
                )
            self.executor.spin_once(timeout_sec=0.01)

    def wait_subscribers(self, timeout: float, stop: threading.Event | None) -> None:
        """Step mode: wait until the image (and any String) topic has a subscriber, so that
        frame 0 and the annotations are not sent before discovery has matched them."""
        need = [
            t
            for t, ty in self.reader.topics.items()
            if t in self.pubs and (t == self.image_topic or ty == 'std_msgs/msg/String')
        ]
        deadline = time.monotonic() + timeout
        while any(self.pubs[t].get_subscription_count() == 0 for t in need):
            if stop is not None and stop.is_set():
                return
            if time.monotonic() > deadline:
                missing = [t for t in need if self.pubs[t].get_subscription_count() == 0]
                raise ReplayError(f'nobody subscribed to {missing} within {timeout:.0f} s')
            self.executor.spin_once(timeout_sec=0.02)
        end = time.monotonic() + 0.2  # let the node's mask publisher match our subscription
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def destroy(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def _safe_messages(reader: Any, conns: list[Any], start_ns: int, path: Path) -> Any:
    """reader.messages, with storage failures (truncated file) raised as BagError."""
    it = reader.messages(connections=conns, start=start_ns)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as err:  # sqlite3 / mcap raise many kinds on damaged files
            raise BagError(
                f'bag {path} is corrupt or truncated: {type(err).__name__}: {err}'
            ) from err
        yield item


def _play_once(
    r: _Replayer, *, rate: float, start_ns: int, step_timeout: float, stop: threading.Event | None
) -> None:
    reader = open_reader(r.reader.path)
    try:
        conns = [c for c in reader.connections if c.topic in r.pubs]
        wall0 = time.monotonic()
        bag0: int | None = None
        prev_stamp: int | None = None
        for conn, t_ns, raw in _safe_messages(reader, conns, start_ns, r.reader.path):
            if stop is not None and stop.is_set():
                return
            if bag0 is None:
                bag0 = t_ns
            is_frame = conn.topic == r.image_topic
            if r.step:
                if is_frame and prev_stamp is not None:
                    r.wait_mask(prev_stamp, step_timeout, stop)
            else:
                target = wall0 + (t_ns - bag0) / 1e9 / rate
                while (left := target - time.monotonic()) > 0:
                    if stop is not None and stop.is_set():
                        return
                    r.executor.spin_once(timeout_sec=min(left, 0.02))
                    r.publish_clock(bag0 + int((time.monotonic() - wall0) * rate * 1e9))
            r.publish_clock(t_ns)
            if is_frame:
                msg = reader.deserialize(raw, conn.msgtype)
                prev_stamp = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
                r.stats.frames += 1
            r.pubs[conn.topic].publish(bytes(raw))
            r.stats.published += 1
            r.executor.spin_once(timeout_sec=0)
        if r.step and prev_stamp is not None:
            r.wait_mask(prev_stamp, step_timeout, stop)
    finally:
        reader.close()


def replay(
    bag: str | Path,
    *,
    rate: float = 1.0,
    clock: bool = False,
    loop: bool = False,
    start_offset: float = 0.0,
    step: bool = False,
    image_topic: str | None = None,
    mask_topic: str = '/segdip/mask',
    topics: Sequence[str] | None = None,
    best_effort_images: bool = False,
    step_timeout: float = 60.0,
    collect_masks: bool = False,
    delay: float = 0.0,
    context: Any = None,
    domain_id: int | None = None,
    stop: threading.Event | None = None,
) -> ReplayStats:
    """Publish the bag's messages; see the module docstring for the modes.

    With `context=None` a context is created (on `domain_id`) and shut down at the end;
    otherwise the caller's initialised context is used and left running. `stop` ends the
    replay early (e.g. from another thread). `delay` seconds pass (spinning) between creating
    the publishers and the first message, so discovery can match them (as ros2 bag play
    --delay). Raises BagError / ReplayError.
    """
    import rclpy

    if rate <= 0:
        raise ReplayError(f'rate must be > 0, got {rate}')
    if start_offset < 0:
        raise ReplayError(f'start offset must be >= 0, got {start_offset}')
    own = context is None
    ctx = rclpy.context.Context() if own else context
    if own:
        rclpy.init(context=ctx, domain_id=domain_id)
    r = None
    try:
        r = _Replayer(
            Path(bag),
            ctx,
            image_topic=image_topic,
            mask_topic=mask_topic,
            topics=topics,
            step=step,
            clock=clock,
            best_effort=best_effort_images,
            collect_masks=collect_masks,
        )
        for skipped in r.stats.skipped_topics:
            print(f'segdip_replay_bag: skipping {skipped}', file=sys.stderr)
        reader = open_reader(r.reader.path)
        start_ns = reader.start_time + int(start_offset * 1e9)
        reader.close()
        end = time.monotonic() + max(0.0, delay)
        while time.monotonic() < end:
            r.executor.spin_once(timeout_sec=0.02)
        t0 = time.monotonic()
        if step:
            r.wait_subscribers(step_timeout, stop)
        while True:
            _play_once(r, rate=rate, start_ns=start_ns, step_timeout=step_timeout, stop=stop)
            if not loop or (stop is not None and stop.is_set()):
                break
        r.stats.wall_seconds = time.monotonic() - t0
        return r.stats
    finally:
        if r is not None:
            r.destroy()
        if own:
            rclpy.try_shutdown(context=ctx)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='segdip_replay_bag', description=__doc__.split('\n')[0])
    p.add_argument('bag', type=Path)
    p.add_argument('--rate', type=float, default=1.0)
    p.add_argument('--clock', action='store_true', help='publish /clock (use_sim_time)')
    p.add_argument('--loop', action='store_true')
    p.add_argument('--start-offset', type=float, default=0.0, help='seconds to skip')
    p.add_argument('--step', action='store_true', help='wait for each mask before the next frame')
    p.add_argument('--image-topic', help="default: the bag's camera topic")
    p.add_argument('--mask-topic', default='/segdip/mask')
    p.add_argument('--topics', nargs='+', help='only these topics')
    p.add_argument('--best-effort-images', action='store_true')
    p.add_argument('--step-timeout', type=float, default=60.0, help='seconds per mask')
    p.add_argument(
        '--delay',
        type=float,
        default=0.0,
        help='seconds to wait after creating publishers (discovery)',
    )
    p.add_argument('--domain-id', type=int)
    return p


def run(args: argparse.Namespace) -> int:
    stats = replay(
        args.bag,
        rate=args.rate,
        clock=args.clock,
        loop=args.loop,
        start_offset=args.start_offset,
        step=args.step,
        image_topic=args.image_topic,
        mask_topic=args.mask_topic,
        topics=args.topics,
        best_effort_images=args.best_effort_images,
        step_timeout=args.step_timeout,
        delay=args.delay,
        domain_id=args.domain_id,
    )
    print(
        f'published {stats.published} messages ({stats.frames} frames) in '
        f'{stats.wall_seconds:.1f} s',
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BagError as err:
        print(f'segdip_replay_bag: error: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
