# SPDX-License-Identifier: Apache-2.0
"""What the console builds from the node's messages: JPEG views, class list, status."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from node_harness import header

from segdip_ros.node.outputs import diagnostics_msg, label_info_json
from segdip_ros.ros.convert import float_to_32fc1_msg, rgb_to_image_msg
from segdip_ros.web.encode import (
    LabelInfoError,
    encode_view,
    parse_label_info,
    status_from_diagnostics,
)


def _decode(jpeg: bytes) -> np.ndarray:
    return cv2.cvtColor(
        cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )


def test_views_become_jpeg_with_the_frame_header():
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[:, 20:] = (250, 10, 10)
    meta, jpeg = encode_view('overlay', rgb_to_image_msg(rgb, header(3, 9, 'cam')), 90)
    assert meta == {
        'width': 40,
        'height': 30,
        'stamp': {'sec': 3, 'nanosec': 9},
        'frame_id': 'cam',
    }
    out = _decode(jpeg)
    assert out.shape == (30, 40, 3) and np.abs(out.astype(int) - rgb).mean() < 6
    conf = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (30, 1))
    conf[0, 0] = np.nan
    meta, jpeg = encode_view('confidence', float_to_32fc1_msg(conf, header(4)))
    out = _decode(jpeg)
    # viridis: dark purple at 0, yellow at 1
    assert out[15, 0, 2] > out[15, 0, 1] and out[15, 39, 0] > 200 and out[15, 39, 1] > 200
    bad = rgb_to_image_msg(rgb, header(1))
    bad.encoding = 'weird'
    with pytest.raises(ValueError, match='weird'):
        encode_view('image', bad)


def test_label_info_from_the_node_and_refusals():
    text = label_info_json(['background', 'object', 'x' * 100], [(1, 2, 3), (4, 5, 6), (7, 8, 9)])
    info = parse_label_info(text)
    assert [c['name'] for c in info['classes']][:2] == ['background', 'object']
    assert len(info['classes'][2]['name']) == 64 and info['classes'][1]['color_hex'] == '#040506'
    assert info['unlabelled_id'] == 255
    evil = json.dumps({'classes': [{'id': 0, 'name': '<b>', 'color_hex': 'red;x'}]})
    assert parse_label_info(evil)['classes'][0]['color_hex'] == '#808080'
    for bad, reason in [
        ('nope', 'not JSON'),
        ('{"classes": []}', 'no "classes"'),
        ('{"classes": [{"id": 1}]}', 'expected an object with "id": 0'),
    ]:
        with pytest.raises(LabelInfoError, match=reason):
            parse_label_info(bad)


def test_status_is_taken_from_the_node_s_own_diagnostics():
    stamp = SimpleNamespace(sec=0, nanosec=0)
    mine = diagnostics_msg(
        stamp,
        'segdip: training',
        'cpu',
        {'state': 'idle', 'annotations': 2, 'iterations_per_second': 12.5, 'secret': 'x'},
        0,
        'idle',
    )
    other = diagnostics_msg(stamp, 'othernode: training', 'cpu', {'state': 'busy'}, 1, 'busy')
    arr = DiagnosticArray(status=[other.status[0], mine.status[0]])
    st = status_from_diagnostics(arr, ('segdip', '/segdip'))
    assert st == {
        'level': 0,
        'message': 'idle',
        'values': {'state': 'idle', 'annotations': '2', 'iterations_per_second': '12.5'},
    }
    assert status_from_diagnostics(arr, ('robot1',)) is None
    assert (
        status_from_diagnostics(DiagnosticArray(status=[other.status[0]]), ('othernode',))['level']
        == 1
    )
