# SPDX-License-Identifier: Apache-2.0
"""Training-free peers of SegDIP, driven by the same clicks at the same working resolution.

- GrabCut (OpenCV) seeded from the clicks: unclicked pixels GC_PR_BGD, click disks GC_FGD/GC_BGD.
- GrabCut from the nearest-click map: each pixel GC_PR_FGD/GC_PR_BGD after its nearest click,
  click disks definite.
- scikit-image's random walker with the click disks as seeds (multi-class too).
- The nearest-click map itself, a floor any method should beat.
- The engine's graph cut (`core.graphcut`) with the nearest-click map as its prior instead of
  the network's probabilities: the ablation that shows what the network adds (multi-class too).

Each call to predict() recomputes from the clicks so far (no state carried between clicks), so
the result depends only on the clicks, as for the published baselines. Binary only: while the
user has given no negative click, the one-pixel image border is taken as background for the
nearest-click map and the random walker (with positive seeds only they would label the whole
image); GrabCut needs no such prior since its unclicked pixels are already "probably background".
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

from segdip_ros.core.refine import (
    CutSettings,
    graphcut_refine,
    nearest_click_map,
    with_border_background,
)

from .base import MethodSettings, to_original, to_working, to_working_xy

__all__ = [
    'GrabCutMethod',
    'NearestClickMethod',
    'NearestGraphCutMethod',
    'RandomWalkerMethod',
    'nearest_click_map',
]  # nearest_click_map lives in core.refine, re-exported here


class _ClickPeer:
    """Shared state of the peers: working image, original shape and the clicks so far."""

    name = 'peer'
    learned = False
    multiclass = True

    def __init__(self, settings: MethodSettings) -> None:
        self.settings = settings
        self.radius = settings.peer_click_radius
        self._image: np.ndarray | None = None
        self._orig_hw: tuple[int, int] = (0, 0)
        self._clicks: list[tuple[int, int, int]] = []  # (x, y, label) at working resolution
        self._seed = 0

    @property
    def binary(self) -> bool:
        return self.settings.num_classes == 2

    def reset(self, image: np.ndarray, seed: int) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'image must be HxWx3 uint8, got {image.shape} {image.dtype}')
        self._orig_hw = image.shape[:2]
        self._image = to_working(image, self.settings.working_size)
        self._clicks = []
        self._seed = int(seed)

    def add_click(self, x: int, y: int, label: int) -> None:
        if self._image is None:
            raise RuntimeError('reset(image, seed) must be called before add_click()')
        xw, yw = to_working_xy(x, y, self._orig_hw, self._image.shape[:2])
        self._clicks.append((xw, yw, int(label)))

    def predict(self) -> np.ndarray:
        if self._image is None:
            raise RuntimeError('reset(image, seed) must be called before predict()')
        return to_original(self._predict_working(), self._orig_hw)

    def _predict_working(self) -> np.ndarray:
        raise NotImplementedError

    def _seeds(self) -> np.ndarray:
        """HxW int32 at working size: label of the click disk covering a pixel, -1 elsewhere;
        later clicks overwrite earlier ones."""
        assert self._image is not None
        seeds = np.full(self._image.shape[:2], -1, np.int32)
        for x, y, label in self._clicks:
            if self.radius <= 0:
                seeds[y, x] = label
            else:
                cv2.circle(seeds, (x, y), self.radius, label, thickness=-1)
        return seeds

    def _with_border_prior(self, seeds: np.ndarray) -> np.ndarray:
        """Binary only: the image border as background while no negative click exists."""
        return with_border_background(seeds) if self.binary else seeds


class NearestClickMethod(_ClickPeer):
    """Labels of the nearest click: no image information at all."""

    name = 'nearest'

    def _predict_working(self) -> np.ndarray:
        labels = nearest_click_map(self._with_border_prior(self._seeds()))
        return np.clip(labels, 0, 255).astype(np.uint8)


class NearestGraphCutMethod(_ClickPeer):
    """The engine's refinement step with no network: the nearest-click map is its only prior.

    Everything else (colour models, boundary term, hard clicks, border prior, which classes
    compete, and with `merge` the progressive merge of each click's changes) is
    `core.refine.graphcut_refine` as the engine's default preset runs it: the ablation that
    shows what the network adds.
    """

    name = 'nearest-graphcut'

    def __init__(
        self,
        settings: MethodSettings,
        confidence: float | None = None,
        edge_cost: float | None = None,
        merge: bool = True,
    ) -> None:
        super().__init__(settings)
        engine = CutSettings()  # None: the engine default's click prior
        self.confidence = engine.click_confidence if confidence is None else confidence
        self.edge_cost = engine.click_edge_cost if edge_cost is None else edge_cost
        self.merge = merge
        self._shown: tuple[np.ndarray, np.ndarray] | None = None  # (labels, seeds)

    def reset(self, image: np.ndarray, seed: int) -> None:
        super().reset(image, seed)
        self._shown = None

    def _predict_working(self) -> np.ndarray:
        assert self._image is not None
        seeds = self._seeds()
        if (seeds < 0).all():
            return np.zeros(seeds.shape, np.uint8)
        refined = graphcut_refine(
            self._image,
            None,
            seeds,
            click_confidence=self.confidence,
            keep=0.0,
            num_classes=self.settings.num_classes,
            base=self._shown if self.merge else None,
            click_edge_cost=self.edge_cost,
        )
        labels = refined.argmax(axis=0).astype(np.uint8)
        self._shown = (labels, seeds)
        return labels


class GrabCutMethod(_ClickPeer):
    """OpenCV GrabCut (5 iterations, GMMs of 5 components) from a click-seeded mask."""

    multiclass = False

    def __init__(
        self, settings: MethodSettings, nearest: bool = False, iterations: int = 5
    ) -> None:
        super().__init__(settings)
        if settings.num_classes != 2:
            raise ValueError('GrabCut is a binary method; it cannot run a multi-class benchmark')
        self.nearest = nearest
        self.iterations = iterations
        self.name = 'grabcut-nearest' if nearest else 'grabcut'

    def _initial_mask(self) -> np.ndarray:
        seeds = self._seeds()
        if self.nearest:
            near = nearest_click_map(self._with_border_prior(seeds))
            mask = np.where(near == 1, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        else:
            mask = np.full(seeds.shape, cv2.GC_PR_BGD, np.uint8)
        mask[seeds == 1] = cv2.GC_FGD
        mask[seeds == 0] = cv2.GC_BGD
        return mask

    def _predict_working(self) -> np.ndarray:
        assert self._image is not None
        mask = self._initial_mask()
        fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        if fg.all() or not fg.any():
            return fg.astype(np.uint8)  # GrabCut needs samples of both sides
        cv2.setRNGSeed(self._seed)
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(self._image, mask, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            return fg.astype(np.uint8)  # too few samples for the GMMs: keep the seeding
        return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)


class RandomWalkerMethod(_ClickPeer):
    """skimage.segmentation.random_walker (beta 130) on the working RGB image scaled to [0, 1].

    mode 'bf' (a direct sparse solve) is exact and, at working size, about 30x faster than the
    conjugate-gradient modes, which converge slowly on high-contrast edges (measured 0.19 s vs
    5.7 s for 'cg_j' on a 160x144 image).
    """

    name = 'randomwalker'

    def __init__(self, settings: MethodSettings, beta: float = 130.0) -> None:
        super().__init__(settings)
        self.beta = beta

    def _predict_working(self) -> np.ndarray:
        from skimage.segmentation import random_walker

        assert self._image is not None
        seeds = self._with_border_prior(self._seeds())
        present = np.unique(seeds[seeds >= 0])
        if len(present) == 0:
            return np.zeros(seeds.shape, np.uint8)
        if len(present) == 1:
            return np.full(seeds.shape, present[0], np.uint8)
        # consecutive seed labels 1..K (0 = unseeded): skimage returns its labels compacted
        lut = np.zeros(int(present.max()) + 2, np.int32)
        lut[present + 1] = np.arange(1, len(present) + 1)
        data = self._image.astype(np.float64) / 255.0
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)  # seeds cut off from the rest
            out = random_walker(data, lut[seeds + 1], beta=self.beta, mode='bf', channel_axis=-1)
        return present[np.clip(out, 1, len(present)) - 1].astype(np.uint8)
