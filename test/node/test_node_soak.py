# SPDX-License-Identifier: Apache-2.0
"""30 s of 30 Hz frames with clicks at random: the node stays alive, memory stays flat, and
every accepted click is in the saved annotation log; a restart with the same session_dir
resumes the model and the annotations."""

from __future__ import annotations

import json
import random
import time

import numpy as np
from geometry_msgs.msg import Point
from node_harness import TINY, Harness, header, mask_of, stamp_ns
from sensor_msgs.msg import Image
from std_msgs.msg import String

from segdip_ros.core.synthetic import moving_object_sequence, two_class_scene
from segdip_ros.ros.convert import rgb_to_image_msg

SOAK_SECONDS = 30.0
FPS = 30.0


def _rss_mb() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def test_soak_30s_tracking(tmp_path):
    scenes = moving_object_sequence(frames=20)
    frames = [rgb_to_image_msg(s.rgb, header(0)) for s in scenes]
    h = Harness(19, {**TINY, 'mode': 'tracking', 'session_dir': str(tmp_path)})
    rng = random.Random(0)
    sent_ok: list[tuple[float, float, int]] = []
    try:
        masks = h.sub(Image, '/segdip/mask')
        img = h.pub(Image, 'image', 5)
        ann = h.pub(String, '/segdip/annotations', 100)
        click = h.pub(Point, '/segdip/click', 100)
        for p in (img, ann, click):
            assert h.wait_matched(p)
        t0 = time.monotonic()
        k = 0
        rss_warm = None
        next_frame = t0
        while time.monotonic() - t0 < SOAK_SECONDS:
            now = time.monotonic()
            if now >= next_frame:
                msg = frames[k % len(frames)]
                msg.header.stamp.sec, msg.header.stamp.nanosec = (
                    1000 + k // 30,
                    (k % 30) * 33_000_000,
                )
                img.publish(msg)
                k += 1
                next_frame += 1.0 / FPS
                # ~0.6 clicks a second: each adds iterations_per_click to the frame's budget,
                # so faster clicking holds the stream on one frame (frames_used below)
                if rng.random() < 0.02:
                    x, y, cls = rng.uniform(0, 159), rng.uniform(0, 119), rng.randrange(2)
                    if rng.random() < 0.5:
                        d = {
                            'type': 'click',
                            'x': x,
                            'y': y,
                            'class_id': cls,
                            'stamp': {
                                'sec': msg.header.stamp.sec,
                                'nanosec': msg.header.stamp.nanosec,
                            },
                        }
                        ann.publish(String(data=json.dumps(d)))
                        sent_ok.append((x, y, cls))
                    elif rng.random() < 0.8:
                        ann.publish(
                            String(
                                data=json.dumps({'type': 'click', 'x': x, 'y': y, 'class_id': cls})
                            )
                        )
                        sent_ok.append((x, y, cls))
                    else:  # a bad one now and then: outside the image
                        click.publish(Point(x=500.0, y=y))
            if rss_warm is None and now - t0 > 8.0:
                rss_warm = _rss_mb()
            h.executor.spin_once(timeout_sec=max(0.0, min(0.01, next_frame - now)))
        rss_end = _rss_mb()
        st = h.node.trainer.stats
        print(
            f'soak: {k} frames sent, {h.node.frames_received} received, {st.frames_used} '
            f'used, {st.frames_dropped} dropped, {st.iteration} iterations, '
            f'{len(sent_ok)} clicks, RSS {rss_warm:.0f} -> {rss_end:.0f} MB'
        )
        assert k >= SOAK_SECONDS * FPS * 0.9
        assert h.node.frames_received > 0.5 * k
        assert st.frames_used > 5 and masks and h.node.trainer._thread.is_alive()
        assert rss_end - rss_warm < 50.0, (rss_warm, rss_end)
        assert h.node.warnings.total('outside') >= 1
        assert h.spin_until(
            lambda: (
                h.node.trainer.stats.annotations_accepted + h.node.trainer.pending_commands
                >= len(sent_ok)
            ),
            10,
        )
        used = {stamp_ns(m.header) for m in masks}
        assert len(used) > 5  # masks followed the stream
    finally:
        h.close()  # stops the trainer: queued/held clicks applied, last checkpoint written
    log = [json.loads(line) for line in (tmp_path / 'annotations.jsonl').read_text().splitlines()]
    queued = {d['id']: d for d in log if d['status'] == 'queued'}
    logged = sorted((d['x'], d['y'], d['class_id']) for d in queued.values())
    assert logged == sorted(sent_ok)
    applied = [d for d in log if d['status'] == 'applied']
    assert sorted(d['id'] for d in applied) == sorted(queued)  # each applied exactly once
    assert all('stamp' in d['frame'] for d in applied)


def test_restart_with_same_session_dir_resumes(tmp_path):
    scene = two_class_scene()
    params = {**TINY, 'mode': 'still', 'session_dir': str(tmp_path)}
    h = Harness(20, params)
    try:
        ann = h.pub(String, '/segdip/annotations', 100)
        assert h.wait_matched(h.pub(Image, 'image', 5)) and h.wait_matched(ann)
        h.send_image(scene.rgb, header(50, 0, 'cam'))
        for x, cls in ((88, 1), (10, 0), (150, 0), (90, 1)):
            ann.publish(
                String(data=json.dumps({'type': 'click', 'x': x, 'y': 60, 'class_id': cls}))
            )
        assert h.wait_idle(60) and h.node.trainer.stats.annotations_accepted == 4
        before = h.node.trainer.session.annotations
        iteration = h.node.trainer.session.iteration
        labels_before = h.node.trainer.session.predict().labels.copy()
    finally:
        h.close()
    h = Harness(20, params)
    try:
        masks = h.sub(Image, '/segdip/mask')
        tr = h.node.trainer
        assert tr.session is not None and tr.session.annotations == before
        assert tr.session.iteration == iteration
        assert np.array_equal(tr.session.predict().labels, labels_before)
        # it publishes the resumed frame with its header, without any new image
        assert h.spin_until(lambda: masks, 10)
        assert stamp_ns(masks[-1].header) == 50_000_000_000 and masks[-1].header.frame_id == 'cam'
        assert np.array_equal(mask_of(masks[-1]), labels_before)
    finally:
        h.close()
