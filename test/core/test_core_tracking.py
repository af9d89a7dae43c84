# SPDX-License-Identifier: Apache-2.0
"""The tracking cut's prior (core/tracking.py): who decides where the flow is sure or unsure."""

import numpy as np

from segdip_ros.core.tracking import Motion, TrackSettings, tracking_prior


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
