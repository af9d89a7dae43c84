# SPDX-License-Identifier: Apache-2.0
"""Durability through the real node: an exception in any callback is contained and counted,
wrong-typed parameter sets are refused, every input topic and the undo/clear services log a
command before it applies and settle it once, a click stamped for a waiting frame of a new
size is accepted and applied there, a storm of hostile messages on every input neither stops
the node nor changes what it learns from a good scene, and SIGKILL in every state of the node
(a child process) loses no accepted annotation and applies none twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, Point32, PointStamped, PolygonStamped
from node_harness import TINY, Harness, header
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import String
from std_srvs.srv import Trigger

from segdip_ros import segdip_node
from segdip_ros.bench.killtest import STATES, KillSettings, run_kills
from segdip_ros.bench.storm import StormSettings, run_storm, run_transport_only
from segdip_ros.core.synthetic import two_class_scene
from segdip_ros.node.journal import read_journal
from segdip_ros.ros.convert import labels_to_mono8_msg
from segdip_ros.ros.image_plane import ImagePlane


def _settled(session_dir: Path) -> int:
    """Commands the node's log has settled (applied or refused); a line being written is not
    read (`read_journal` drops a torn last line)."""
    records = read_journal(session_dir / 'annotations.jsonl').records
    return sum(r['status'] in ('applied', 'refused') for r in records)


def test_a_failing_decoder_is_contained_counted_and_the_node_keeps_working(monkeypatch):
    scene = two_class_scene()
    h = Harness(76, {**TINY, 'mode': 'still'})
    logged: list[str] = []
    h.node.warnings.log = logged.append
    calls = {'n': 0}
    real = segdip_node.image_msg_to_rgb

    def broken(msg):
        calls['n'] += 1
        if calls['n'] <= 3:
            raise ZeroDivisionError('decoder bug')
        return real(msg)

    monkeypatch.setattr(segdip_node, 'image_msg_to_rgb', broken)
    try:
        diags = h.sub(DiagnosticArray, '/diagnostics')
        img = h.pub(Image, 'image', 5)
        assert h.wait_matched(img)
        for sec in range(1, 4):
            h.send_image(scene.rgb, header(sec))
            assert h.spin_until(lambda: calls['n'] >= sec, 10)
        assert h.node.guard.errors == 3 and h.node.trainer.current is None
        assert sum('ZeroDivisionError contained' in w for w in logged) == 1, logged

        def values():
            return {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}

        assert h.spin_until(lambda: values().get('callback_errors') == '3', 5), values()
        assert diags[-1].status[0].level == b'\x01'  # WARN while errors were contained
        # the next frame decodes: the node is alive and trains on it
        h.send_image(scene.rgb, header(9))
        assert h.spin_until(lambda: h.node.trainer.current is not None, 20)
        assert h.node.trainer.current.stamp_ns == 9_000_000_000
        # parameter sets of the wrong type or value are refused with a reason
        for name, value in (
            ('active_class', 'object'),
            ('mode', 5),
            ('publish_rate', -1.0),
            ('class_colors', [1, 2]),
        ):
            try:
                res = h.node.set_parameters([Parameter(name, value=value)])[0]
                ok, reason = res.successful, res.reason
            except Exception as err:  # rclpy refuses a type change by raising in the caller
                ok, reason = False, str(err)
            assert not ok and reason, (name, value)
        assert h.node.settings.active_class == 1 and h.node.settings.mode == 'still'
    finally:
        h.close()


def test_every_input_topic_and_the_edit_services_are_logged_before_they_apply(tmp_path):
    # "accepted" holds for every way in: each command gets a queued record, then exactly one
    # applied or refused record
    scene = two_class_scene()
    h = Harness(80, {**TINY, 'mode': 'still', 'session_dir': str(tmp_path)})
    tr = h.node.trainer
    try:
        img = h.pub(Image, 'image', 5)
        assert h.wait_matched(img)
        h.send_image(scene.rgb, header(5))
        assert h.spin_until(lambda: tr.current is not None, 20)
        stamped = PointStamped(header=header(5))
        stamped.point.x, stamped.point.y = 20.0, 20.0
        stroke = PolygonStamped(header=header(5))
        stroke.polygon.points = [Point32(x=30.0, y=30.0), Point32(x=40.0, y=30.0)]
        mask = np.full((120, 160), 255, np.uint8)
        mask[0:5, 0:5] = 0
        px, py, _ = ImagePlane().pixel_to_point(60.0, 50.0)
        plane = PointStamped()
        plane.header.frame_id = 'segdip_image_plane'
        plane.point.x, plane.point.y = float(px), float(py)
        sends = [
            (Point, '/segdip/click', Point(x=10.0, y=10.0)),
            (Point, '/segdip/overlay_mouse_left', Point(x=12.0, y=10.0)),
            (PointStamped, '/segdip/click_stamped', stamped),
            (PolygonStamped, '/segdip/stroke', stroke),
            (
                RegionOfInterest,
                '/segdip/box',
                RegionOfInterest(x_offset=50, y_offset=50, width=4, height=4),
            ),
            (
                String,
                '/segdip/annotations',
                String(data='{"type":"click","x":5,"y":5,"class_id":0}'),
            ),
            (Image, '/segdip/mask_annotation', labels_to_mono8_msg(mask, header(5))),
            (PointStamped, '/segdip/clicked_point', plane),
            (PointStamped, '/segdip/clicked_point/object', plane),
        ]
        for kind, topic, msg in sends:
            pub = h.pub(kind, topic, 100)
            assert h.wait_matched(pub), topic
            pub.publish(msg)
        assert h.spin_until(lambda: tr.stats.annotations_accepted == len(sends), 30)
        for op in ('undo', 'clear'):
            assert h.call(Trigger, f'/segdip/{op}').success, op
        assert h.node.inputs_rejected == 0
        # every command is logged as queued, then as applied or refused once the trainer is done
        assert h.spin_until(lambda: _settled(tmp_path) == len(sends) + 2, 30)
        records = read_journal(tmp_path / 'annotations.jsonl').records
        queued = [r for r in records if r['status'] == 'queued']
        settled = [r['id'] for r in records if r['status'] in ('applied', 'refused')]
        assert [r['source'] for r in queued] == [
            '~/click',
            '~/overlay_mouse_left',
            '~/click_stamped',
            '~/stroke',
            '~/box',
            'annotations',
            '~/mask_annotation',
            '~/clicked_point',
            '~/clicked_point',
            'service',
            'service',
        ]
        assert sorted(settled) == sorted(r['id'] for r in queued)
    finally:
        h.close()


def test_a_stamped_click_on_a_frame_of_a_new_size_waits_for_it(tmp_path):
    # the stream switched to 160x120 while the node still trains on a 128x96 frame: a click
    # stamped with the new frame is checked against that frame, accepted, and applied there;
    # an unstamped click goes to the current frame and is checked against it
    small, big = two_class_scene(height=96, width=128), two_class_scene()
    h = Harness(79, {**TINY, 'mode': 'tracking', 'session_dir': str(tmp_path)})
    tr = h.node.trainer
    try:
        img = h.pub(Image, 'image', 5)
        assert h.wait_matched(img)
        h.send_image(small.rgb, header(1))
        assert h.spin_until(lambda: tr.current is not None, 20)
        tr.set_paused(True)
        assert h.spin_until(lambda: tr.stats.state == 'paused', 10)
        h.send_image(big.rgb, header(2))
        assert h.spin_until(lambda: h.node._last_size == (120, 160), 10)
        click = {'type': 'click', 'x': 150.0, 'y': 110.0, 'class_id': 0}
        h.annotate(json.dumps(click))  # for the current 128x96 frame: outside, refused
        h.annotate(json.dumps({**click, 'stamp': {'sec': 2, 'nanosec': 0}}))
        assert h.spin_until(lambda: h.node.inputs_rejected == 1 and tr.pending_commands == 1, 10)
        tr.set_paused(False)
        assert h.spin_until(lambda: tr.stats.annotations_accepted == 1, 60)
        assert tr.current.stamp_ns == 2_000_000_000 and tr.current.rgb.shape[:2] == (120, 160)
        # the trainer counts the annotation, then logs it as applied: wait for the log line
        assert h.spin_until(lambda: _settled(tmp_path) == 1, 10)
        records = read_journal(tmp_path / 'annotations.jsonl').records
        queued = [r for r in records if r['status'] == 'queued']
        applied = [r for r in records if r['status'] == 'applied']
        assert len(queued) == 1 and queued[0]['x'] == 150.0
        assert [r['id'] for r in applied] == [queued[0]['id']]
    finally:
        h.close()


def test_storm_of_hostile_messages_changes_nothing():
    params = {**TINY, 'mode': 'still'}
    calm = run_storm(
        StormSettings(messages=0, storm=False, domain_id=77, params=params), log=lambda m: None
    )
    stormy = run_storm(
        StormSettings(messages=1000, domain_id=77, params=params), log=lambda m: None
    )
    assert stormy.crashes == 0, stormy.crash_reasons
    assert stormy.trainer_alive and stormy.messages == 1000
    assert stormy.hostile_applied == 0 and calm.hostile_applied == 0
    assert abs(calm.iou - stormy.iou) <= 0.02, (calm.iou, stormy.iou)
    assert calm.iou > 0.7
    assert stormy.rss_end_mb - stormy.rss_warm_mb < 50
    assert stormy.problems_counted > 500  # the storm was seen and refused ...
    assert stormy.warnings_logged < stormy.messages / 10  # ... and the log rate-limited
    assert stormy.parameter_sets_sent > 0
    assert stormy.parameter_sets_refused == stormy.parameter_sets_sent


def test_storm_transport_only_measures_dds_without_the_node():
    out = run_transport_only(StormSettings(messages=300, domain_id=78))
    assert set(out) == {'start', 'quarter', 'half', 'end', 'received'}
    assert 0 < out['received'] <= 300
    assert all(out[k] > 0 for k in ('start', 'quarter', 'half', 'end'))


def test_sigkill_in_every_state_loses_and_duplicates_nothing(tmp_path):
    report = run_kills(
        KillSettings(
            kills=len(STATES), chain_length=len(STATES), seed=1, domain_id=78, workdir=tmp_path
        ),
        log=print,
    )
    assert report.problems == []
    t = report.totals()
    assert t['kills'] == len(STATES) and set(report.per_state) == set(STATES)
    assert t['accepted'] >= 20  # clicks were accepted in the kill rounds
    assert t['lost'] == 0 and t['duplicated'] == 0, report.table()
    # the probe case: clicks accepted during the warm-up survived the kill and were applied
    assert report.per_state['warm-up']['accepted'] > 0
