# SPDX-License-Identifier: Apache-2.0
"""segdip_demo: the node on a synthetic video, no camera needed; prints the IoU it reached.

Runs the segdip node in this process (tracking mode) next to a small driver node. The driver
publishes the frames of `segdip_ros.core.synthetic.moving_object_sequence` on `image`, and
scripted clicks taken from the first frame's ground truth on `~/annotations`. Like
`segdip_replay_bag --step`, frame k+1 is sent once a mask of frame k has come back, so
the node always has exactly one newer frame waiting; one extra copy of the last frame at the
end tells when the last real frame is finished. The last overlay and mask of every frame go
to `--out` as PNGs, and the IoU of each mask against the ground truth is printed.

    segdip_demo --out ./segdip_demo_out
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ['build_parser', 'corrective_click', 'main', 'run', 'scripted_clicks']


def scripted_clicks(labels: np.ndarray, n_fg: int = 3, n_bg: int = 4) -> list[dict[str, Any]]:
    """Clicks a careful person would give: the object's centre and further interior points of
    the object (class 1) and of the background (class 0), each far from any boundary."""
    from segdip_ros.core.synthetic import interior_point

    out = []
    for cls, n in ((1, n_fg), (0, n_bg)):
        region = (labels == cls).astype(np.uint8)
        for _ in range(n):
            if not region.any():
                break
            x, y = interior_point(region > 0)
            out.append({'type': 'click', 'x': float(x), 'y': float(y), 'class_id': cls})
            # the next click goes elsewhere: blank a disc around this one
            dist = cv2.distanceTransform(np.pad(region, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
            r = max(3, int(dist[y, x] * 1.2))
            cv2.circle(region, (x, y), r, 0, -1)
    return out


def corrective_click(pred: np.ndarray, gt: np.ndarray) -> dict[str, Any] | None:
    """The click a person would add next: the centre of the largest wrong region, with the
    true class there (the simulated clicker of the interactive-segmentation benchmarks)."""
    from segdip_ros.core.synthetic import interior_point

    wrong = (pred != gt).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(wrong, connectivity=4)
    if n <= 1:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y = interior_point(comp == biggest)
    return {'type': 'click', 'x': float(x), 'y': float(y), 'class_id': int(gt[y, x])}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='segdip_demo', description=__doc__.split('\n')[0])
    p.add_argument('--out', type=Path, default=Path('segdip_demo_out'), help='output folder')
    p.add_argument('--frames', type=int, default=12, help='frames of the synthetic video')
    p.add_argument('--working-size', type=int, default=0, help='0 = engine preset')
    p.add_argument(
        '--engine',
        action='append',
        default=[],
        metavar='NAME=VALUE',
        help="engine field on top of the preset (the node's engine_overrides), "
        'e.g. --engine width=16; repeatable',
    )
    p.add_argument('--device', default='auto')
    p.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch CPU threads (1: OpenMP spinning on a busy CPU costs far more '
        'than a second thread gains at this size); 0 = torch default',
    )
    p.add_argument('--timeout', type=float, default=600.0, help='give up after this many s')
    p.add_argument(
        '--corrections',
        type=int,
        default=4,
        help='at most this many corrective clicks on frame 0 (largest error first)',
    )
    p.add_argument(
        '--target-iou',
        type=float,
        default=0.95,
        help='stop correcting frame 0 once its IoU reaches this',
    )
    p.add_argument('--quiet', action='store_true', help='no per-frame lines')
    return p


def _header(k: int) -> Any:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return Header(
        stamp=Time(sec=100 + k // 10, nanosec=(k % 10) * 100_000_000), frame_id='demo_camera'
    )


def _ns(h: Any) -> int:
    return int(h.stamp.sec) * 1_000_000_000 + int(h.stamp.nanosec)


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success, 1 when it timed out or the node failed."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'OFF')
    os.environ.setdefault('ROS_DOMAIN_ID', '77')
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from segdip_ros.core import iou
    from segdip_ros.core.synthetic import moving_object_sequence
    from segdip_ros.node.inprocess import shutdown_in_process
    from segdip_ros.ros.convert import image_msg_to_rgb, rgb_to_image_msg
    from segdip_ros.ros.encodings import image_msg_to_numpy_raw
    from segdip_ros.segdip_node import SegDipNode

    scenes = moving_object_sequence(frames=max(2, args.frames))
    headers = [_header(k) for k in range(len(scenes) + 1)]  # + the end marker
    stamps = [_ns(h) for h in headers]
    params = {
        'mode': 'tracking',
        'device': args.device,
        'working_size': args.working_size,
        'publish_rate': 4.0,
        'torch_threads': args.threads,
    }
    if args.engine:
        params['engine_overrides'] = list(args.engine)
    ctx = Context()
    rclpy.init(context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    node = driver = None
    masks: dict[int, np.ndarray] = {}
    overlays: dict[int, np.ndarray] = {}
    t0 = time.monotonic()
    try:
        node = SegDipNode(
            'segdip',
            context=ctx,
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
        )
        driver = rclpy.create_node('segdip_demo_driver', context=ctx)
        executor.add_node(node)
        executor.add_node(driver)
        img_pub = driver.create_publisher(Image, 'image', 5)
        ann_pub = driver.create_publisher(String, '/segdip/annotations', 100)
        driver.create_subscription(
            Image,
            '/segdip/mask',
            lambda m: masks.__setitem__(
                _ns(m.header), image_msg_to_numpy_raw(m).reshape(m.height, m.width).copy()
            ),
            10,
        )
        driver.create_subscription(
            Image,
            '/segdip/overlay',
            lambda m: overlays.__setitem__(_ns(m.header), image_msg_to_rgb(m)),
            10,
        )
        diag: dict[str, str] = {}
        driver.create_subscription(
            DiagnosticArray,
            '/diagnostics',
            lambda m: diag.update(
                {
                    kv.key: kv.value
                    for st in m.status
                    if st.name.startswith('segdip')
                    for kv in st.values
                }
            ),
            10,
        )

        def spin_until(cond: Any) -> bool:
            while time.monotonic() - t0 < args.timeout:
                if cond():
                    return True
                executor.spin_once(timeout_sec=0.05)
            return False

        matched = spin_until(
            lambda: (
                img_pub.get_subscription_count() > 0
                and ann_pub.get_subscription_count() > 0
                and node.outputs.pubs['mask'].get_subscription_count() > 0
                and node.outputs.pubs['overlay'].get_subscription_count() > 0
            )
        )
        if not matched:
            print('segdip_demo: node and driver did not connect', file=sys.stderr)
            return 1
        clicks = scripted_clicks(scenes[0].labels)
        stamp0 = {'sec': headers[0].stamp.sec, 'nanosec': headers[0].stamp.nanosec}
        img_pub.publish(rgb_to_image_msg(scenes[0].rgb, headers[0]))
        print(
            f'segdip_demo: {len(scenes)} frames {scenes[0].rgb.shape[1]}x'
            f'{scenes[0].rgb.shape[0]}, {len(clicks)} clicks on frame 0, then up to '
            f'{args.corrections} corrective clicks; training ...',
            flush=True,
        )
        gt0 = scenes[0].labels
        sent = 0
        for rnd in range(args.corrections + 1):
            for c in clicks:
                ann_pub.publish(String(data=json.dumps({**c, 'stamp': stamp0})))
            sent += len(clicks)
            diag.clear()
            # idle on /diagnostics: every click applied and its iterations spent
            if not spin_until(
                lambda: (
                    diag.get('state') == 'idle'
                    and int(diag.get('annotations_accepted', -1)) >= sent
                    and diag.get('annotations_pending') == '0'
                )
            ):
                print('segdip_demo: timed out while training frame 0', file=sys.stderr)
                return 1
            executor.spin_once(timeout_sec=0.3)  # the final mask of this round
            j0 = iou(masks[stamps[0]] == 1, gt0 == 1)
            if not args.quiet:
                print(
                    f'  frame  0 after {int(diag["annotations_accepted"])} clicks: '
                    f'IoU {j0:.3f} ({diag.get("iteration")} iterations, '
                    f'{time.monotonic() - t0:.0f} s)',
                    flush=True,
                )
            click = corrective_click(masks[stamps[0]], gt0)
            if j0 >= args.target_iou or click is None or rnd == args.corrections:
                break
            clicks = [click]
        for k in range(1, len(scenes) + 1):
            if not spin_until(lambda: stamps[k - 1] in masks):
                print(
                    f'segdip_demo: timed out waiting for the mask of frame {k - 1}',
                    file=sys.stderr,
                )
                return 1
            rgb = scenes[min(k, len(scenes) - 1)].rgb
            img_pub.publish(rgb_to_image_msg(rgb, headers[k]))
        if not spin_until(lambda: stamps[-1] in masks):
            print('segdip_demo: timed out waiting for the last frame', file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        scores = []
        for k, scene in enumerate(scenes):
            mask = masks[stamps[k]]
            j = iou(mask == 1, scene.labels == 1)
            scores.append(j)
            cv2.imwrite(str(args.out / f'mask_{k:03d}.png'), mask)
            if stamps[k] in overlays:
                cv2.imwrite(
                    str(args.out / f'overlay_{k:03d}.png'),
                    cv2.cvtColor(overlays[stamps[k]], cv2.COLOR_RGB2BGR),
                )
            if not args.quiet:
                print(f'  frame {k:2d}: IoU {j:.3f}')
        st = node.trainer.stats
        later = float(np.mean(scores[1:])) if len(scores) > 1 else float('nan')
        print(
            f'segdip_demo: IoU frame 0 {scores[0]:.3f}, mean over frames 1..'
            f'{len(scores) - 1} {later:.3f}, mean all {np.mean(scores):.3f}; '
            f'{st.iteration} iterations at {st.iterations_per_second:.1f} it/s, '
            f'{time.monotonic() - t0:.1f} s; overlays in {args.out}'
        )
        (args.out / 'scores.json').write_text(
            json.dumps(
                {
                    'iou': scores,
                    'iou_frame0': scores[0],
                    'iou_mean_later': later,
                    'iterations': st.iteration,
                    'seconds': time.monotonic() - t0,
                },
                indent=1,
            )
        )
        return 0
    finally:
        shutdown_in_process(executor, ctx, node, driver)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `segdip_demo`."""
    try:
        return run(build_parser().parse_args(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
