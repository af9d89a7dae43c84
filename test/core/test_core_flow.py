# SPDX-License-Identifier: Apache-2.0
"""Optical flow, warping and edge-aware upsampling (core/flow.py, core/upsample.py)."""

import cv2
import numpy as np

from segdip_ros.core.flow import FlowEstimator, fb_confidence, to_grey, warp
from segdip_ros.core.synthetic import two_class_scene
from segdip_ros.core.upsample import guided_upsample


def _shift(img, dx, dy):
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


def test_warping_with_the_estimated_flow_follows_a_moving_object():
    scene = two_class_scene(height=96, width=128, seed=2)
    prev, cur = scene.rgb, _shift(scene.rgb, 4, 2)  # the content moves 4 px right, 2 down
    labels_prev = (scene.labels == 1).astype(np.float32)
    labels_cur = _shift(labels_prev, 4, 2)
    back, fwd = FlowEstimator().pair(to_grey(prev), to_grey(cur))
    inner = (slice(10, -10), slice(10, -10))
    assert abs(float(np.median(back[inner][..., 0])) + 4) < 0.5  # frame t -> t-1: 4 px left
    assert abs(float(np.median(back[inner][..., 1])) + 2) < 0.5
    moved = warp(labels_prev, back) > 0.5
    truth = labels_cur > 0.5
    stayed = labels_prev > 0.5
    agree = lambda a, b: float((a & b).sum()) / float((a | b).sum())
    assert agree(moved, truth) > 0.9 and agree(moved, truth) > agree(stayed, truth) + 0.05


def test_forward_backward_confidence_is_one_for_a_consistent_pair_and_low_otherwise():
    h, w = 20, 30
    back = np.zeros((h, w, 2), np.float32)
    back[..., 0] = -3.0
    fwd = -back
    assert np.allclose(fb_confidence(back, fwd)[:, 5:], 1.0)
    wrong = np.zeros_like(fwd)
    wrong[..., 0] = -3.0  # goes on instead of coming back
    assert (fb_confidence(back, wrong)[:, 5:] < 0.01).all()


def test_guided_upsampling_puts_the_boundary_on_the_images_own_edge():
    big = np.zeros((240, 320, 3), np.uint8)
    big[:, 163:] = 200  # an edge at x = 163 (not on 8 px)
    truth = np.zeros((240, 320), bool)
    truth[:, 163:] = True
    small = cv2.resize(truth.astype(np.float32), (40, 30), interpolation=cv2.INTER_AREA)
    bilinear = cv2.resize(small, (320, 240), interpolation=cv2.INTER_LINEAR) > 0.5
    guided = guided_upsample(small, big, radius=8, eps=1e-3) > 0.5
    err = lambda m: int((m != truth).sum())
    assert err(guided) < err(bilinear) and err(guided) <= 240 * 1  # within a pixel column


def test_guided_upsample_adds_the_channels_as_a_sum_over_them_would():
    """The channel-by-channel output equals the filter written as (a * I).sum(2) + b."""
    from segdip_ros.core.upsample import guided_filter_colour

    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    small = rng.random((24, 32), dtype=np.float32)
    out = guided_upsample(small, big, radius=4, eps=1e-3, inner_scale=0.5)
    guide = cv2.resize(big, (64, 48), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    a, b = guided_filter_colour(guide, cv2.resize(small, (64, 48)), 2, 1e-3)
    a_hi = cv2.resize(a, (128, 96), interpolation=cv2.INTER_LINEAR)
    b_hi = cv2.resize(b, (128, 96), interpolation=cv2.INTER_LINEAR)
    expected = (a_hi * (big.astype(np.float32) / 255)).sum(axis=2) + b_hi
    assert out.shape == (96, 128) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
