# SPDX-License-Identifier: Apache-2.0
"""NoC / IoU arithmetic, and the run loop on oracle methods whose answers are known."""

import numpy as np
import pytest

from segdip_ros.bench.datasets import BINARY_IGNORE, Sample
from segdip_ros.bench.runner import run_image, run_method, score
from segdip_ros.bench.scoring import aggregate_seeds, mean_curve, noc, stability, summarize


def test_noc_first_click_reaching_threshold_or_max():
    assert noc([0.5, 0.86, 0.95], 0.85, 20) == 2
    assert noc([0.5, 0.86, 0.95], 0.90, 20) == 3
    assert noc([0.5, 0.6], 0.90, 20) == 20
    assert noc([0.9], 0.90, 20) == 1  # reaching exactly counts


def test_stability_counts_drops_larger_than_005():
    assert stability([0.5, 0.7, 0.64, 0.80, 0.70]) == pytest.approx(2 / 4)  # -0.06, -0.10
    assert stability([0.5, 0.46, 0.9]) == 0.0  # -0.04 is allowed
    assert stability([0.5]) == 0.0


def test_summarize_means_over_images():
    curves = [[0.9, 0.95, 0.95], [0.2, 0.86, 0.7]]
    s = summarize(curves, [0.1, 0.3], 3, (0.85, 0.90))
    assert s['noc@85'] == pytest.approx((1 + 2) / 2)
    assert s['noc@90'] == pytest.approx((1 + 3) / 2)
    assert s['iou@1'] == pytest.approx(0.55)
    assert s['iou@3'] == pytest.approx(0.825)
    assert 'iou@5' not in s  # beyond max clicks
    assert s['auc'] == pytest.approx((0.9333333 + 0.5866667) / 2, abs=1e-6)
    assert s['stability'] == pytest.approx((0 + 0.5) / 2)
    assert s['seconds_per_click'] == pytest.approx(0.2)


def test_aggregate_seeds_mean_and_spread():
    mean, spread = aggregate_seeds([{'noc@90': 4.0}, {'noc@90': 6.0}])
    assert mean['noc@90'] == 5.0 and spread['noc@90'] == 1.0
    assert mean_curve([[0.0, 1.0], [1.0, 1.0]]) == [0.5, 1.0]


def make_sample(task='binary'):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    labels = np.zeros((40, 60), np.uint8)
    labels[10:30, 20:45] = 1
    labels[0, :] = BINARY_IGNORE
    return Sample('synthetic', image, labels, BINARY_IGNORE)


class Oracle:
    """Returns a fixed answer whatever the clicks: the ground truth, or nothing."""

    learned = False
    multiclass = True

    def __init__(self, answer, name):
        self.answer = answer
        self.name = name
        self.clicks = []

    def reset(self, image, seed):
        self.clicks = []

    def add_click(self, x, y, label):
        self.clicks.append((x, y, label))

    def predict(self):
        return self.answer.copy()


def test_oracle_returning_ground_truth_needs_one_click():
    sample = make_sample()
    gt = (sample.labels == 1).astype(np.uint8)
    method = Oracle(gt, 'oracle')
    rec = run_image(method, sample, 'binary', max_clicks=20)
    assert rec.iou == [1.0] * 20
    assert noc(rec.iou, 0.90, 20) == 1
    assert len(method.clicks) == 1  # perfect after one click: the user stops
    assert rec.clicks[0] == [29, 19, 1]  # first of the pixels 10 px from the boundary
    assert rec.clicks[1:] == [None] * 19


def test_oracle_returning_empty_never_reaches_threshold():
    sample = make_sample()
    method = Oracle(np.zeros((40, 60), np.uint8), 'empty')
    run = run_method(
        method, [sample, sample], 'binary', max_clicks=20, seed=0, threshold=0.9, progress=False
    )
    for rec in run.images:
        assert rec.iou == [0.0] * 20
        assert noc(rec.iou, 0.85, 20) == 20
        assert all(c is not None and c[2] == 1 for c in rec.clicks)  # always positive
        assert len({(c[0], c[1]) for c in rec.clicks}) == 20  # never the same pixel
        assert all(sample.labels[c[1], c[0]] == 1 for c in rec.clicks)
    s = summarize([r.iou for r in run.images], [], 20, (0.85, 0.90))
    assert s['noc@85'] == 20 and s['noc@90'] == 20


def test_score_ignores_ignored_pixels_and_checks_size():
    sample = make_sample()
    pred = (sample.labels == 1).astype(np.uint8)
    pred[0, :] = 1  # wrong only on the ignore row
    assert score(pred, sample, 'binary') == 1.0
    with pytest.raises(ValueError, match='original size'):
        score(pred[:20], sample, 'binary')


def test_per_class_rounds_click_each_wrong_class_then_predict_once():
    sample = make_sample()
    labels = sample.labels.copy()
    labels[30:, :10] = 2  # a third class in the bottom-left corner
    sample = Sample('three', sample.image, labels, BINARY_IGNORE)
    answer = np.where(labels == 2, 0, labels).astype(np.uint8)  # class 2 never predicted
    answer[labels == BINARY_IGNORE] = 0
    method = Oracle(answer, 'no-class-2')
    rec = run_image(method, sample, 'multiclass', max_clicks=3, per_class=True)
    assert [len(r) for r in rec.clicks] == [3, 1, 1]  # round 1: every class; then class 2
    assert all(c[2] == 2 for r in rec.clicks[1:] for c in r)
    assert len(method.clicks) == 5 and len(rec.seconds) == 5
    assert rec.iou[0] == pytest.approx(score(answer, sample, 'multiclass'))
    assert rec.iou[0] < 0.7
