# SPDX-License-Identifier: Apache-2.0
"""The dataset keyframe rule (node/keyframes.py) without a node."""

from __future__ import annotations

from segdip_ros.node.keyframes import KeyframePolicy


def test_annotated_frames_are_saved_once_per_burst_of_clicks():
    p = KeyframePolicy(now=0.0)
    yes = lambda: True

    def due(budget_end, annotations, accepted, key, mode='annotated', period=0.0, now=1.0):
        return p.due(mode, period, budget_end, now, annotations, accepted, key, yes)

    assert due(False, 1, 1, 'a') is None  # only at the end of the budget
    assert due(True, 0, 0, 'a') is None  # a frame without annotations
    assert due(True, 1, 1, 'a') == 'keyframe'
    assert due(True, 1, 1, 'a') is None  # nothing new since
    assert due(True, 0, 1, 'b') is None  # tracking: the next frame has none
    assert due(True, 2, 3, 'c') == 'keyframe'  # more clicks: saved again
    assert due(True, 2, 4, 'c', mode='off') is None


def test_period_saves_while_labels_show_and_something_changed():
    p = KeyframePolicy(now=0.0)
    labelled = [False]

    def due(now, key):
        return p.due('off', 2.0, False, now, 0, 0, key, lambda: labelled[0])

    assert due(1.0, 'a') is None  # not yet 2 s
    assert due(2.5, 'a') is None  # nothing labelled
    labelled[0] = True
    assert due(3.0, 'a') is None  # the period restarted at 2.5
    assert due(4.6, 'a') == 'period'
    assert due(7.0, 'a') is None  # same frame, same model
    assert due(9.5, 'b') == 'period'
    assert p.due('off', 0.0, False, 100.0, 0, 0, 'c', lambda: True) is None  # 0 = off
