# SPDX-License-Identifier: Apache-2.0
"""Outputs and inputs for standard ROS tools: rqt_image_view clicks on ~/overlay_mouse_left,
~/overlay/compressed (JPEG), the class list on ~/label_info_json and vision_msgs/LabelInfo,
QoS overrides of ~/image_plane and camera_info."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pytest
from geometry_msgs.msg import Point
from node_harness import TINY, Harness, header, mask_of, stamp_ns
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from segdip_ros.core.synthetic import two_class_scene
from segdip_ros.node.interfaces import IMAGE_QOS, OUTPUT_QOS
from segdip_ros.node.label_info import label_info_msg, vision_msgs_classes
from segdip_ros.ros.convert import image_msg_to_rgb

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def test_rqt_click_on_the_overlay_reaches_the_mask_and_jpeg_overlay_matches_raw():
    scene = two_class_scene()
    h = Harness(33, {**TINY, 'mode': 'still', 'jpeg_quality': 90})
    try:
        node = h.node
        masks = h.sub(Image, '/segdip/mask')
        overlays = h.sub(Image, '/segdip/overlay')
        jpegs = h.sub(CompressedImage, '/segdip/overlay/compressed')
        infos = h.sub(String, '/segdip/label_info_json', LATCHED)
        assert h.wait_matched(h.pub(Image, 'image', 5))
        hd = header(7, 500, 'cam')
        h.send_image(scene.rgb, hd)
        # rqt_image_view showing /segdip/overlay publishes clicks on /segdip/overlay_mouse_left
        clicks = h.pub(Point, '/segdip/overlay_mouse_left', 100)
        assert h.wait_matched(clicks)
        assert h.spin_until(lambda: node.trainer.current is not None, 30)
        clicks.publish(Point(x=88.0, y=60.0, z=0.0))
        assert h.spin_until(lambda: masks and 1 in mask_of(masks[-1]), 60), (
            'a click on ~/overlay_mouse_left did not reach the mask'
        )
        assert node.trainer.stats.annotations_accepted == 1
        assert h.wait_idle(60)

        overlays.clear()
        jpegs.clear()
        assert h.spin_until(lambda: overlays and jpegs, 10)  # re-published while idle
        raw, jpeg = overlays[-1], jpegs[-1]
        assert stamp_ns(jpeg.header) == stamp_ns(hd) == stamp_ns(raw.header)
        assert jpeg.header.frame_id == 'cam'
        assert jpeg.format == 'rgb8; jpeg compressed bgr8'
        decoded = cv2.cvtColor(
            cv2.imdecode(np.frombuffer(bytes(jpeg.data), np.uint8), cv2.IMREAD_COLOR),
            cv2.COLOR_BGR2RGB,
        )
        expected = image_msg_to_rgb(raw)
        assert decoded.shape == expected.shape == scene.rgb.shape
        diff = np.abs(decoded.astype(np.int16) - expected.astype(np.int16)).mean()
        # the scene's fine texture is the worst case for JPEG: a few grey levels on average
        assert diff < 10.0, f'JPEG overlay differs from ~/overlay by {diff:.2f} on average'
        ok, own = cv2.imencode(
            '.jpg', cv2.cvtColor(expected, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        own = cv2.cvtColor(cv2.imdecode(own, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        same = np.abs(decoded.astype(np.int16) - own.astype(np.int16)).mean()
        assert same < 1.0, f'not the JPEG of ~/overlay at quality 90 ({same:.2f})'
        assert len(jpeg.data) < expected.nbytes / 2  # it is compressed

        assert h.spin_until(lambda: infos, 5)
        info = json.loads(infos[-1].data)
        assert [c['name'] for c in info['classes']] == ['background', 'object']
        label_pubs = h.tester.get_publishers_info_by_topic('/segdip/label_info')
        if vision_msgs_classes() is None:
            assert label_pubs == []
        else:
            assert h.spin_until(
                lambda: h.tester.get_publishers_info_by_topic('/segdip/label_info'), 5
            )
            assert (
                h.tester.get_publishers_info_by_topic('/segdip/label_info')[0].topic_type
                == 'vision_msgs/msg/LabelInfo'
            )
    finally:
        h.close()


@dataclass
class _FakeVisionClass:
    class_id: int = 0
    class_name: str = ''


@dataclass
class _FakeLabelInfo:
    header: Any = None
    class_map: list = field(default_factory=list)
    threshold: float = -1.0


def test_label_info_builder_gives_one_vision_class_per_class():
    classes = vision_msgs_classes() or (_FakeLabelInfo, _FakeVisionClass)
    hd = Header(frame_id='camera')
    msg = label_info_msg(['road', 'car', 'sky'], hd, *classes)
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [
        (0, 'road'),
        (1, 'car'),
        (2, 'sky'),
    ]
    assert msg.header.frame_id == 'camera' and msg.threshold == 0.0
    with pytest.raises(ValueError, match='at least one class'):
        label_info_msg([], hd, *classes)


def test_qos_overrides_of_image_plane_and_camera_info():
    h = Harness(
        34,
        {
            **TINY,
            'qos_overrides./segdip/image_plane.publisher.reliability': 'best_effort',
            'qos_overrides./camera_info.subscription.reliability': 'reliable',
        },
    )
    try:
        node = h.node
        plane = node.get_publishers_info_by_topic('/segdip/image_plane')
        info = [
            s
            for s in node.get_subscriptions_info_by_topic('/camera_info')
            if s.node_name == 'segdip'
        ]
        mask = node.get_publishers_info_by_topic('/segdip/mask')
        assert plane[0].qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert info[0].qos_profile.reliability == ReliabilityPolicy.RELIABLE
        assert mask[0].qos_profile.reliability == ReliabilityPolicy.RELIABLE  # not overridden
        assert node.get_parameter('qos_overrides./camera_info.subscription.depth').value == 1
        # the overrides stay with this node: the shared default profiles are untouched
        assert OUTPUT_QOS.reliability == ReliabilityPolicy.RELIABLE
        assert IMAGE_QOS.reliability == ReliabilityPolicy.BEST_EFFORT
    finally:
        h.close()
