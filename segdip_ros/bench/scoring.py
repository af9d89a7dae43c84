# SPDX-License-Identifier: Apache-2.0
"""Summary figures from per-image score curves; pure functions, no I/O.

A curve is the score after clicks 1..K of one image (binary IoU or multi-class mean IoU, at
original resolution, ignored pixels excluded). Conventions (RITM / f-BRS):
- NoC@t: the first click count whose score reaches t; K (max clicks) when never reached.
- score@k: the score after k clicks (reported for k <= K only).
- AuC: mean score over clicks 1..K.
- stability: share of the K-1 click steps where the score falls by more than 0.05.
Every figure is computed per image, then averaged over images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    'BINARY_THRESHOLDS',
    'DROP',
    'MULTICLASS_THRESHOLDS',
    'REPORTED_CLICKS',
    'aggregate_seeds',
    'mean_curve',
    'noc',
    'score_at',
    'stability',
    'summarize',
]

BINARY_THRESHOLDS = (0.85, 0.90)
MULTICLASS_THRESHOLDS = (0.80, 0.85)
REPORTED_CLICKS = (1, 3, 5, 10, 20)
DROP = 0.05


def noc(curve: Sequence[float], threshold: float, max_clicks: int) -> int:
    """Clicks needed to reach `threshold` (1-based), max_clicks when never reached."""
    for k, score in enumerate(curve[:max_clicks], start=1):
        if score >= threshold:
            return k
    return max_clicks


def stability(curve: Sequence[float], drop: float = DROP) -> float:
    """Share of click steps (k-1 -> k) where the score falls by more than `drop`.

    0 for one click.
    """
    if len(curve) < 2:
        return 0.0
    steps = np.diff(np.asarray(curve, dtype=np.float64))
    return float(np.count_nonzero(steps < -drop) / len(steps))


def score_at(curve: Sequence[float], k: int) -> float:
    """Score after k clicks (1-based)."""
    if not 1 <= k <= len(curve):
        raise ValueError(f'click {k} is outside a curve of {len(curve)} clicks')
    return float(curve[k - 1])


def summarize(
    curves: Sequence[Sequence[float]],
    seconds: Sequence[float],
    max_clicks: int,
    thresholds: Sequence[float],
    prefix: str = 'iou',
) -> dict[str, float]:
    """Mean over images of NoC@t for each threshold, score@k, AuC and stability.

    curves: one list of max_clicks scores per image. seconds: the time of every click made
    (add_click + predict), pooled over images. Keys: 'noc@85', '<prefix>@5', 'auc',
    'stability', 'seconds_per_click', 'images'.
    """
    if not curves:
        raise ValueError('no curves to summarize')
    out: dict[str, float] = {'images': float(len(curves))}
    for t in thresholds:
        out[f'noc@{round(t * 100)}'] = float(np.mean([noc(c, t, max_clicks) for c in curves]))
    for k in REPORTED_CLICKS:
        if k <= max_clicks:
            out[f'{prefix}@{k}'] = float(np.mean([score_at(c, k) for c in curves]))
    out['auc'] = float(np.mean([np.mean(c[:max_clicks]) for c in curves]))
    out['stability'] = float(np.mean([stability(c[:max_clicks]) for c in curves]))
    out['seconds_per_click'] = float(np.mean(seconds)) if len(seconds) else math.nan
    return out


def aggregate_seeds(
    summaries: Sequence[dict[str, float]],
) -> tuple[dict[str, float], dict[str, float]]:
    """(mean, spread) per key over seeds; spread = population standard deviation (0 for one)."""
    if not summaries:
        raise ValueError('no summaries to aggregate')
    keys = summaries[0].keys()
    mean = {k: float(np.mean([s[k] for s in summaries])) for k in keys}
    spread = {k: float(np.std([s[k] for s in summaries])) for k in keys}
    return mean, spread


def mean_curve(curves: Sequence[Sequence[float]]) -> list[float]:
    """Mean score after each click over images (curves of equal length)."""
    return [float(v) for v in np.mean(np.asarray(curves, dtype=np.float64), axis=0)]
