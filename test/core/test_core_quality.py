# SPDX-License-Identifier: Apache-2.0
"""Segmentation quality of the default engine on synthetic textured scenes with exact ground truth.

These train real networks on CPU (default preset, 120x160 scenes), so each takes 10-40 s.
"""

import numpy as np
import pytest
from core_helpers import click_until

from segdip_ros.core import (
    Box,
    Click,
    FrameDriver,
    Stroke,
    TrainingSession,
    default_preset,
    iou,
    mean_iou,
)
from segdip_ros.core.synthetic import (
    interior_point,
    moving_object_sequence,
    three_class_scene,
    two_class_scene,
)


def _session(scene_rgb, num_classes):
    s = TrainingSession(default_preset(num_classes))
    s.set_image(scene_rgb)
    s.warmup()
    return s


@pytest.mark.parametrize('seed', [0, 1])
def test_two_class_iou_from_five_clicks(seed):
    scene = two_class_scene(seed=seed)
    s = _session(scene.rgb, 2)
    click_until(s, scene.labels, clicks=5, iterations=s.cfg.iterations_per_click)
    score = iou(s.refine().labels == 1, scene.labels == 1)
    print(f'two-class seed {seed}: IoU after 5 clicks {score:.3f}')
    assert score >= 0.90


def test_three_class_mean_iou_from_three_clicks_per_class():
    scene = three_class_scene(seed=1)
    s = _session(scene.rgb, 3)
    per_class = {0: 0, 1: 0, 2: 0}
    for c in range(3):  # the user first clicks once inside each region
        x, y = interior_point(scene.labels == c)
        s.add_annotation(Click(x, y, c))
        per_class[c] += 1
    s.step(100)
    for _ in range(4):
        # then corrects the largest error among classes that still have clicks left
        pred = s.refine().labels
        left = [c for c, n in per_class.items() if n < 3]
        err = (pred != scene.labels) & np.isin(scene.labels, left)
        if not err.any():
            break
        x, y = interior_point(err)
        c = int(scene.labels[y, x])
        s.add_annotation(Click(x, y, c))
        per_class[c] += 1
        s.step(s.cfg.iterations_per_click)
    score = mean_iou(s.refine().labels, scene.labels)
    print(f'three-class: mean IoU {score:.3f} with clicks per class {per_class}')
    assert max(per_class.values()) <= 3
    assert score >= 0.85


def _row_run(mask, y):
    xs = np.nonzero(mask[y])[0]
    return float(xs.min() + 2), float(xs.max() - 2)


def test_strokes_alone_segment_three_classes():
    scene = three_class_scene(seed=1)
    s = _session(scene.rgb, 3)
    for c in range(3):
        x, y = interior_point(scene.labels == c)
        x0, x1 = _row_run(scene.labels == c, y)
        # a short horizontal stroke through the region's interior, inside the region
        half = min(12.0, (x1 - x0) / 2)
        s.add_annotation(Stroke(((max(x0, x - half), y), (min(x1, x + half), y)), c, width=3.0))
    s.step(150)
    score = mean_iou(s.refine().labels, scene.labels)
    print(f'strokes only: mean IoU {score:.3f}')
    assert score >= 0.80


def test_boxes_alone_segment_three_classes():
    scene = three_class_scene(seed=1)
    s = _session(scene.rgb, 3)
    for c in range(3):
        x, y = interior_point(scene.labels == c)
        s.add_annotation(Box(x - 4, y - 4, x + 4, y + 4, c))  # a small box inside the region
    s.step(150)
    score = mean_iou(s.refine().labels, scene.labels)
    print(f'boxes only: mean IoU {score:.3f}')
    assert score >= 0.80


def test_tracking_carries_first_frame_labels_over_twenty_frames():
    """Clicks on frame 1 only, then the frame-switch rule (FrameDriver) on a moving object."""
    sequence = moving_object_sequence(20, seed=0, speed=2.0)
    s = _session(sequence[0].rgb, 2)
    click_until(s, sequence[0].labels, clicks=6, iterations=s.cfg.iterations_per_click)
    driver = FrameDriver(s)
    scores = [
        iou(driver.process(scene.rgb).labels == 1, scene.labels == 1) for scene in sequence[1:]
    ]
    print('tracking IoU frames 2..20:', np.round(scores, 3).tolist(), 'mean', np.mean(scores))
    assert np.mean(scores) >= 0.75
