# SPDX-License-Identifier: Apache-2.0
"""Registry of benchmarked methods: name -> factory(MethodSettings) -> Method.

The peers use OpenCV, scikit-image and the engine's graph cut (`core.refine`). To add a method,
e.g. an engine ablation, one line is enough:

    register('segdip-w64', segdip_factory(lambda n: default_preset(n, width=64)))
"""

from __future__ import annotations

from .base import Method, MethodFactory, MethodSettings
from .peers import GrabCutMethod, NearestClickMethod, NearestGraphCutMethod, RandomWalkerMethod
from .segdip_methods import SEGDIP_METHODS, segdip_factory

__all__ = ['METHODS', 'make_method', 'register', 'segdip_factory']

METHODS: dict[str, MethodFactory] = {
    'grabcut': lambda s: GrabCutMethod(s, nearest=False),
    'grabcut-nearest': lambda s: GrabCutMethod(s, nearest=True),
    'randomwalker': RandomWalkerMethod,
    'nearest': NearestClickMethod,
    'nearest-graphcut': NearestGraphCutMethod,
    **SEGDIP_METHODS,
}


def register(name: str, factory: MethodFactory) -> None:
    """Add (or replace) a method in the registry under `name`."""
    METHODS[name] = factory


def make_method(name: str, settings: MethodSettings) -> Method:
    """Build a registered method; KeyError names the known ones."""
    try:
        factory = METHODS[name]
    except KeyError:
        known = ', '.join(sorted(METHODS))
        raise KeyError(f'unknown method {name!r}; known: {known}') from None
    return factory(settings)
