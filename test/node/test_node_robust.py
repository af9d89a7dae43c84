# SPDX-License-Identifier: Apache-2.0
"""Bad input keeps the node alive and is reported once; bgr8 and compressed input; live
parameter refusal; services (undo, clear, reset, next_frame, save). Tiny engine config."""

from __future__ import annotations

import array
import json

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from node_harness import TINY, Harness, header, stamp_ns
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from segdip_ros.core.synthetic import two_class_scene
from segdip_ros.ros.convert import rgb_to_image_msg


def _call(h: Harness, name: str) -> Trigger.Response:
    client = h.tester.create_client(Trigger, name)
    assert h.spin_until(client.service_is_ready, 5.0), name
    fut = client.call_async(Trigger.Request())
    assert h.spin_until(fut.done, 15.0), name
    return fut.result()


def _bad_image(kind: str, rgb: np.ndarray, hd) -> Image:
    msg = rgb_to_image_msg(rgb, hd)
    if kind == 'encoding':
        msg.encoding = 'yuv420_weird'
    elif kind == 'short':
        msg.data = array.array('B', bytes(msg.step * msg.height // 2))
    elif kind == 'empty':
        msg.height = msg.width = msg.step = 0
        msg.data = array.array('B')
    return msg


def test_bad_input_reported_once_and_node_keeps_working():
    scene = two_class_scene()
    h = Harness(13, {**TINY, 'mode': 'tracking'})
    logged: list[str] = []
    h.node.warnings.log = logged.append
    try:
        masks = h.sub(Image, '/segdip/mask')
        diags = h.sub(DiagnosticArray, '/diagnostics')
        img = h.pub(Image, 'image', 5)
        click = h.pub(Point, '/segdip/click', 100)
        ann = h.pub(String, '/segdip/annotations', 100)
        for p in (img, click, ann):
            assert h.wait_matched(p)
        h.send_image(scene.rgb, header(1))
        assert h.spin_until(lambda: masks and stamp_ns(masks[-1].header) == 1_000_000_000, 30)
        for _ in range(3):
            for kind in ('encoding', 'short', 'empty'):  # depth 1: one frame at a time
                n = h.node.frames_received
                img.publish(_bad_image(kind, scene.rgb, header(1, 5)))
                assert h.spin_until(lambda: h.node.frames_received > n, 5)
            click.publish(Point(x=900.0, y=5.0))
            ann.publish(String(data='{"type": "click", "x": 3, "y": 4, "class_id": 7}'))
            ann.publish(String(data='{not json'))
        h.spin_until(lambda: h.node.warnings.total() >= 18, 10)
        h.spin_for(0.3)
        counts = {c: h.node.warnings.total(c) for c in ('image', 'outside', 'class', 'json')}
        assert counts == {'image': 9, 'outside': 3, 'class': 3, 'json': 3}, counts
        assert len(logged) == 6, logged  # one warning per distinct reason
        assert any('yuv420_weird' in w for w in logged)
        assert h.node.frames_rejected == 9
        # image size change mid-stream: the session restarts on the new size, with a warning
        small = cv2.resize(scene.rgb, (80, 60))
        h.send_image(small, header(2))
        assert h.spin_until(
            lambda: (
                masks and masks[-1].width == 80 and stamp_ns(masks[-1].header) == 2_000_000_000
            ),
            30,
        )
        assert sum('image size changed from 160x120 to 80x60' in w for w in logged) == 1
        # and it still learns from clicks
        ann.publish(String(data=json.dumps({'type': 'click', 'x': 44, 'y': 30, 'class_id': 1})))
        assert h.spin_until(lambda: h.node.trainer.stats.annotations_accepted == 1, 60)
        assert h.spin_until(lambda: 1 in np.frombuffer(bytes(masks[-1].data), np.uint8), 30)
        assert h.node.trainer._thread.is_alive()

        def values():
            return {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}

        assert h.spin_until(lambda: values().get('frames_rejected') == '9', 5)
        values = values()
        for key in (
            'iterations_per_second',
            'loss',
            'device',
            'frames_received',
            'frames_dropped',
            'annotations',
        ):
            assert key in values, key
        assert values['device'] == 'cpu' and int(values['frames_rejected']) == 9
    finally:
        h.close()


def test_bgr8_and_compressed_input():
    scene = two_class_scene()
    h = Harness(14, {**TINY, 'mode': 'still'})
    try:
        assert h.wait_matched(h.pub(Image, 'image', 5))
        h.send_image(scene.rgb, header(3), encoding='bgr8')
        assert h.spin_until(lambda: h.node.trainer.current is not None, 60)
        assert np.array_equal(h.node.trainer.current.rgb, scene.rgb)
    finally:
        h.close()
    h = Harness(14, {**TINY, 'mode': 'still', 'image_transport': 'compressed'})
    try:
        masks = h.sub(Image, '/segdip/mask')
        pub = h.pub(CompressedImage, 'image/compressed', 5)
        assert h.wait_matched(pub)
        ok, png = cv2.imencode('.png', cv2.cvtColor(scene.rgb, cv2.COLOR_RGB2BGR))
        msg = CompressedImage(header=header(4, 7), format='png')
        msg.data = array.array('B', png.tobytes())
        pub.publish(msg)
        assert h.spin_until(lambda: masks and stamp_ns(masks[-1].header) == 4_000_000_007, 30)
        assert np.array_equal(h.node.trainer.current.rgb, scene.rgb)
    finally:
        h.close()


def test_live_parameters_and_services(tmp_path):
    scene = two_class_scene()
    h = Harness(15, {**TINY, 'mode': 'still', 'session_dir': str(tmp_path)})
    try:
        node = h.node
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        infos = h.sub(String, '/segdip/label_info_json', latched)
        assert h.spin_until(lambda: infos, 5)
        info = json.loads(infos[-1].data)
        assert [c['name'] for c in info['classes']] == ['background', 'object']
        assert info['unlabelled_id'] == 255 and len(info['classes'][1]['color']) == 3
        for name, value, reason in [
            ('active_class', 5, 'active_class'),
            ('mode', 'fast', 'mode'),
            ('class_colors', ['#zzzzzz'], 'colour'),
            ('num_classes', 3, 'read-only'),
        ]:
            res = node.set_parameters([Parameter(name, value=value)])[0]
            assert not res.successful and reason in res.reason, (name, res.reason)
        assert node.set_parameters([Parameter('active_class', value=0)])[0].successful
        assert node.settings.active_class == 0
        assert node.set_parameters([Parameter('publish_rate', value=8.0)])[0].successful
        assert node.trainer.schedule.publish_period == pytest.approx(1 / 8.0)

        assert not _call(h, '/segdip/next_frame').success  # no image yet
        assert h.wait_matched(h.pub(Image, 'image', 5))
        ann = h.pub(String, '/segdip/annotations', 100)
        assert h.wait_matched(ann)
        h.send_image(scene.rgb, header(10))
        for x, cls in ((80, 1), (10, 0), (150, 0)):
            ann.publish(
                String(data=json.dumps({'type': 'click', 'x': x, 'y': 60, 'class_id': cls}))
            )
        assert h.spin_until(lambda: node.trainer.stats.annotations_accepted == 3, 30)
        r = _call(h, '/segdip/undo')
        assert r.success and len(node.trainer.session.annotations) == 2, r.message
        r = _call(h, '/segdip/save')
        assert r.success, r.message
        ds = tmp_path / 'dataset'
        files = sorted(str(p.relative_to(ds)) for p in ds.rglob('*') if p.is_file())
        name = '10_000000000_camera'
        assert files == [
            'classes.json',
            f'images/{name}.png',
            'manifest.jsonl',
            f'masks/{name}.png',
            f'overlays/{name}.png',
        ]
        saved = json.loads((ds / 'manifest.jsonl').read_text().splitlines()[0])
        assert len(saved['annotations']) == 2 and (saved['width'], saved['height']) == (160, 120)
        assert saved['stamp'] == {'sec': 10, 'nanosec': 0} and saved['frame_id'] == 'camera'
        mask = cv2.imread(str(ds / 'masks' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (120, 160) and mask.dtype == np.uint8
        # still mode keeps frame 10 until ~/next_frame
        h.send_image(scene.rgb, header(11))
        h.spin_for(0.5)
        assert node.trainer.current.stamp_ns == 10_000_000_000
        r = _call(h, '/segdip/next_frame')
        assert r.success and node.trainer.current.stamp_ns == 11_000_000_000, r.message
        ann.publish(String(data=json.dumps({'type': 'click', 'x': 80, 'y': 60, 'class_id': 1})))
        assert h.spin_until(lambda: len(node.trainer.session.annotations) == 1, 60)
        assert _call(h, '/segdip/clear').success
        assert len(node.trainer.session.annotations) == 0
        r = _call(h, '/segdip/reset')
        assert r.success and node.trainer.stats.scenes == 2, r.message
        log = [
            json.loads(line) for line in (tmp_path / 'annotations.jsonl').read_text().splitlines()
        ]
        queued = {d['id']: d for d in log if d['status'] == 'queued'}
        applied = [(queued[d['id']], d['frame']) for d in log if d['status'] == 'applied']
        assert [c['type'] for c, _ in applied] == [
            'click',
            'click',
            'click',
            'undo',
            'click',
            'clear',
        ]
        assert applied[0][1]['stamp'] == {'sec': 10, 'nanosec': 0}
        assert applied[4][1]['stamp'] == {'sec': 11, 'nanosec': 0}
        assert [d['reason'] for d in log if d['status'] == 'scene'] == ['first image', 'reset']
    finally:
        h.close()
