# SPDX-License-Identifier: Apache-2.0
"""The simulated user matches hand-computed RITM clicks on small synthetic masks."""

import numpy as np
import pytest

from segdip_ros.bench.clicker import Clicker, error_distance, next_click
from segdip_ros.bench.datasets import BINARY_IGNORE

IGN = BINARY_IGNORE


def square(size=21, lo=5, hi=15):
    gt = np.zeros((size, size), np.uint8)
    gt[lo : hi + 1, lo : hi + 1] = 1
    return gt


def test_first_click_at_centre_of_square():
    c = Clicker(square(), IGN).first_click()
    assert (c.x, c.y, c.label) == (10, 10, 1)
    assert c.positive
    assert c.distance == pytest.approx(6.0)  # to column/row 4, the first background pixel


def test_image_border_counts_as_boundary():
    gt = np.ones((5, 9), np.uint8)  # object fills the image: padding makes the border a boundary
    dist = error_distance(gt == 1)
    assert dist[0, 0] == pytest.approx(1.0)
    assert dist.max() == pytest.approx(3.0)
    c = next_click(np.zeros_like(gt), gt, IGN)
    assert c.y == 2 and 2 <= c.x <= 6


def test_negative_click_when_false_positive_region_is_larger():
    gt = square(31, 5, 15)
    pred = gt.copy()
    pred[18:29, 18:29] = 1  # 11x11 false positive
    pred[10, 10] = 0  # one-pixel false negative
    c = next_click(pred, gt, IGN)
    assert (c.label, c.positive) == (0, False)
    assert (c.x, c.y) == (23, 23)


def test_positive_click_when_false_negative_region_is_larger():
    gt = square(31, 5, 25)
    pred = gt.copy()
    pred[5:26, 5:16] = 0  # left half of the object missed (11 wide)
    pred[0, 0] = 1  # one-pixel false positive
    c = next_click(pred, gt, IGN)
    assert c.positive and c.x == 10 and gt[c.y, c.x] == 1


def test_tie_goes_to_negative_as_in_ritm():
    gt = np.zeros((9, 20), np.uint8)
    gt[:, :10] = 1
    pred = 1 - gt  # FN and FP regions of identical shape
    assert next_click(pred, gt, IGN).label == 0


def test_ignore_band_is_excluded_and_acts_as_boundary():
    gt = np.zeros((30, 30), np.uint8)
    gt[5:25, 5:25] = 1
    gt[5:25, 5:13] = IGN  # ignore the left part of the object
    c = Clicker(gt, IGN).first_click()
    assert gt[c.y, c.x] == 1
    assert c.x in (18, 19)  # centre of the valid columns 13..24, not of 5..24
    assert c.distance == pytest.approx(6.0)


def test_no_click_when_prediction_is_perfect_on_valid_pixels():
    gt = square()
    gt[0, :] = IGN
    pred = (gt == 1).astype(np.uint8)
    pred[0, :] = 1  # wrong only on ignored pixels
    assert next_click(pred, gt, IGN) is None


def test_clicked_pixels_are_not_clicked_again():
    gt = square()
    clicker = Clicker(gt, IGN)
    first = clicker.first_click()
    second = clicker.click(np.zeros_like(gt))
    assert (second.x, second.y) != (first.x, first.y)
    assert second.positive and len(clicker.clicks) == 2


def test_multiclass_click_goes_to_largest_error_region_with_its_class():
    gt = np.zeros((40, 40), np.uint8)
    gt[2:8, 2:8] = 1  # small class-1 region
    gt[15:36, 15:36] = 2  # large class-2 region, centre (25, 25)
    gt[:, 39] = 11  # void column
    pred = np.zeros_like(gt)  # only class 0 predicted
    c = next_click(pred, gt, ignore_id=11)
    assert (c.x, c.y, c.label) == (25, 25, 2)


def test_multiclass_first_click_on_empty_prediction():
    gt = np.zeros((20, 40), np.uint8)
    gt[:, 20:] = 3  # two equal halves: tie goes to the lower class id
    c = Clicker(gt, 255).first_click(empty_label=-1)
    assert c.label == 0 and c.x < 20


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match='differs'):
        next_click(np.zeros((3, 3)), np.zeros((4, 4)), IGN)


def test_click_round_clicks_every_wrong_class_once_at_its_region_centre():
    gt = np.zeros((40, 40), np.uint8)
    gt[2:9, 2:9] = 1  # class-1 square, centre (5, 5)
    gt[15:36, 15:36] = 2  # class-2 square, centre (25, 25)
    gt[:, 39] = 11  # void column
    clicker = Clicker(gt, ignore_id=11)
    first = clicker.click_round(np.full(gt.shape, -1))
    assert [c.label for c in first] == [0, 1, 2]
    assert [(c.x, c.y) for c in first[1:]] == [(5, 5), (25, 25)]
    assert all(gt[c.y, c.x] == c.label for c in first)
    pred = gt.copy()
    pred[15:36, 15:36] = 0  # only class 2 still wrong
    second = clicker.click_round(pred)
    assert [c.label for c in second] == [2]
    assert (second[0].x, second[0].y) != (25, 25)  # its centre was already clicked
    assert len(clicker.clicks) == 4
    assert clicker.click_round(gt) == []
