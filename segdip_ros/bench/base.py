# SPDX-License-Identifier: Apache-2.0
"""The Method protocol every benchmarked segmenter implements, and the working-size helpers.

A method works on the ORIGINAL image and original click coordinates; it downsizes to the
shared working size internally and returns its labels at original size, so every method is
scored by the same code at the same resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

__all__ = [
    'DEFAULT_CLICK_RADIUS',
    'DEFAULT_WORKING_SIZE',
    'WORKING_MULTIPLE',
    'Method',
    'MethodFactory',
    'MethodSettings',
    'to_original',
    'to_working',
    'to_working_xy',
    'working_shape',
]

# Defaults of segdip_ros.core.default_preset (working size, click radius), repeated here so
# building a peer never needs an engine config.
DEFAULT_WORKING_SIZE = 160
DEFAULT_CLICK_RADIUS = 2
WORKING_MULTIPLE = 8  # 2 ** (encoder_layers - 1) for the presets' 4 encoder layers


@runtime_checkable
class Method(Protocol):
    """An interactive segmenter driven by clicks.

    learned: True when results depend on the seed (repeated with --seeds).
    multiclass: True when it accepts class ids beyond 0/1.
    """

    name: str
    learned: bool
    multiclass: bool

    def reset(self, image: np.ndarray, seed: int) -> None:
        """Start on a new image (HxWx3 uint8 RGB, original size); forget every click."""

    def add_click(self, x: int, y: int, label: int) -> None:
        """A click at original pixel (x = column, y = row); label = class id
        (binary: 1 / True positive, 0 / False negative)."""

    def predict(self) -> np.ndarray:
        """HxW uint8 labels at original size (binary: 0/1)."""


@dataclass(frozen=True)
class MethodSettings:
    """What the run imposes on every method, so peers are compared on equal terms.

    working_size: long side of the working image, px. click_radius: disk radius of a click at
    working resolution (None: each SegDIP preset's own, DEFAULT_CLICK_RADIUS for peers).
    iterations_per_click / seconds_per_click / warmup_iterations: SegDIP training budget (None:
    the preset's value; seconds_per_click, when set, replaces the iteration count).
    """

    num_classes: int = 2
    working_size: int = DEFAULT_WORKING_SIZE
    click_radius: int | None = None
    iterations_per_click: int | None = None
    seconds_per_click: float | None = None
    warmup_iterations: int | None = None
    device: str = 'auto'

    @property
    def peer_click_radius(self) -> int:
        return DEFAULT_CLICK_RADIUS if self.click_radius is None else self.click_radius


MethodFactory = Callable[[MethodSettings], Method]


def working_shape(
    height: int, width: int, working_size: int, multiple: int = WORKING_MULTIPLE
) -> tuple[int, int]:
    """(h, w) as the engine picks it (core.session.working_size_for): long side at most
    working_size, never upscaled, aspect kept, each side snapped to a multiple of `multiple`."""
    scale = min(1.0, working_size / max(height, width))

    def snap(v: float) -> int:
        return max(multiple, int(round(v / multiple)) * multiple)

    return snap(height * scale), snap(width * scale)


def to_working(image: np.ndarray, working_size: int) -> np.ndarray:
    """Image (HxW or HxWxC) resized to the working shape, area-averaged when shrinking."""
    h, w = working_shape(image.shape[0], image.shape[1], working_size)
    if (h, w) == image.shape[:2]:
        return image.copy()
    interp = cv2.INTER_AREA if h * w < image.shape[0] * image.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp)


def to_working_xy(
    x: float, y: float, orig_hw: tuple[int, int], work_hw: tuple[int, int]
) -> tuple[int, int]:
    """Original pixel -> working pixel, the mapping the engine's rasteriser uses."""
    (oh, ow), (h, w) = orig_hw, work_hw
    return (
        min(w - 1, max(0, int((x + 0.5) * w / ow))),
        min(h - 1, max(0, int((y + 0.5) * h / oh))),
    )


def to_original(labels: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
    """Working-resolution labels -> original size, as the engine upsamples its probabilities:
    each class's indicator is resized bilinearly and the largest wins (ties: lower id).

    Nearest-neighbour upsampling would cost the peers accuracy SegDIP does not lose: on
    coco_dev at working size 160, the ground truth itself round-trips to IoU < 0.90 on 4 of 40
    images with nearest, 1 of 40 with this (mean 0.952 vs 0.961).
    """
    oh, ow = orig_hw
    labels = labels.astype(np.uint8)
    if labels.shape[:2] == (oh, ow):
        return labels
    classes = np.unique(labels)
    if len(classes) == 1:
        return np.full((oh, ow), classes[0], np.uint8)
    scores = np.stack(
        [
            cv2.resize((labels == c).astype(np.float32), (ow, oh), interpolation=cv2.INTER_LINEAR)
            for c in classes
        ]
    )
    return classes[scores.argmax(axis=0)].astype(np.uint8)
