# SPDX-License-Identifier: Apache-2.0
"""`segdip-bench storm --messages 10000`: hostile input on every topic while a scene is labelled.

One SegDipNode (still mode) and a driver node share a private rclpy Context (discovery OFF,
one executor, so an exception out of any node callback surfaces here as a crash). The driver
sends `two_class_scene`, waits for the warm-up, then gives three good clicks, each once the
node is idle (so every click lands at the same iteration in every run). Between and during
them it sends `messages` malformed or hostile messages, drawn (seeded) from every input:
images with wrong encodings, sizes, steps, truncated data; clicks, stamped clicks, RViz points
with NaN/inf/huge coordinates; strokes with NaN points or 10^5 points; boxes of zero size or
far outside; `~/annotations` JSON deeply nested, over the size limit, not UTF-8, with NaN,
1e400, unknown classes, negative box sizes, 10^5-point strokes, garbage text different every
time; camera_info with NaN; and parameter sets with wrong types or values. None of them is
valid, so the good scene's IoU must match the run without the storm.

Reports: crashes, RSS after warm-up and at the end, warnings logged vs messages sent,
callback errors, IoU with and without the storm.

`--transport-only` sends the same messages, at the same pace, to subscriptions (same topics and
QoS as the node's) that drop them: the RSS growth of DDS and rclpy alone, to tell it from the
node's.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import os
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    'GOOD_CLICKS',
    'StormResult',
    'StormSettings',
    'add_options',
    'run_cli',
    'run_storm',
    'run_transport_only',
]

GOOD_CLICKS = ((88.0, 60.0, 1), (10.0, 60.0, 0), (150.0, 60.0, 0))


@dataclass
class StormSettings:
    messages: int = 10000
    seed: int = 0
    domain_id: int = 93
    storm: bool = True
    params: dict[str, Any] = field(default_factory=dict)  # node overrides (engine, threads)
    timeout: float = 600.0


@dataclass
class StormResult:
    messages: int
    crashes: int
    crash_reasons: list[str]
    iou: float
    rss_warm_mb: float
    rss_end_mb: float
    rss_half_mb: float  # after half of the messages: end - half shows a steady leak
    warnings_logged: int
    problems_counted: int
    callback_errors: int
    parameter_sets_refused: int
    parameter_sets_sent: int
    seconds: float
    trainer_alive: bool
    hostile_applied: int  # hostile annotations the engine took (must be 0)


def _rss_mb() -> float:
    with open('/proc/self/status', encoding='ascii') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


class _Hostile:
    """Builds the hostile messages (the expensive ones once, reused)."""

    def __init__(self, rng: random.Random, rgb: np.ndarray) -> None:
        from geometry_msgs.msg import Point32, PolygonStamped
        from std_msgs.msg import Header

        from segdip_ros.ros.convert import rgb_to_image_msg

        self.rng = rng
        self.good = rgb_to_image_msg(rgb, Header(frame_id='camera'))
        big = PolygonStamped()
        big.polygon.points = [Point32(x=float(i % 160), y=float(i % 120)) for i in range(100_000)]
        self.big_stroke = big
        pts = ','.join('[1,2]' for _ in range(100_000))
        self.big_json_stroke = f'{{"type":"stroke","points":[{pts}],"class_id":1}}'
        self.deep = '[' * 5000 + ']' * 5000
        self.huge = json.dumps(
            {'type': 'click', 'x': 1, 'y': 1, 'class_id': 1, 'pad': 'x' * 2_000_000}
        )

    def bad_value(self) -> float:
        return self.rng.choice([math.nan, math.inf, -math.inf, 1e300, -1e300, 1e12, -5000.0])

    def image(self) -> Any:
        from sensor_msgs.msg import Image

        g, r = self.good, self.rng.randrange(9)
        msg = Image(
            header=g.header,
            height=g.height,
            width=g.width,
            encoding=g.encoding,
            is_bigendian=g.is_bigendian,
            step=g.step,
        )
        data = bytes(g.data)
        if r == 0:
            msg.encoding = self.rng.choice(['yuv420_weird', '', 'rgb8; jpeg', '16UC5', 'ÿ'])
        elif r == 1:
            data = data[: self.rng.randrange(len(data))]
        elif r == 2:
            msg.step = self.rng.choice([0, 1, g.step - 1, g.step * 1000, 2**32 - 1])
        elif r == 3:
            msg.width, msg.height = self.rng.choice([(0, 0), (2**31, 2), (1, 2**31), (0, 120)])
        elif r == 4:
            msg.encoding, data = 'mono16', data[:-1]
        elif r == 5:
            msg.width = g.width + self.rng.randrange(1, 100)
        elif r == 6:
            data = b''
        elif r == 7:
            msg.encoding = 'bayer_rggb8'
            msg.height, msg.width = 3, 3  # odd size, wrong data length
        else:
            msg.encoding, msg.step = '32FC1', g.width * 4
        msg.data = array.array('B', data)
        return msg

    def annotation(self) -> str | bytes:
        rng = self.rng
        v = self.bad_value
        options: list[Callable[[], str | bytes]] = [
            lambda: self.deep,
            lambda: '{"a":' * 3000 + '1' + '}' * 3000,
            lambda: self.huge,
            lambda: b'\xff\xfe{"type":"click"\x80}',  # not UTF-8 (raw CDR below)
            lambda: '{"type":"click","x":NaN,"y":1,"class_id":1}',
            lambda: '{"type":"click","x":1e400,"y":1,"class_id":1}',
            lambda: json.dumps(
                {'type': 'click', 'x': 10, 'y': 10, 'class_id': rng.choice([2, 7, -1, 10**6])}
            ),
            lambda: json.dumps({'type': 'click', 'x': 10, 'y': 10, 'class_id': 'object'}),
            lambda: json.dumps(
                {'type': 'box', 'x0': 50, 'y0': 50, 'x1': 20, 'y1': 60, 'class_id': 1}
            ),
            lambda: self.big_json_stroke,
            lambda: json.dumps({'type': 'stroke', 'points': [[1, 2]], 'class_id': 1}),
            lambda: json.dumps(
                {'type': 'click', 'x': v() if not math.isnan(v()) else 1e9, 'y': 5, 'class_id': 1}
            ),
            lambda: json.dumps({'type': 'lasso', 'class_id': 1}),
            lambda: json.dumps([1, 2, 3]),
            # different text each time: the refusal quotes it, so every reason is new
            lambda: ''.join(rng.choice('abcdefghijklmnopqrstuvwxyz{[":') for _ in range(24)),
            lambda: json.dumps(
                {'type': 'click', 'x': 1, 'y': 1, 'class_id': 1, 'stamp': {'sec': -1}}
            ),
            lambda: json.dumps(
                {
                    'type': 'stroke',
                    'points': [[1, 1], [2, 2]],
                    'class_id': 1,
                    'width': rng.choice([0, -3, 1e9]),
                }
            ),
        ]
        return options[rng.randrange(len(options))]()

    def params(self) -> tuple[str, Any]:
        return self.rng.choice(
            [
                ('active_class', 'object'),
                ('active_class', 9),
                ('mode', 5),
                ('mode', 'fast'),
                ('publish_rate', 'often'),
                ('publish_rate', -1.0),
                ('class_colors', [1, 2]),
                ('dataset_keyframes', 'sometimes'),
                ('num_classes', 3),
                ('iterations_first', 2.5),
                ('session_dir', '/tmp/x'),
            ]
        )


def _raw_string(payload: bytes) -> bytes:
    """A serialized std_msgs/String (CDR) with arbitrary bytes, for non-UTF-8 text."""
    return b'\x00\x01\x00\x00' + struct.pack('<I', len(payload) + 1) + payload + b'\x00'


def run_storm(st: StormSettings, log: Callable[[str], None] = print) -> StormResult:
    """One run (with or without the storm); see the module doc."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'OFF'
    import rclpy
    from geometry_msgs.msg import Point, PointStamped, PolygonStamped
    from rcl_interfaces.srv import SetParameters
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
    from std_msgs.msg import String

    from segdip_ros.core.metrics import iou as iou_of
    from segdip_ros.core.synthetic import two_class_scene
    from segdip_ros.segdip_node import SegDipNode

    scene = two_class_scene()
    rng = random.Random(st.seed)
    ctx = Context()
    rclpy.init(context=ctx, domain_id=st.domain_id)
    ex = SingleThreadedExecutor(context=ctx)
    node = None
    crashes: list[str] = []
    try:
        overrides = [Parameter(k, value=v) for k, v in {'mode': 'still', **st.params}.items()]
        node = SegDipNode('segdip', context=ctx, parameter_overrides=overrides)
        drv = rclpy.create_node('storm_driver', context=ctx)
        ex.add_node(node)
        ex.add_node(drv)
        # a short history on the driver's side: its own copies of the big messages would
        # otherwise be counted in this process's RSS as if the node held them
        rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pubs = {
            'image': drv.create_publisher(Image, 'image', 5),
            'ann': drv.create_publisher(String, '/segdip/annotations', rel),
            'click': drv.create_publisher(Point, '/segdip/click', rel),
            'click_stamped': drv.create_publisher(PointStamped, '/segdip/click_stamped', rel),
            'stroke': drv.create_publisher(PolygonStamped, '/segdip/stroke', rel),
            'box': drv.create_publisher(RegionOfInterest, '/segdip/box', rel),
            'rviz': drv.create_publisher(PointStamped, '/segdip/clicked_point', rel),
            'info': drv.create_publisher(CameraInfo, 'camera_info', 5),
        }
        params = drv.create_client(SetParameters, '/segdip/set_parameters')
        tr = node.trainer

        def spin(cond: Callable[[], bool], timeout: float) -> bool:
            end = time.monotonic() + timeout
            while time.monotonic() < end and not cond():
                try:
                    ex.spin_once(timeout_sec=0.01)
                except Exception as err:
                    crashes.append(f'{type(err).__name__}: {str(err)[:200]}')
            return cond()

        spin(
            lambda: (
                all(p.get_subscription_count() > 0 for p in pubs.values())
                and params.service_is_ready()
            ),
            20,
        )
        hostile = _Hostile(rng, scene.rgb)
        sent = [0]
        rss_half = [float('nan')]
        param_futs: list[Any] = []

        def storm_burst(n: int) -> None:
            for _ in range(n):
                if not st.storm or sent[0] >= st.messages:
                    return
                _send_one(rng, hostile, pubs, params, param_futs, Parameter)
                sent[0] += 1
                if sent[0] == st.messages // 2:
                    rss_half[0] = _rss_mb()
                ex.spin_once(timeout_sec=0.0)

        def idle() -> bool:
            return tr.stats.state == 'idle' and tr.pending_commands == 0 and not tr._commands

        t0 = time.monotonic()
        for _ in range(50):
            pubs['image'].publish(hostile.good)
            if spin(lambda: tr.current is not None, 0.5):
                break
        rss_warm = float('nan')
        per_phase = max(1, st.messages // (len(GOOD_CLICKS) + 1))
        end = time.monotonic() + st.timeout
        for i, (x, y, cls) in enumerate((*GOOD_CLICKS, (None, None, None))):
            # storm while the node trains (warm-up, then each click's iterations)
            target = min(sent[0] + per_phase, st.messages) if i < len(GOOD_CLICKS) else st.messages
            target = target if st.storm else 0
            last = time.monotonic()
            while (sent[0] < target or not idle()) and time.monotonic() < end:
                storm_burst(20)
                spin(lambda: False, 0.005)
                if time.monotonic() - last > 10:
                    last = time.monotonic()
                    log(
                        f'storm: {sent[0]} sent, node {tr.stats.state}, '
                        f'{tr.pending_commands} pending, iteration {tr.stats.iteration}'
                    )
            if i == 0:
                rss_warm = _rss_mb()
            if x is not None:
                pubs['ann'].publish(
                    String(data=json.dumps({'type': 'click', 'x': x, 'y': y, 'class_id': cls}))
                )
                spin(
                    lambda: (
                        tr.pending_commands == 0
                        and not tr._commands
                        and tr.stats.annotations_accepted > i
                    ),
                    30,
                )
        spin(idle, 120)
        spin(lambda: all(f.done() for f in param_futs), 10)
        refused = sum(
            1
            for f in param_futs
            if f.done() and f.result() is not None and not f.result().results[0].successful
        )
        labels = tr.session.predict().labels
        iou = float(iou_of(labels == 1, scene.labels == 1))
        return StormResult(
            messages=sent[0],
            crashes=len(crashes),
            crash_reasons=crashes[:5],
            iou=iou,
            rss_warm_mb=rss_warm,
            rss_end_mb=_rss_mb(),
            rss_half_mb=rss_half[0],
            warnings_logged=node.warnings.emitted,
            problems_counted=node.warnings.total(),
            callback_errors=node.guard.errors,
            parameter_sets_refused=refused,
            parameter_sets_sent=len(param_futs),
            seconds=time.monotonic() - t0,
            trainer_alive=tr._thread is not None and tr._thread.is_alive(),
            hostile_applied=tr.stats.annotations_accepted
            + tr.stats.annotations_rejected
            - len(GOOD_CLICKS),
        )
    finally:
        if node is not None:
            node.destroy_node()
        ex.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown(context=ctx)


def run_transport_only(st: StormSettings) -> dict[str, float]:
    """The storm's messages (same seed, bursts and pacing, no parameter sets) through DDS to
    subscriptions with the node's topics and QoS that drop every message. Returns RSS (MB)
    at the start and after a quarter, half and all of the messages, and messages received."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'OFF'
    import rclpy
    from geometry_msgs.msg import Point, PointStamped, PolygonStamped
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
    from std_msgs.msg import String

    from segdip_ros.core.synthetic import two_class_scene
    from segdip_ros.node.interfaces import IMAGE_QOS, INPUT_QOS

    rng = random.Random(st.seed)
    ctx = Context()
    rclpy.init(context=ctx, domain_id=st.domain_id)
    ex = SingleThreadedExecutor(context=ctx)
    got = [0]

    def drop(msg: Any) -> None:
        got[0] += 1

    try:
        sink = rclpy.create_node('segdip', context=ctx)
        drv = rclpy.create_node('storm_driver', context=ctx)
        ex.add_node(sink)
        ex.add_node(drv)
        rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # as run_storm
        topics = {
            'image': (Image, 'image', IMAGE_QOS, 5),
            'ann': (String, '/segdip/annotations', INPUT_QOS, rel),
            'click': (Point, '/segdip/click', INPUT_QOS, rel),
            'click_stamped': (PointStamped, '/segdip/click_stamped', INPUT_QOS, rel),
            'stroke': (PolygonStamped, '/segdip/stroke', INPUT_QOS, rel),
            'box': (RegionOfInterest, '/segdip/box', INPUT_QOS, rel),
            'rviz': (PointStamped, '/segdip/clicked_point', INPUT_QOS, rel),
            'info': (CameraInfo, 'camera_info', IMAGE_QOS, 5),
        }
        pubs = {}
        for key, (kind, topic, sub_qos, pub_qos) in topics.items():
            sink.create_subscription(kind, topic, drop, sub_qos)
            pubs[key] = drv.create_publisher(kind, topic, pub_qos)

        def spin_for(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                ex.spin_once(timeout_sec=0.001)

        end = time.monotonic() + 20
        while time.monotonic() < end and any(
            p.get_subscription_count() == 0 for p in pubs.values()
        ):
            ex.spin_once(timeout_sec=0.01)
        hostile = _Hostile(rng, two_class_scene().rgb)

        class _NoService:
            def call_async(self, request: Any) -> None:
                return None

        marks = {max(1, st.messages // 4): 'quarter', max(1, st.messages // 2): 'half'}
        out = {'start': _rss_mb()}
        sent = 0
        while sent < st.messages:
            for _ in range(20):
                if sent >= st.messages:
                    break
                _send_one(rng, hostile, pubs, _NoService(), [], Parameter)
                sent += 1
                if sent in marks:
                    out[marks[sent]] = _rss_mb()
                ex.spin_once(timeout_sec=0.0)
            spin_for(0.005)
        spin_for(2.0)
        out['end'] = _rss_mb()
        out['received'] = float(got[0])
        return out
    finally:
        ex.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown(context=ctx)


def _send_one(
    rng: random.Random,
    h: _Hostile,
    pubs: dict[str, Any],
    params: Any,
    futs: list[Any],
    parameter: Any,
) -> None:
    """One hostile message on a randomly chosen input."""
    from geometry_msgs.msg import Point, Point32, PointStamped, PolygonStamped
    from rcl_interfaces.srv import SetParameters
    from sensor_msgs.msg import CameraInfo, RegionOfInterest
    from std_msgs.msg import String

    kind = rng.randrange(10)
    v = h.bad_value
    if kind == 0:
        pubs['image'].publish(h.image())
    elif kind in (1, 2):
        text = h.annotation()
        pubs['ann'].publish(_raw_string(text) if isinstance(text, bytes) else String(data=text))
    elif kind == 3:
        pubs['click'].publish(Point(x=v(), y=rng.choice([v(), 5.0])))
    elif kind == 4:
        msg = PointStamped()
        msg.point.x, msg.point.y = v(), v()
        msg.header.stamp.sec = rng.randrange(2**31)
        pubs['click_stamped'].publish(msg)
    elif kind == 5:
        if rng.random() < 0.02:
            pubs['stroke'].publish(h.big_stroke)
        else:
            msg = PolygonStamped()
            n = rng.choice([0, 1, 3])
            msg.polygon.points = [Point32(x=v(), y=v()) for _ in range(n)]
            pubs['stroke'].publish(msg)
    elif kind == 6:
        if rng.random() < 0.5:  # zero size
            roi = RegionOfInterest(
                x_offset=rng.choice([0, 10]), y_offset=10, width=rng.choice([0, 5]), height=0
            )
        else:  # far outside the image
            roi = RegionOfInterest(
                x_offset=rng.choice([2**31, 5000]),
                y_offset=2**30,
                width=rng.choice([5, 2**32 - 1]),
                height=9,
            )
        pubs['box'].publish(roi)
    elif kind == 7:
        msg = PointStamped()
        msg.header.frame_id = rng.choice(['', 'segdip_image_plane', 'nowhere'])
        msg.point.x, msg.point.y, msg.point.z = v(), v(), v()
        pubs['rviz'].publish(msg)
    elif kind == 8:
        info = CameraInfo(width=160, height=120)
        info.k = [v(), 0.0, 80.0, 0.0, v(), 60.0, 0.0, 0.0, 1.0]
        pubs['info'].publish(info)
    else:
        name, value = h.params()
        try:
            msg = parameter(name, value=value).to_parameter_msg()
        except Exception:
            return
        futs.append(params.call_async(SetParameters.Request(parameters=[msg])))


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument('--messages', type=int, default=10000, help='hostile messages (10000)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--domain-id', type=int, default=93, help='ROS domain (default 93)')
    p.add_argument(
        '--transport-only',
        action='store_true',
        help='no node: the same messages to subscriptions that drop them (DDS memory alone)',
    )


def run_cli(args: argparse.Namespace) -> int:
    import torch

    torch.manual_seed(args.seed)
    if args.transport_only:
        t = run_transport_only(
            StormSettings(messages=args.messages, seed=args.seed, domain_id=args.domain_id)
        )
        print(
            f'transport only: {args.messages} messages sent, {t["received"]:.0f} received; '
            f'RSS at the start {t["start"]:.0f} MB, after a quarter {t["quarter"]:.0f} MB, '
            f'half {t["half"]:.0f} MB, the end {t["end"]:.0f} MB (growth after the first '
            f'quarter {t["end"] - t["quarter"]:+.1f} MB, '
            f'second half {t["end"] - t["half"]:+.1f} MB)'
        )
        return 0
    base = {'torch_threads': 1}
    calm = run_storm(
        StormSettings(
            messages=0, seed=args.seed, domain_id=args.domain_id, storm=False, params=base
        )
    )
    stormy = run_storm(
        StormSettings(
            messages=args.messages, seed=args.seed, domain_id=args.domain_id, params=base
        )
    )
    print(
        f'messages sent: {stormy.messages} in {stormy.seconds:.0f} s; crashes: '
        f'{stormy.crashes} {stormy.crash_reasons}; trainer alive: {stormy.trainer_alive}'
    )
    print(
        f'RSS after warm-up {stormy.rss_warm_mb:.0f} MB, at the end {stormy.rss_end_mb:.0f} MB'
        f' (growth {stormy.rss_end_mb - stormy.rss_warm_mb:+.1f} MB; second half of the '
        f'messages {stormy.rss_end_mb - stormy.rss_half_mb:+.1f} MB)'
    )
    print(
        f'without the storm (run first, same process): RSS after warm-up '
        f'{calm.rss_warm_mb:.0f} MB, at the end {calm.rss_end_mb:.0f} MB (growth '
        f'{calm.rss_end_mb - calm.rss_warm_mb:+.1f} MB: training the three clicks)'
    )
    print(
        f'warnings logged: {stormy.warnings_logged} for {stormy.problems_counted} problems '
        f'counted ({stormy.messages} messages); callback errors contained: '
        f'{stormy.callback_errors}; parameter sets refused: {stormy.parameter_sets_refused}'
        f' of {stormy.parameter_sets_sent}'
    )
    print(f'hostile annotations that reached the engine: {stormy.hostile_applied}')
    print(
        f'IoU of the good scene: {calm.iou:.4f} without the storm, {stormy.iou:.4f} with it '
        f'(difference {abs(calm.iou - stormy.iou):.4f})'
    )
    ok = (
        stormy.crashes == 0
        and stormy.trainer_alive
        and stormy.hostile_applied == 0
        and stormy.rss_end_mb - stormy.rss_warm_mb < 50
        and abs(calm.iou - stormy.iou) <= 0.02
    )
    return 0 if ok else 1
