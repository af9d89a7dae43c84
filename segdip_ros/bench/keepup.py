# SPDX-License-Identifier: Apache-2.0
"""`segdip-bench keepup`: does the node keep up with a camera? A bag replayed at its own
timing (`segdip_replay_bag` without --step) into the real node, in one process.

The first frame and its annotations go first, and the node is left to warm up on them (a few
seconds, once per scene); then the rest of the bag is replayed at its recorded rate.

Reports the frames sent, the frames the node published a mask for (masks carry their frame's
stamp), the share of frames with a mask, and the J of those masks against the bag's ground
truth. Frames the node has no time for are dropped by design (depth-1 image input): the
labels follow the newest frame.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ['add_options', 'run_cli', 'run_keepup']


def run_keepup(
    bag: Path, rate: float = 1.0, domain_id: int = 97, threads: int = 1, mode: str = 'tracking'
) -> dict[str, Any]:
    """Replay `bag` at `rate` x its timing into an in-process SegDipNode (default params,
    `mode` 'tracking' or 'lockstep')."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'OFF')
    import json

    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from std_msgs.msg import Header, String

    from segdip_ros.offline.bagio import BagReader
    from segdip_ros.offline.tracking_eval import score_frame
    from segdip_ros.ros.convert import rgb_to_image_msg
    from segdip_ros.segdip_node import SegDipNode
    from segdip_ros.tools import replay_bag

    reader = BagReader(bag)
    frames = list(reader.frames())
    first_anns = [
        a.data
        for a in reader.annotations()
        if a.stamp_ns is None or a.stamp_ns <= frames[0].stamp_ns
    ]
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    executor = SingleThreadedExecutor(context=ctx)
    node = driver = None
    box: dict[str, Any] = {}
    stop = threading.Event()
    try:
        node = SegDipNode(
            'segdip',
            context=ctx,
            parameter_overrides=[
                Parameter('torch_threads', value=threads),
                Parameter('mode', value=mode),
            ],
            cli_args=['--ros-args', '-r', f'image:={reader.image_topic}'],
        )
        driver = rclpy.create_node('keepup_driver', context=ctx)
        executor.add_node(node)
        executor.add_node(driver)
        img_pub = driver.create_publisher(
            type(rgb_to_image_msg(frames[0].image, Header())), reader.image_topic, 5
        )
        ann_pub = driver.create_publisher(String, '/segdip/annotations', 100)
        from sensor_msgs.msg import Image

        from segdip_ros.ros.encodings import image_msg_to_numpy_raw

        masks: dict[int, Any] = {}
        driver.create_subscription(
            Image,
            '/segdip/mask',
            lambda m: masks.__setitem__(
                m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, image_msg_to_numpy_raw(m)
            ),
            100,
        )
        deadline = time.monotonic() + 10
        while (
            img_pub.get_subscription_count() == 0 or ann_pub.get_subscription_count() == 0
        ) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        st = frames[0].stamp_ns
        header = Header(stamp=Time(sec=st // 10**9, nanosec=st % 10**9), frame_id='camera')
        img_pub.publish(rgb_to_image_msg(frames[0].image, header))
        for data in first_anns:
            ann_pub.publish(String(data=json.dumps(data)))
        tr = node.trainer
        deadline = time.monotonic() + 300
        while (
            not (
                tr.session is not None
                and tr.session.has_labels
                and tr._warmup_left <= 0
                and tr._budget <= 0
            )
            and time.monotonic() < deadline
        ):
            executor.spin_once(timeout_sec=0.02)
        period = (frames[1].stamp_ns - frames[0].stamp_ns) / 1e9 if len(frames) > 1 else 0.1

        def target() -> None:
            try:
                box['stats'] = replay_bag.replay(
                    bag, rate=rate, context=ctx, delay=0.5, start_offset=0.5 * period, stop=stop
                )
            except Exception as err:
                box['error'] = err

        th = threading.Thread(target=target, name='keepup-replay', daemon=True)
        th.start()
        while th.is_alive():
            executor.spin_once(timeout_sec=0.01)
        end = time.monotonic() + 3.0  # the last frames' masks
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.01)
        th.join(timeout=5)
        if 'error' in box:
            raise box['error']
        stats = node.trainer.stats
        used, ips = stats.frames_used, stats.iterations_per_second
    finally:
        stop.set()
        for n in (node, driver):
            if n is not None:
                n.destroy_node()
        executor.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown(context=ctx)
    frames = frames[1:]  # the replayed ones
    scored = [
        score_frame(masks[f.stamp_ns], f.gt)[0]
        for f in frames
        if f.stamp_ns in masks and f.gt is not None
    ]
    with_mask = sum(1 for f in frames if f.stamp_ns in masks)
    return {
        'frames': len(frames),
        'frames_with_mask': with_mask,
        'frames_used': used,
        'iterations_per_second': ips,
        'share_with_mask': with_mask / max(1, len(frames)),
        'j_of_masked_frames': float(np.mean(scored)) if scored else float('nan'),
    }


def add_options(p: Any) -> None:
    p.add_argument('bag', type=Path, help='rosbag2 with an image topic (and ground truth)')
    p.add_argument('--rate', type=float, default=1.0, help='replay speed (1 = recorded timing)')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads of the node')
    p.add_argument('--domain-id', type=int, default=97)
    p.add_argument(
        '--mode',
        choices=('tracking', 'lockstep'),
        default='tracking',
        help="the node's mode: 'lockstep' trains every frame's whole budget first",
    )


def run_cli(args: Any) -> int:
    res = run_keepup(args.bag, args.rate, args.domain_id, args.threads, args.mode)
    print(
        f'{args.bag.name} ({args.mode}): {res["frames_with_mask"]} of {res["frames"]} '
        f'replayed frames got a mask ({100 * res["share_with_mask"]:.0f} %), J of those '
        f'{res["j_of_masked_frames"]:.3f}; the node trained on {res["frames_used"]} frames at '
        f'{res["iterations_per_second"]:.0f} it/s'
    )
    return 0
