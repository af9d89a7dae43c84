# SPDX-License-Identifier: Apache-2.0
"""Metrics against hand-computed values."""

import numpy as np
import pytest

from segdip_ros.core import boundary_f_measure, iou, mean_iou


def test_iou_hand_computed():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 px
    b[:2, :3] = True  # 6 px, overlap 4
    assert iou(a, b) == pytest.approx(4 / 6)
    assert iou(a, a) == 1.0 and iou(a, ~a) == 0.0
    valid = np.ones((4, 4), bool)
    valid[:, 2] = False  # ignore the column where they differ
    assert iou(a, b, valid) == 1.0


def test_mean_iou_ignores_void():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 11]])
    pred = np.array([[0, 0, 1, 0], [0, 0, 1, 1]])
    # class 0: inter 4, union 5; class 1: inter 2, union 3 (the void pixel is ignored)
    assert mean_iou(pred, gt, ignore_index=11) == pytest.approx((4 / 5 + 2 / 3) / 2)


def test_boundary_f_identical_shifted_and_empty():
    gt = np.zeros((100, 100), bool)
    gt[30:70, 30:70] = True
    assert boundary_f_measure(gt, gt) == 1.0
    far = np.roll(gt, 20, axis=1)
    assert boundary_f_measure(far, gt) < 0.6
    assert boundary_f_measure(np.zeros_like(gt), gt) == 0.0
    with pytest.raises(ValueError, match='shape'):
        iou(gt, gt[:10])
