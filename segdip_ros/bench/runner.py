# SPDX-License-Identifier: Apache-2.0
"""The benchmark loop: each method, seed and image, clicked by the simulated user.

Every method sees the same user policy, but the clicks themselves follow each method's own
errors (as in RITM). When nothing valid is wrong any more the user stops clicking: the step is
recorded with no click and the score is carried over, so every curve has max_clicks entries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from segdip_ros.core.metrics import iou, mean_iou

from .base import Method
from .clicker import Clicker
from .datasets import Sample
from .progress import ProgressBar
from .scoring import noc

__all__ = ['ImageRecord', 'MethodRun', 'run_image', 'run_method', 'score']


@dataclass
class ImageRecord:
    """One image under one method and seed. clicks[k] is [x, y, label] in original pixels (a list
    of them for a per-class round) or None (no click: already perfect); iou[k] is after step
    k+1; seconds has one entry per click made."""

    name: str
    height: int
    width: int
    clicks: list[list[int] | None] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    reset_seconds: float = 0.0
    final_mask: np.ndarray | None = None

    def to_json(self) -> dict:
        return {
            'name': self.name,
            'height': self.height,
            'width': self.width,
            'clicks': self.clicks,
            'iou': [round(v, 6) for v in self.iou],
            'seconds': [round(v, 4) for v in self.seconds],
            'reset_seconds': round(self.reset_seconds, 4),
        }


@dataclass
class MethodRun:
    """All images of one method and seed."""

    method: str
    seed: int
    images: list[ImageRecord] = field(default_factory=list)


def score(pred: np.ndarray, sample: Sample, task: str) -> float:
    """Binary: IoU of the object (label 1); multi-class: mean IoU over the classes present;
    ignored pixels excluded, at original resolution."""
    if pred.shape != sample.labels.shape:
        raise ValueError(
            f'{sample.name}: prediction {pred.shape} is not at original size {sample.labels.shape}'
        )
    if task == 'binary':
        return iou(pred == 1, sample.labels == 1, sample.valid)
    return mean_iou(pred, sample.labels, ignore_index=sample.ignore_id)


def run_image(
    method: Method,
    sample: Sample,
    task: str,
    max_clicks: int,
    seed: int = 0,
    per_class: bool = False,
) -> ImageRecord:
    """Reset `method` on the sample, then click max_clicks times; returns the record.

    per_class (multi-class): each of the max_clicks steps is a round of one click on every class
    present that is still wrong, added one after the other, with one predict() at the end of the
    round; rec.clicks[k] is then the round's list of clicks and rec.seconds gets the round's time
    shared equally by its clicks (so s/click stays per click)."""
    h, w = sample.labels.shape
    rec = ImageRecord(sample.name, h, w)
    t0 = time.perf_counter()
    method.reset(sample.image, seed)
    rec.reset_seconds = time.perf_counter() - t0
    clicker = Clicker(sample.labels, sample.ignore_id)
    empty = 0 if task == 'binary' else -1
    pred = np.zeros((h, w), np.uint8)
    current = score(pred, sample, task) if task == 'binary' else 0.0
    for k in range(max_clicks):
        if per_class:
            clicks = clicker.click_round(np.full((h, w), empty) if k == 0 else pred)
        else:
            c = clicker.first_click(empty) if k == 0 else clicker.click(pred)
            clicks = [] if c is None else [c]
        if not clicks:
            rec.clicks.append(None)
            rec.iou.append(current)
            continue
        t0 = time.perf_counter()
        for c in clicks:
            method.add_click(c.x, c.y, c.label)
        pred = method.predict()
        rec.seconds.extend([(time.perf_counter() - t0) / len(clicks)] * len(clicks))
        current = score(pred, sample, task)
        rec.clicks.append([c.to_list() for c in clicks] if per_class else clicks[0].to_list())
        rec.iou.append(current)
    rec.final_mask = pred
    return rec


def run_method(
    method: Method,
    samples: list[Sample],
    task: str,
    max_clicks: int,
    seed: int,
    threshold: float,
    on_image: Callable[[ImageRecord], None] | None = None,
    progress: bool = True,
    per_class: bool = False,
) -> MethodRun:
    """Run one method and seed over the samples, showing the running mean NoC@threshold."""
    run = MethodRun(method.name, seed)
    bar = ProgressBar(len(samples), f'{method.name} seed {seed}', enabled=progress)
    tag = f'NoC@{round(threshold * 100)}'
    bar.update(0, f'{tag} -')
    for i, sample in enumerate(samples, start=1):
        rec = run_image(method, sample, task, max_clicks, seed, per_class)
        if on_image is not None:
            on_image(rec)
        rec.final_mask = None  # written by on_image; do not keep every mask in memory
        run.images.append(rec)
        running = np.mean([noc(r.iou, threshold, max_clicks) for r in run.images])
        bar.update(i, f'{tag} {running:.2f}')
    bar.close()
    return run
