# SPDX-License-Identifier: Apache-2.0
"""Helpers for the engine tests: a simulated user that clicks where the error is largest."""

from __future__ import annotations

import numpy as np

from segdip_ros.core import Click, TrainingSession
from segdip_ros.core.synthetic import interior_point


def corrective_click(session: TrainingSession, gt: np.ndarray) -> Click:
    """A click at the interior of the largest error region, labelled with the true class."""
    pred = session.predict().labels if session.has_labels else np.full(gt.shape, 255, np.uint8)
    err = pred != gt
    x, y = interior_point(err)
    return Click(x, y, int(gt[y, x]))


def click_until(session: TrainingSession, gt: np.ndarray, clicks: int, iterations: int) -> list:
    """Give `clicks` corrective clicks, training `iterations` after each and then refining
    (the frame-switch rule for an annotation); returns the clicks."""
    given = []
    for _ in range(clicks):
        c = corrective_click(session, gt)
        session.add_annotation(c)
        session.step(iterations)
        session.refine()
        given.append(c)
    return given
