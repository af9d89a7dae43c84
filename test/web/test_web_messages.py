# SPDX-License-Identifier: Apache-2.0
"""Browser messages are validated like ~/annotations, without a browser or ROS."""

from __future__ import annotations

import json

import pytest

from segdip_ros.node.inputs import parse_annotation_json
from segdip_ros.web.messages import Limits, MessageError, parse_browser_message

LIM = Limits(num_classes=3, image_size=(120, 160))


def ann(annotation: dict, msg_id: str = 'a1-1') -> str:
    return json.dumps({'id': msg_id, 'op': 'annotate', 'annotation': annotation})


def test_click_stroke_box_are_rebuilt_in_the_annotations_schema():
    m = parse_browser_message(
        ann(
            {
                'type': 'click',
                'x': 10.5,
                'y': 20,
                'class_id': 2,
                'stamp': {'sec': 7, 'nanosec': 5},
                'extra': 'dropped',
            }
        ),
        LIM,
    )
    assert m.op == 'annotate' and m.msg_id == 'a1-1'
    assert json.loads(m.annotation_json) == {
        'type': 'click',
        'x': 10.5,
        'y': 20.0,
        'class_id': 2,
        'stamp': {'sec': 7, 'nanosec': 5},
    }
    cmd = parse_annotation_json(m.annotation_json, 3)
    assert cmd.stamp_ns == 7_000_000_005 and cmd.annotation.class_id == 2
    s = parse_browser_message(
        ann({'type': 'stroke', 'points': [[0, 0], [159.9, 119.5]], 'class_id': 0, 'width': 4}), LIM
    )
    # up to one pixel outside is clamped onto the image (as the node does for clicks)
    assert json.loads(s.annotation_json)['points'] == [[0.0, 0.0], [159.0, 119.0]]
    b = parse_browser_message(
        ann({'type': 'box', 'x0': 1, 'y0': 2, 'x1': 30, 'y1': 40, 'class_id': 1}), LIM
    )
    assert json.loads(b.annotation_json)['x1'] == 30.0 and 'box of class 1' in b.summary
    u = parse_browser_message(ann({'type': 'undo'}), LIM)
    assert json.loads(u.annotation_json) == {'type': 'undo'}


def test_services_and_views():
    assert parse_browser_message('{"id":"x","op":"service","name":"save"}', LIM).name == 'save'
    assert (
        parse_browser_message('{"id":"x","op":"view","view":"confidence"}', LIM).name
        == 'confidence'
    )
    with pytest.raises(MessageError, match="unknown service 'shutdown'"):
        parse_browser_message('{"id":"x","op":"service","name":"shutdown"}', LIM)
    with pytest.raises(MessageError, match="unknown view '../etc/passwd'"):
        parse_browser_message('{"id":"x","op":"view","view":"../etc/passwd"}', LIM)
    with pytest.raises(MessageError, match="unknown op 'exec'"):
        parse_browser_message('{"id":"x","op":"exec"}', LIM)


