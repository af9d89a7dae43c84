# SPDX-License-Identifier: Apache-2.0
"""The simulated user of the RITM / f-BRS evaluation, for binary and multi-class masks.

RITM (isegm/inference/clicker.py) puts the next click at the pixel farthest from the boundary of
an error region: it takes the L2 distance transform of the false-negative and false-positive masks
(each padded by one pixel, so the image border counts as boundary), excludes pixels already
clicked, and clicks positive when the FN maximum is strictly larger than the FP maximum, negative
otherwise. Ignored pixels are left out of both error masks.

Binary FN/FP are exactly the per-class error regions of classes 1 and 0 ("ground truth c,
predicted something else"), so one function serves both tasks: for every class present in the
ground truth it takes the distance transform of that class's error region and clicks, labelled
with that class, where the distance is largest. Ties go to the lower class id, which in the
binary case reproduces RITM's "negative on ties".

Multi-class scores are also reported "after k clicks per class present" (`click_round`): each
step clicks once on every class still wrong, at that class's farthest error pixel, and the method
predicts once after the whole round.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ['Clicker', 'SimClick', 'class_clicks', 'error_distance', 'next_click']


@dataclass(frozen=True)
class SimClick:
    """A simulated click in ORIGINAL pixels: x = column, y = row, label = class id
    (binary: 1 positive, 0 negative). distance = its distance to the error-region boundary, px."""

    x: int
    y: int
    label: int
    distance: float

    @property
    def positive(self) -> bool:
        return self.label == 1

    def to_list(self) -> list[int]:
        return [self.x, self.y, self.label]


def error_distance(error: np.ndarray) -> np.ndarray:
    """HxW float32 L2 distance of each error pixel to the nearest non-error pixel or the image
    border (RITM pads the mask with one zero pixel), 0 outside the error region."""
    padded = np.pad(error.astype(np.uint8), 1, mode='constant')
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist[1:-1, 1:-1]


def class_clicks(
    pred: np.ndarray, gt: np.ndarray, ignore_id: int, clicked: np.ndarray | None = None
) -> list[SimClick]:
    """One candidate click per class present in `gt` that is still wrong somewhere: the pixel
    of that class's error region farthest from its boundary, in class order.

    pred, gt: HxW integer labels at the same (original) resolution; pixels with
    gt == ignore_id are never clicked. clicked: HxW bool of pixels already clicked (excluded).
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction shape {pred.shape} differs from ground truth {gt.shape}')
    valid = gt != ignore_id
    found: list[SimClick] = []
    for c in np.unique(gt[valid]):
        error = (gt == c) & (pred != c) & valid
        if not error.any():
            continue
        dist = error_distance(error)
        if clicked is not None:
            dist[clicked] = 0
        peak = float(dist.max())
        if peak <= 0:
            continue
        ys, xs = np.nonzero(dist == peak)
        found.append(SimClick(int(xs[0]), int(ys[0]), int(c), peak))
    return found


def next_click(
    pred: np.ndarray, gt: np.ndarray, ignore_id: int, clicked: np.ndarray | None = None
) -> SimClick | None:
    """Where the simulated user clicks next, or None when no valid pixel is wrong: the farthest
    of the per-class candidates (`class_clicks`), the lower class id on ties."""
    best: SimClick | None = None
    for c in class_clicks(pred, gt, ignore_id, clicked):
        if best is None or c.distance > best.distance:
            best = c
    return best


class Clicker:
    """Stateful simulated user for one image: remembers clicked pixels and its click list."""

    def __init__(self, gt: np.ndarray, ignore_id: int) -> None:
        self.gt = np.asarray(gt)
        self.ignore_id = int(ignore_id)
        self._clicked = np.zeros(self.gt.shape, bool)
        self.clicks: list[SimClick] = []

    def first_click(self, empty_label: int = 0) -> SimClick | None:
        """The click made before any prediction, on a map filled with `empty_label`: 0 for binary
        (the object pixel farthest from its boundary), -1 for multi-class (every class region is
        an error, so the click goes to the centre of the largest region of any class)."""
        return self.click(np.full(self.gt.shape, empty_label, np.int32))

    def click(self, pred: np.ndarray) -> SimClick | None:
        """Next click given the current prediction (HxW labels), recorded; None if all correct."""
        c = next_click(pred, self.gt, self.ignore_id, self._clicked)
        if c is not None:
            self._record(c)
        return c

    def click_round(self, pred: np.ndarray) -> list[SimClick]:
        """One click on every class present that is still wrong (the multi-class protocol "k
        clicks per class present"), recorded; empty if all correct."""
        found = class_clicks(pred, self.gt, self.ignore_id, self._clicked)
        for c in found:
            self._record(c)
        return found

    def _record(self, c: SimClick) -> None:
        self._clicked[c.y, c.x] = True
        self.clicks.append(c)
