# SPDX-License-Identifier: Apache-2.0
"""Whole-mask annotations through the node: ~/mask_annotation (mono8) and the JSON form."""

from __future__ import annotations

import json

import numpy as np
from node_harness import TINY, Harness, header, mask_of, stamp_ns
from sensor_msgs.msg import Image

from segdip_ros.core import Mask
from segdip_ros.core.synthetic import two_class_scene
from segdip_ros.ros.convert import labels_to_mono8_msg, rgb_to_image_msg


def test_a_mask_annotation_labels_the_frame_and_bad_masks_are_refused():
    scene = two_class_scene()  # 160x120
    h = Harness(21, {**TINY, 'mode': 'still'})
    try:
        masks = h.sub(Image, '/segdip/mask')
        img = h.pub(Image, 'image', 5)
        mask_pub = h.pub(Image, '/segdip/mask_annotation', 10)
        assert h.wait_matched(img) and h.wait_matched(mask_pub)
        img.publish(rgb_to_image_msg(scene.rgb, header(5)))
        assert h.spin_until(lambda: h.node.trainer.current is not None, 30)
        # refused, each with its reason; the node keeps running
        bad_size = labels_to_mono8_msg(np.zeros((10, 10), np.uint8), header(5))
        bad_enc = rgb_to_image_msg(scene.rgb, header(5))
        empty = labels_to_mono8_msg(np.full((120, 160), 255, np.uint8), header(5))
        unknown = labels_to_mono8_msg(np.full((120, 160), 7, np.uint8), header(5))
        for msg in (bad_size, bad_enc, empty, unknown):
            mask_pub.publish(msg)
        assert h.spin_until(
            lambda: h.node.warnings.total('mask') >= 3 and h.node.warnings.total('class') >= 1, 10
        )
        assert h.node.trainer.stats.annotations_accepted == 0
        given = scene.labels.astype(np.uint8)
        mask_pub.publish(labels_to_mono8_msg(given, header(5)))
        assert h.spin_until(lambda: h.node.trainer.stats.annotations_accepted == 1, 30)
        assert h.spin_until(lambda: h.node.trainer.stats.state == 'idle' and masks, 60)
        got = mask_of(masks[-1])
        assert stamp_ns(masks[-1].header) == 5_000_000_000
        assert (got == given).mean() > 0.97  # the given labels, through the cut
        # the same mask as JSON on ~/annotations is accepted too
        h.annotate(json.dumps(Mask(given).to_dict()))
        assert h.spin_until(lambda: h.node.trainer.stats.annotations_accepted == 2, 30)
    finally:
        h.close()