@pytest.mark.parametrize(
    'annotation, reason',
    [
        ({'type': 'click', 'x': '10', 'y': 5, 'class_id': 1}, '"x" must be a number, got str'),
        ({'type': 'click', 'x': True, 'y': 5, 'class_id': 1}, '"x" must be a number, got bool'),
        ({'type': 'click', 'x': 10, 'y': 5, 'class_id': 1.0}, '"class_id" must be an integer'),
        ({'type': 'click', 'x': 10, 'y': 5, 'class_id': 3}, 'unknown class 3'),
        ({'type': 'click', 'x': 10, 'y': 5, 'class_id': -1}, 'unknown class -1'),
        ({'type': 'click', 'x': 10, 'y': 5}, '"class_id" must be an integer, got NoneType'),
        ({'type': 'click', 'x': 161.5, 'y': 5, 'class_id': 1}, r'outside \[-1, 160\]'),
        ({'type': 'click', 'x': 1e300, 'y': 5, 'class_id': 1}, 'outside'),
        ({'type': 'stroke', 'points': [[1, 2]], 'class_id': 1, 'width': 3}, '1 points'),
        ({'type': 'stroke', 'points': [[1, 2]] * 2001, 'class_id': 1, 'width': 3}, '2001 points'),
        (
            {'type': 'stroke', 'points': [[1, 2, 3], [4, 5, 6]], 'class_id': 1, 'width': 3},
            r'every point must be \[x, y\]',
        ),
        ({'type': 'stroke', 'points': [[1, 2], [3, 4]], 'class_id': 1, 'width': 0}, '"width"'),
        ({'type': 'stroke', 'points': [[1, 2], [3, 4]], 'class_id': 1, 'width': 1000}, '"width"'),
        ({'type': 'box', 'x0': 50, 'y0': 5, 'x1': 10, 'y1': 40, 'class_id': 1}, 'above or left'),
        ({'type': 'polygon', 'class_id': 1}, "unknown annotation type 'polygon'"),
        ({'type': 'click', 'x': 1, 'y': 1, 'class_id': 1, 'stamp': {'sec': -1}}, 'out of range'),
        (
            {'type': 'click', 'x': 1, 'y': 1, 'class_id': 1, 'stamp': {'sec': 1, 'nanosec': 2e9}},
            'must be integers',
        ),
    ],
)
def test_bad_annotations_are_refused_with_the_reason(annotation, reason):
    with pytest.raises(MessageError, match=reason) as info:
        parse_browser_message(ann(annotation, 'k9-3'), LIM)
    assert info.value.msg_id == 'k9-3'  # the page can tell which of its messages failed


def test_nan_and_infinity_are_refused():
    for token in ('NaN', 'Infinity', '-Infinity'):
        text = (
            '{"id":"a","op":"annotate","annotation":{"type":"click","x":%s,"y":1,'
            '"class_id":1}}' % token
        )
        with pytest.raises(MessageError, match='"x" must be finite'):
            parse_browser_message(text, LIM)
    pts = '[[1,2],[NaN,3]]'
    with pytest.raises(MessageError, match='must be finite'):
        parse_browser_message(
            '{"id":"a","op":"annotate","annotation":{"type":"stroke",'
            f'"points":{pts},"class_id":1,"width":2}}}}',
            LIM,
        )


def test_envelope_size_depth_and_id():
    with pytest.raises(MessageError, match='over the limit of 65536'):
        parse_browser_message('{"id":"a","op":"view","view":"' + 'x' * 70000 + '"}', LIM)
    with pytest.raises(MessageError, match='nested deeper than 5'):
        parse_browser_message('{"id":"a","op":"view","view":[[[[[["overlay"]]]]]]}', LIM)
    with pytest.raises(MessageError, match='nested too deeply|nested deeper'):
        parse_browser_message('[' * 30000 + ']' * 30000, Limits(3, max_bytes=100000))
    with pytest.raises(MessageError, match='not JSON'):
        parse_browser_message('{"id": "a", op', LIM)
    with pytest.raises(MessageError, match='expected one JSON object, got list'):
        parse_browser_message('[1, 2]', LIM)
    with pytest.raises(MessageError, match='binary messages'):
        parse_browser_message(b'{}', LIM)
    for bad in ('', 'a b', 'x' * 65, '<script>'):
        with pytest.raises(MessageError, match='"id" must be'):
            parse_browser_message(json.dumps({'id': bad, 'op': 'view', 'view': 'image'}), LIM)
    with pytest.raises(MessageError, match='"id" must be'):
        parse_browser_message('{"id": 5, "op": "view", "view": "image"}', LIM)


def test_without_a_frame_coordinates_are_bounded_not_clamped():
    lim = Limits(num_classes=2)
    m = parse_browser_message(ann({'type': 'click', 'x': 500, 'y': 400, 'class_id': 1}), lim)
    assert json.loads(m.annotation_json)['x'] == 500.0
    with pytest.raises(MessageError, match='outside'):
        parse_browser_message(ann({'type': 'click', 'x': 70000, 'y': 4, 'class_id': 1}), lim)
    with pytest.raises(MessageError, match='no class list from the node yet'):
        parse_browser_message(
            ann({'type': 'click', 'x': 1, 'y': 1, 'class_id': 0}), Limits(num_classes=0)
        )
