# SPDX-License-Identifier: Apache-2.0
"""SegDIP wrapped as a benchmark Method: one TrainingSession per image, trained from the clicks.

reset(): set_image + warmup (reconstruction only). add_click(): add a Click, train for
`iterations_per_click` steps, or for `seconds_per_click` of wall-clock time when that is set
(the interactive setting: a user waits a fixed time, not a fixed count), then refine(): the
engine's frame-switch rule for one annotation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from segdip_ros.core.tracking import TrackSettings

from .base import Method, MethodFactory, MethodSettings

if TYPE_CHECKING:
    from segdip_ros.core import CutSettings, SessionConfig, TrainingSession

__all__ = ['SEGDIP_METHODS', 'TIMED_CHUNK', 'SegDipMethod', 'segdip_factory']

TIMED_CHUNK = 5  # iterations between clock checks in --seconds-per-click mode

ConfigMaker = Callable[[int], 'SessionConfig']
CutMaker = Callable[[], 'CutSettings']


class SegDipMethod:
    """A TrainingSession behind the Method protocol (binary: class 1 is the object)."""

    learned = True
    multiclass = True

    def __init__(
        self,
        name: str,
        make_config: ConfigMaker,
        settings: MethodSettings,
        make_cut: CutMaker | None = None,
        track: TrackSettings | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._make_config = make_config
        self._make_cut = make_cut
        self._track = track
        self._session: TrainingSession | None = None
        self._iterations = 0

    def config(self, seed: int) -> SessionConfig:
        """The preset for this run: the run's working size, seed and training budget imposed."""
        s = self.settings
        cfg = self._make_config(s.num_classes)
        cfg = replace(cfg, seed=int(seed), working_size=s.working_size, device=s.device)
        if s.iterations_per_click is not None:
            cfg = replace(cfg, iterations_per_click=s.iterations_per_click)
        if s.warmup_iterations is not None:
            cfg = replace(cfg, warmup_iterations=s.warmup_iterations)
        if s.click_radius is not None:
            cfg = replace(cfg, click_radius=s.click_radius)
        cfg.validate()
        return cfg

    def reset(self, image: np.ndarray, seed: int) -> None:
        from segdip_ros.core import TrainingSession

        cfg = self.config(seed)
        self._iterations = cfg.iterations_per_click
        self._session = TrainingSession(
            cfg, None if self._make_cut is None else self._make_cut(), self._track
        )
        self._session.set_image(image)
        self._session.warmup()

    def add_click(self, x: int, y: int, label: int) -> None:
        from segdip_ros.core import Click

        s = self._require()
        s.add_annotation(Click(x=float(x), y=float(y), class_id=int(label)))
        budget = self.settings.seconds_per_click
        if budget is None:
            s.step(self._iterations)
        else:
            start = time.perf_counter()
            while time.perf_counter() - start < budget:
                s.step(TIMED_CHUNK)
        s.refine()

    def predict(self) -> np.ndarray:
        labels = self._require().predict().labels
        if self.settings.num_classes == 2:
            return (labels == 1).astype(np.uint8)
        return labels.astype(np.uint8)

    def _require(self) -> TrainingSession:
        if self._session is None:
            raise RuntimeError('reset(image, seed) must be called before clicks or predict()')
        return self._session


def segdip_factory(
    make_config: ConfigMaker,
    name: str = 'segdip',
    make_cut: CutMaker | None = None,
    track: TrackSettings | None = None,
) -> MethodFactory:
    """Factory for the registry: `make_config(num_classes) -> SessionConfig`, and optionally
    the graph cut's and the tracking settings (ablations)."""

    def build(settings: MethodSettings) -> Method:
        return SegDipMethod(name, make_config, settings, make_cut, track)

    return build


def _default(n: int) -> SessionConfig:
    from segdip_ros.core import default_preset

    return default_preset(num_classes=n)


def _paper(n: int) -> SessionConfig:
    from segdip_ros.core import paper_preset

    return paper_preset(num_classes=n)


def _still(n: int) -> SessionConfig:
    """The default without the RGB frame in the input code."""
    from segdip_ros.core import still_preset

    return still_preset(num_classes=n)


def _variant(**overrides: object) -> ConfigMaker:
    """The default with some SessionConfig fields replaced (ablation rows)."""

    def make(n: int) -> SessionConfig:
        return replace(_default(n), **overrides)

    return make


def _cut(**overrides: object) -> CutMaker:
    """The default graph cut with some CutSettings replaced (ablation rows)."""

    def make() -> CutSettings:
        from segdip_ros.core import CutSettings

        return replace(CutSettings(), **overrides)

    return make


SEGDIP_METHODS: dict[str, MethodFactory] = {
    'segdip-fullres': segdip_factory(_variant(network_scale=1.0), 'segdip-fullres'),
    'segdip-raw': segdip_factory(_variant(refine='none'), 'segdip-raw', _cut(teaches=0.0)),
    'segdip-noteach': segdip_factory(_default, 'segdip-noteach', _cut(teaches=0.0)),
    'segdip-nomerge': segdip_factory(_default, 'segdip-nomerge', _cut(merge=False)),
    'segdip-bilinear': segdip_factory(
        _default, 'segdip-bilinear', track=TrackSettings(upsample_radius=0)
    ),
    'segdip-meshgrid': segdip_factory(_still, 'segdip-meshgrid'),
    'segdip-rgb': segdip_factory(_variant(input_code='rgb'), 'segdip-rgb'),
    'segdip': segdip_factory(_default, 'segdip'),
    'segdip-paper': segdip_factory(_paper, 'segdip-paper'),
    'segdip-notcl': segdip_factory(_variant(tcl_lambda=0.0), 'segdip-notcl'),
}
