# SPDX-License-Identifier: Apache-2.0
"""Tracking (core/tracking.py): who decides in the cut's prior where the flow is sure or
unsure, the positions carried along the flow, the replayed frame's brightness, what a
tracked frame teaches the network."""

import numpy as np
import pytest

from segdip_ros.core.model import meshgrid
from segdip_ros.core.tracking import (
    Motion,
    TrackSettings,
    carry_positions,
    replay_gain,
    tracked_frame_target,
    tracking_prior,
)


def _prior(confidence, network_object):
    """One row of pixels: the warped labels say object (1) for sure, the flow's confidence
    varies along the row, the network says object with probability `network_object`."""
    conf = np.asarray(confidence, np.float32)[None]
    warped = np.stack([np.zeros_like(conf), np.ones_like(conf)])
    net = np.stack([1.0 - np.full_like(conf, network_object), np.full_like(conf, network_object)])
    return tracking_prior(Motion(warped, conf), net, TrackSettings())


def test_a_sure_flow_is_not_overruled_by_a_confident_network():
    confidence = [1.0, 0.8, 0.6]
    prior = _prior(confidence, network_object=0.0)  # the network is certain: background
    assert (prior.argmax(axis=0) == 1).all(), prior[1]


def test_where_the_flow_is_unsure_the_network_decides():
    prior = _prior([0.0, 0.2, 0.4], network_object=0.0)
    assert (prior.argmax(axis=0) == 0).all(), prior[1]
    agree = _prior([0.0, 0.2, 0.4], network_object=1.0)
    assert (agree[1] > 0.85).all()  # the network agreeing with the flow only adds to it


def test_without_the_network_the_prior_is_the_warped_labels_weighted_by_confidence():
    settings = TrackSettings(network_weight=0.0)
    conf = np.array([[1.0, 0.5, 0.0]], np.float32)
    warped = np.stack([np.zeros_like(conf), np.ones_like(conf)])
    prior = tracking_prior(Motion(warped, conf), np.zeros_like(warped), settings)
    assert prior[1, 0, 0] > prior[1, 0, 1] > prior[1, 0, 2]
    assert abs(prior[1, 0, 2] - 0.5) < 1e-6  # no confidence: no say


def test_the_positions_follow_the_flow():
    """A scene moving 3 px right: each pixel's position in the labelled frame is the one of
    the pixel 3 px to its left in the previous frame (the border replicated)."""
    positions = meshgrid(6, 10)[0].numpy()
    backward = np.zeros((6, 10, 2), np.float32)
    backward[..., 0] = -3.0  # pixel x of this frame was at x - 3 in the previous one
    motion = Motion(np.full((2, 6, 10), 0.5, np.float32), np.ones((6, 10), np.float32), backward)
    carried = carry_positions(positions, motion)
    assert np.allclose(carried[:, :, 3:], positions[:, :, :-3], atol=1e-6)
    assert np.allclose(carried[0, :, :3], positions[0, :, :1], atol=1e-6)
    assert np.array_equal(carried[1], positions[1])
    assert carry_positions(positions, Motion(motion.warped, motion.confidence)) is positions


def test_the_replay_gain_is_a_function_of_seed_and_iteration_within_its_range():
    gains = [replay_gain(0, i, (0.4, 1.3)) for i in range(200)]
    assert gains == [replay_gain(0, i, (0.4, 1.3)) for i in range(200)]
    assert 0.4 <= min(gains) < 0.5 and 1.2 < max(gains) <= 1.3
    assert gains != [replay_gain(1, i, (0.4, 1.3)) for i in range(200)]
    assert replay_gain(5, 7, (1.0, 1.0)) == 1.0


def test_bad_replay_brightness_is_refused():
    for bad in ((0.0, 1.0), (1.2, 1.0)):
        with pytest.raises(ValueError, match='replay_brightness'):
            TrackSettings(replay_brightness=bad)


def _square_scene():
    """40 x 60 labels: background, a 10 x 10 object (class 1) at rows 15-24, columns 25-34."""
    labels = np.zeros((40, 60), np.int64)
    labels[15:25, 25:35] = 1
    return labels


def test_a_tracked_frame_teaches_no_background_next_to_its_object():
    labels = _square_scene()
    target, weights = tracked_frame_target(labels, 2, 0.8, 8.0)
    assert np.array_equal(target, labels)
    assert (weights[15 + 3 : 25 - 3, 25 + 3 : 35 - 3] == 1).all()  # the object's inside
    assert (weights[15:25, 35 : 35 + 7] == 0).all()  # background within 8 px of it
    assert (weights[15:25, 25 - 7 : 25] == 0).all()
    assert (weights[:, :15] == 1).all() and (weights[:5] == 1).all()  # farther: still taught


def test_without_the_band_or_with_more_classes_the_background_is_taught_up_to_the_edge_blur():
    labels = _square_scene()
    off = tracked_frame_target(labels, 2, 0.8, 0.0)[1]
    assert (off[15:25, 35 + 4 : 35 + 7] == 1).all()
    three = tracked_frame_target(labels, 3, 0.8, 8.0)[1]
    assert np.array_equal(three, off)
    empty = tracked_frame_target(np.zeros((40, 60), np.int64), 2, 0.8, 8.0)[1]
    assert (empty == 1).all()  # no object in the frame: nothing to keep clear of


def test_the_band_is_wider_when_the_user_labelled_less_than_half_the_labelled_frame():
    settings = TrackSettings(background_band=8.0, sparse_background_band=24.0)
    assert settings.band_for(1.0) == settings.band_for(0.5) == 8.0  # a mask
    assert settings.band_for(0.01) == 24.0  # a few clicks


def test_a_negative_background_band_is_refused():
    for bad in ({'background_band': -1.0}, {'sparse_background_band': -1.0}):
        with pytest.raises(ValueError, match='tracking weights'):
            TrackSettings(**bad)
