# SPDX-License-Identifier: Apache-2.0
"""A labelling run through the web console with dataset_keyframes 'annotated': the node adds
the annotated frame to session_dir/dataset by itself, and replaces it after more clicks."""

from __future__ import annotations

import json

import numpy as np
from node_harness import TINY, header
from web_harness import LiveConsole, wait_for

from segdip_ros.core.synthetic import interior_point, two_class_scene
from segdip_ros.offline.dataset import load_dataset


def test_annotated_frames_become_dataset_samples(tmp_path):
    scene = two_class_scene()
    live = LiveConsole(
        65,
        {**TINY, 'mode': 'still', 'session_dir': str(tmp_path), 'dataset_keyframes': 'annotated'},
    )
    try:
        manifest = tmp_path / 'dataset' / 'manifest.jsonl'
        live.send_image(scene.rgb, header(21, 0, 'cam'))
        bridge = live.console.bridge
        assert wait_for(lambda: live.node.trainer.current is not None, 30)
        x, y = interior_point(scene.labels == 1)
        bridge.publish_annotation(json.dumps({'type': 'click', 'x': x, 'y': y, 'class_id': 1}))

        def records():
            if not manifest.exists():
                return []
            return [json.loads(line) for line in manifest.read_text().splitlines()]

        assert wait_for(lambda: len(records()) == 1, 60), records()
        rec = records()[0]
        assert rec['source'] == 'keyframe' and len(rec['annotations']) == 1
        assert rec['stamp'] == {'sec': 21, 'nanosec': 0} and rec['frame_id'] == 'cam'
        bridge.publish_annotation(json.dumps({'type': 'click', 'x': 5, 'y': 5, 'class_id': 0}))
        assert wait_for(lambda: len(records()[0]['annotations']) == 2, 60), records()
        assert len(records()) == 1  # the same frame: replaced
        ds = load_dataset(tmp_path / 'dataset')
        mask = ds.samples[0].read_mask()
        assert mask[y, x] == 1 and mask[5, 5] == 0
        assert np.array_equal(ds.samples[0].read_image(), scene.rgb)
        # refused live: an unknown keyframe mode
        from rclpy.parameter import Parameter

        res = live.node.set_parameters([Parameter('dataset_keyframes', value='all')])[0]
        assert not res.successful and "dataset_keyframes must be 'off', 'annotated'" in res.reason
    finally:
        live.close()
