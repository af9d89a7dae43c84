# SPDX-License-Identifier: Apache-2.0
"""The node end to end in one process: frames and clicks in, masks with the frame's header out,
IoU >= 0.9 on the synthetic two-class scene with the engine's default preset."""

from __future__ import annotations

import json

import numpy as np
from geometry_msgs.msg import Point
from node_harness import TINY, Harness, header, mask_of, stamp_ns
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

from segdip_ros.core import iou, mean_iou
from segdip_ros.core.synthetic import three_class_scene, two_class_scene
from segdip_ros.tools.demo import corrective_click, scripted_clicks


def test_clicks_give_iou_and_frame_header():
    """Default engine preset: IoU >= 0.9."""
    scene = two_class_scene()
    h = Harness(10, {'mode': 'still', 'torch_threads': 1, 'publish_rate': 5.0})
    try:
        masks = h.sub(Image, '/segdip/mask')
        pub = h.pub(Image, 'image', 5)
        assert h.wait_matched(pub)
        assert h.wait_matched(h.pub(String, '/segdip/annotations', 100))
        hd = header(42, 5000, 'cam_optical')
        h.send_image(scene.rgb, hd)
        click_pub = h.pub(Point, '/segdip/click', 100)
        assert h.wait_matched(click_pub)

        def send(c):  # pixel clicks as rqt_image_view sends them, class via active_class
            if c['class_id'] != h.node.settings.active_class:
                res = h.node.set_parameters([Parameter('active_class', value=c['class_id'])])
                assert res[0].successful
            click_pub.publish(Point(x=c['x'], y=c['y'], z=0.0))

        first = scripted_clicks(scene.labels, n_fg=1, n_bg=1)
        # the class switch must be applied before each click: send one at a time
        j, n = 0.0, 0
        clicks = first
        for _ in range(5):
            for c in clicks:
                send(c)
                n += 1
                assert h.spin_until(
                    lambda: (
                        h.node.trainer.stats.annotations_accepted + h.node.trainer.pending_commands
                        >= n
                    ),
                    10,
                )
            assert h.spin_until(lambda: h.node.trainer.stats.annotations_accepted >= n, 150)
            assert h.wait_idle(180), h.node.trainer.stats
            h.spin_for(0.4)
            m = masks[-1]
            assert stamp_ns(m.header) == stamp_ns(hd) and m.header.frame_id == 'cam_optical'
            labels = mask_of(m)
            j = iou(labels == 1, scene.labels == 1)
            print(f'IoU {j:.3f} after {n} clicks, iteration {h.node.trainer.stats.iteration}')
            click = corrective_click(labels, scene.labels)
            if j >= 0.9 or click is None:
                break
            clicks = [click]
        assert j >= 0.9, f'IoU {j:.3f} after {n} clicks'
        assert all(stamp_ns(m.header) == stamp_ns(hd) for m in masks)
    finally:
        h.close()


def test_multiclass_via_annotations_json():
    """Three classes with explicit class ids on ~/annotations (click, stroke, box), tiny net."""
    scene = three_class_scene()
    h = Harness(
        11, {**TINY, 'num_classes': 3, 'class_names': ['bg', 'blob', 'rect'], 'mode': 'still'}
    )
    try:
        masks = h.sub(Image, '/segdip/mask')
        assert h.wait_matched(h.pub(Image, 'image', 5))
        assert h.wait_matched(h.pub(String, '/segdip/annotations', 100))
        hd = header(7, 0)
        h.send_image(scene.rgb, hd)
        st = {'sec': 7, 'nanosec': 0}
        anns = [dict(c, stamp=st) for c in scripted_clicks(scene.labels == 1, 2, 2)]
        ys, xs = np.nonzero(scene.labels == 2)
        anns.append(
            {
                'type': 'box',
                'x0': float(xs.min() + 3),
                'y0': float(ys.min() + 3),
                'x1': float(xs.max() - 3),
                'y1': float(ys.max() - 3),
                'class_id': 2,
            }
        )
        anns.append({'type': 'stroke', 'points': [[5, 5], [40, 8]], 'class_id': 0, 'width': 3.0})
        for a in anns:
            h.annotate(json.dumps(a))
        assert h.spin_until(lambda: h.node.trainer.stats.annotations_accepted == len(anns), 30)
        assert h.wait_idle(120)
        h.spin_for(0.3)
        labels = mask_of(masks[-1])
        assert set(np.unique(labels)) <= {0, 1, 2}
        assert {0, 1, 2} <= set(np.unique(labels))
        miou = mean_iou(labels, scene.labels)
        print(f'3-class mIoU {miou:.3f} (tiny net)')
        assert miou > 0.4  # plumbing check with a tiny net; quality is tested above
        # undo and clear through the JSON schema
        h.annotate(json.dumps({'type': 'undo'}))
        assert h.spin_until(lambda: len(h.node.trainer.session.annotations) == len(anns) - 1, 10)
        h.annotate(json.dumps({'type': 'clear', 'stamp': st}))
        assert h.spin_until(lambda: len(h.node.trainer.session.annotations) == 0, 10)
    finally:
        h.close()
