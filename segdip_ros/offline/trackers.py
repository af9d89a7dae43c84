# SPDX-License-Identifier: Apache-2.0
"""The methods `segdip_eval_bag` compares on a video, in one run: the engine and its peers.

Every method takes the frames in order, each with the annotations that belong to it (dicts of
the ~/annotations schema), and returns that frame's (H, W) uint8 class ids:

- `segdip`: the engine (`TrainingSession` driven by `core.FrameDriver`, the node's rule);
- `flow-cut`: a classical tracker with no network: frame 0 is the engine's graph cut without a
  network (the click prior, or the given mask); every later frame pulls the previous labels
  along OpenCV's DIS optical flow and runs the same cut with them as a 0.9 / 0.1 prior, its
  colour models refitted on each frame. The peer any online-trained network must beat;
- `identity`: frame 0's labels (as `flow-cut` makes them) copied to every frame: the floor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from segdip_ros.core import FrameDriver, TrainingSession, annotation_from_dict
from segdip_ros.core.annotations import Annotation, rasterise
from segdip_ros.core.errors import SegDipError
from segdip_ros.core.flow import FlowEstimator, to_grey, warp
from segdip_ros.core.graphcut import prior_graph_cut
from segdip_ros.core.model import DOWNSAMPLING
from segdip_ros.core.refine import CutSettings, graphcut_refine
from segdip_ros.core.session import working_size_for

__all__ = ['PEER_METHODS', 'EngineTracker', 'FlowCutTracker', 'IdentityTracker', 'Tracker']

WARP_CONFIDENCE = 0.9  # the flow-cut peer's prior: the warped label at 0.9, the others 0.1


class Tracker(Protocol):
    """A method under evaluation: frames in order, their labels out."""

    errors: list[str]

    def process(self, rgb: np.ndarray, annotations: Sequence[dict[str, Any]]) -> np.ndarray:
        """(H, W) uint8 class ids of this frame (255 = unlabelled)."""
        ...


class EngineTracker:
    """The engine, as the node runs it."""

    def __init__(self, session: TrainingSession, warmup: bool = True) -> None:
        self.driver = FrameDriver(session, warmup=warmup)
        self.session = session

    @property
    def errors(self) -> list[str]:
        return self.driver.errors

    def process(self, rgb: np.ndarray, annotations: Sequence[dict[str, Any]]) -> np.ndarray:
        return self.driver.process(rgb, annotations).labels


class FlowCutTracker:
    """Flow + graph cut, no network (see the module docstring)."""

    def __init__(
        self,
        num_classes: int = 2,
        working_size: int = 160,
        click_radius: int = 2,
        propagate: bool = True,
    ) -> None:
        self.num_classes = num_classes
        self.working_size = working_size
        self.click_radius = click_radius
        self.propagate = propagate
        self.errors: list[str] = []
        self._flow = FlowEstimator()
        self._prev_grey: np.ndarray | None = None
        self._labels: np.ndarray | None = None  # (h, w) int64 at working size
        self._frame = 0

    def process(self, rgb: np.ndarray, annotations: Sequence[dict[str, Any]]) -> np.ndarray:
        h, w = working_size_for(rgb.shape[0], rgb.shape[1], self.working_size, DOWNSAMPLING)
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        grey = to_grey(small)
        anns = self._parse(annotations, rgb.shape[:2])
        seeds = rasterise(anns, rgb.shape[:2], (h, w), self.click_radius)
        if self._labels is None:
            self._labels = self._first(small, seeds)
        elif self.propagate:
            assert self._prev_grey is not None
            self._labels = self._next(small, grey, seeds)
        self._prev_grey = grey
        self._frame += 1
        return self._full(self._labels, rgb.shape[:2])

    def _parse(
        self, annotations: Sequence[dict[str, Any]], size: tuple[int, int]
    ) -> list[Annotation]:
        out: list[Annotation] = []
        for d in annotations:
            if d.get('type') in ('undo', 'clear'):
                out = [] if d.get('type') == 'clear' else out[:-1]
                continue
            try:
                out.append(annotation_from_dict(d))
            except SegDipError as err:
                self.errors.append(f'frame {self._frame}: {err}')
        return out

    def _first(self, small: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        cut = CutSettings()
        if (seeds < 0).all():
            return np.zeros(seeds.shape, np.int64)
        refined = graphcut_refine(
            small,
            None,
            seeds,
            click_confidence=cut.click_confidence,
            num_classes=self.num_classes,
            click_edge_cost=cut.click_edge_cost,
        )
        return refined.argmax(axis=0).astype(np.int64)

    def _next(self, small: np.ndarray, grey: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        assert self._labels is not None and self._prev_grey is not None
        back = self._flow.flow(grey, self._prev_grey)
        n = self.num_classes
        onehot = (self._labels[..., None] == np.arange(n)).astype(np.float32)
        warped = warp(onehot, back).reshape(small.shape[0], small.shape[1], n)
        off = (1.0 - WARP_CONFIDENCE) / max(1, n - 1)
        prior = off + (WARP_CONFIDENCE - off) * np.moveaxis(warped, 2, 0)
        prior /= prior.sum(axis=0, keepdims=True)
        present = sorted(
            set(np.unique(prior.argmax(axis=0)).tolist())
            | set(np.unique(seeds[seeds >= 0]).tolist())
        )
        if len(present) < 2:
            return prior.argmax(axis=0).astype(np.int64)
        return prior_graph_cut(small, prior, seeds, classes=[int(c) for c in present])

    @staticmethod
    def _full(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        return cv2.resize(labels.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)


class IdentityTracker(FlowCutTracker):
    """Frame 0's labels, copied to every frame: what a method gets for doing nothing."""

    def __init__(
        self, num_classes: int = 2, working_size: int = 160, click_radius: int = 2
    ) -> None:
        super().__init__(num_classes, working_size, click_radius, propagate=False)
        self._first_full: np.ndarray | None = None

    def process(self, rgb: np.ndarray, annotations: Sequence[dict[str, Any]]) -> np.ndarray:
        if self._first_full is None:
            masks = [d for d in annotations if d.get('type') == 'mask']
            if masks:  # the given mask itself, at full resolution
                labels = annotation_from_dict(masks[-1]).labels
                self._first_full = np.where(labels == 255, 0, labels).astype(np.uint8)
            else:
                self._first_full = super().process(rgb, annotations)
        return self._first_full


PEER_METHODS: dict[str, Callable[[int, int], Tracker]] = {
    'flow-cut': lambda n, size: FlowCutTracker(n, size),
    'identity': lambda n, size: IdentityTracker(n, size),
}
