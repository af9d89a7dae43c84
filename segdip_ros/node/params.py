# SPDX-License-Identifier: Apache-2.0
"""Parameters of the segdip node: declarations with descriptors, validation, engine config.

Why a module of its own: the node must refuse a bad value with a reason, both at start-up
(raise, the node does not start) and on a live `ros2 param set` (SetParametersResult with the
reason). One pure function, :func:`check_settings`, does both, and it is testable without a node.

Engine parameters whose default is 0 (or -1) mean "the preset's value", so the lead can tune
`segdip_ros.core.default_preset` without the node's defaults drifting from it.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType)

from segdip_ros.core import PRESETS, ConfigError, SessionConfig, resolve_device
from segdip_ros.node.state import Schedule
from segdip_ros.ros.image_plane import DEFAULT_PLANE_FRAME, DEFAULT_PLANE_SCALE, class_topic_names

__all__ = ['NodeSettings', 'ParamSpec', 'PARAMS', 'LIVE_PARAMS', 'declare_all', 'read_settings',
           'check_settings', 'engine_config', 'schedule_for', 'parse_color', 'DEFAULT_PALETTE']

# Distinct, readable on camera images; class 0 (background) is a cool blue.
DEFAULT_PALETTE = ('#3c64ff', '#ff3c3c', '#32c832', '#ffc81e', '#c83cff', '#1ec8c8', '#ff8c1e',
                   '#a0a0a0', '#8c501e', '#ff78c8')
_HEX = re.compile(r'^#?([0-9a-fA-F]{6})$')


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: default, description, live or read-only, optional numeric range."""

    default: Any
    description: str
    live: bool = False
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None

    def descriptor(self, name: str) -> ParameterDescriptor:
        d = ParameterDescriptor(name=name, description=self.description, read_only=not self.live)
        if isinstance(self.default, list):
            d.type = ParameterType.PARAMETER_STRING_ARRAY
        if self.int_range is not None:
            d.integer_range = [IntegerRange(from_value=self.int_range[0],
                                            to_value=self.int_range[1], step=0)]
        if self.float_range is not None:
            d.floating_point_range = [FloatingPointRange(from_value=self.float_range[0],
                                                         to_value=self.float_range[1], step=0.0)]
        return d


_RO = '(read-only: needs a restart)'
PARAMS: dict[str, ParamSpec] = {
    'num_classes': ParamSpec(2, f'number of classes, >= 2 {_RO}', int_range=(2, 254)),
    'class_names': ParamSpec(['background', 'object'],
                             f'class names by id; missing ones become class_<id> {_RO}'),
    'class_colors': ParamSpec(list(DEFAULT_PALETTE[:2]),
                              "overlay colours '#rrggbb' by class id; missing ones from a palette",
                              live=True),
    'active_class': ParamSpec(1, 'class of clicks/strokes/boxes that carry no class', live=True),
    'stroke_width': ParamSpec(3.0, 'width in px of strokes from ~/stroke', live=True,
                              float_range=(0.5, 100.0)),
    'preset': ParamSpec('default', "engine preset: 'default' (tracking), 'still' (still images: "
                        f"xy-only input code) or 'paper' {_RO}"),
    'device': ParamSpec('auto', f"'auto', 'cpu', 'cuda' or 'cuda:N' {_RO}"),
    'working_size': ParamSpec(0, f'long side of the working resolution in px, 0 = preset {_RO}',
                              int_range=(0, 4096)),
    'width': ParamSpec(0, f'filters per conv layer, 0 = preset {_RO}', int_range=(0, 1024)),
    'network_scale': ParamSpec(0.0, 'the network runs at working_size x this (1 = paper), '
                               f'0 = preset (0.5) {_RO}', float_range=(0.0, 1.0)),
    'refine': ParamSpec('', "'graphcut' (edge-aware graph cut on the network's probabilities), "
                        f"'none', or '' = preset {_RO}"),
    'refine_merge': ParamSpec(True, 'graph cut only: after the first click on a frame, a click '
                              'changes the mask only in the regions it touches (progressive '
                              f'merge) {_RO}'),
    'refine_click_edge_cost': ParamSpec(-1.0, 'graph cut only: a click\'s class spreads along '
                                        'paths whose steps cost 1 + this x the colour gradient, '
                                        'so it stops at edges; 0 = straight-line nearest click, '
                                        f'-1 = preset (0.3) {_RO}', float_range=(-1.0, 100.0)),
    'refine_network_weight': ParamSpec(-1.0, "graph cut only: exponent of the network's "
                                       "probabilities in the cut's prior once the operator has "
                                       'corrected a cut of the frame (0 = clicks and colours '
                                       f'alone), -1 = preset (0.75) {_RO}',
                                       float_range=(-1.0, 10.0)),
    'refine_network_weight_first': ParamSpec(-1.0, 'graph cut only: the same exponent until '
                                             "the frame's first correction, -1 = preset (0.5) "
                                             f'{_RO}', float_range=(-1.0, 10.0)),
    'refine_click_confidence': ParamSpec(-1.0, "graph cut only: the nearest click's class gets "
                                         'odds c : 1 - c against each other class in the '
                                         f'prior (0 = no click prior), -1 = preset (0.9) {_RO}',
                                         float_range=(-1.0, 0.999)),
    'learning_rate': ParamSpec(0.0, 'AMSGrad learning rate, 0 = preset (applies at the next '
                               'reset or new scene)', live=True, float_range=(0.0, 1.0)),
    'tcl': ParamSpec(True, 'temporal consistency loss on/off (applies at the next reset)',
                     live=True),
    'tcl_lambda': ParamSpec(-1.0, 'TCL weight of unannotated pixels, -1 = preset (applies at the '
                            'next reset)', live=True, float_range=(-1.0, 1.0)),
    'warmup_iterations': ParamSpec(-1, 'reconstruction-only iterations on a new scene, '
                                   '-1 = preset (applies at the next reset)', live=True,
                                   int_range=(-1, 100000)),
    'iterations_per_click': ParamSpec(-1, 'iterations added per accepted annotation, -1 = preset',
                                      live=True, int_range=(-1, 100000)),
    'iterations_first': ParamSpec(100, 'iterations on the first frame after the warm-up',
                                  live=True, int_range=(0, 1000000)),
    'frame_switch_iterations': ParamSpec(30, 'tracking: iterations per frame before switching '
                                         'to the newest one', live=True, int_range=(1, 1000000)),
    'mode': ParamSpec('tracking', "'tracking' (follow the stream) or 'still' (keep one frame "
                      'until ~/next_frame)', live=True),
    'publish_rate': ParamSpec(5.0, 'Hz of mask/overlay/reconstruction/confidence while training',
                              live=True, float_range=(0.1, 100.0)),
    'session_dir': ParamSpec('', f'folder for checkpoint, annotation log and ~/save; empty = no '
                             f'persistence {_RO}'),
    'autosave_period': ParamSpec(30.0, 's between periodic checkpoints (0 = only on annotations)',
                                 live=True, float_range=(0.0, 3600.0)),
    'image_transport': ParamSpec('raw', f"'raw' (image) or 'compressed' (image/compressed) {_RO}"),
    'torch_threads': ParamSpec(0, f'torch CPU threads, 0 = torch default {_RO}',
                               int_range=(0, 256)),
    'image_plane_stride': ParamSpec(2, 'keep every n-th pixel in ~/image_plane', live=True,
                                    int_range=(1, 64)),
    'image_plane_rate': ParamSpec(2.0, 'Hz of ~/image_plane, 0 = off', live=True,
                                  float_range=(0.0, 30.0)),
    'image_plane_scale': ParamSpec(DEFAULT_PLANE_SCALE, 'metres per pixel of ~/image_plane',
                                   live=True, float_range=(1e-5, 10.0)),
    'image_plane_frame': ParamSpec(DEFAULT_PLANE_FRAME, 'TF frame of ~/image_plane', live=True),
    'jpeg_quality': ParamSpec(80, 'JPEG quality of ~/overlay/compressed', live=True,
                              int_range=(1, 100)),
    'autostart': ParamSpec(True, 'configure and activate at start-up; false: the node waits '
                           f'unconfigured for a lifecycle manager {_RO}'),
}
LIVE_PARAMS = frozenset(n for n, s in PARAMS.items() if s.live)


@dataclass(frozen=True)
class NodeSettings:
    """A validated snapshot of every parameter (names as in PARAMS)."""

    num_classes: int
    class_names: tuple[str, ...]
    class_colors: tuple[tuple[int, int, int], ...]
    active_class: int
    stroke_width: float
    preset: str
    device: str
    working_size: int
    width: int
    network_scale: float
    refine: str
    refine_merge: bool
    refine_click_edge_cost: float
    refine_network_weight: float
    refine_network_weight_first: float
    refine_click_confidence: float
    learning_rate: float
    tcl: bool
    tcl_lambda: float
    warmup_iterations: int
    iterations_per_click: int
    iterations_first: int
    frame_switch_iterations: int
    mode: str
    publish_rate: float
    session_dir: str
    autosave_period: float
    image_transport: str
    torch_threads: int
    image_plane_stride: int
    image_plane_rate: float
    image_plane_scale: float
    image_plane_frame: str
    jpeg_quality: int
    autostart: bool


def parse_color(text: str) -> tuple[int, int, int]:
    """'#rrggbb' (or 'rrggbb') -> (r, g, b); ValueError naming the bad text."""
    m = _HEX.match(str(text).strip())
    if not m:
        raise ValueError(f"colour {text!r} is not '#rrggbb'")
    v = int(m.group(1), 16)
    return ((v >> 16) & 255, (v >> 8) & 255, v & 255)


def declare_all(node: Any) -> None:
    """Declare every parameter of PARAMS on `node` with its descriptor."""
    for name, spec in PARAMS.items():
        node.declare_parameter(name, spec.default, spec.descriptor(name))


def read_settings(get: Callable[[str], Any], overrides: dict[str, Any] | None = None
                  ) -> NodeSettings:
    """Build and validate settings from `get(name) -> value` plus pending `overrides`.

    Raises ValueError with the reason when a value (or a combination) is invalid.
    """
    raw = {name: get(name) for name in PARAMS}
    raw.update(overrides or {})
    return check_settings(raw)


def _choice(raw: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = str(raw[name])
    if value not in allowed:
        raise ValueError(f'{name} must be one of {", ".join(allowed)}; got {value!r}')
    return value


# float parameters where -1 means the preset's value and any other negative is a mistake
_PRESET_WHEN_MINUS_ONE = ('refine_click_edge_cost', 'refine_network_weight',
                          'refine_network_weight_first', 'refine_click_confidence', 'tcl_lambda')


def _preset_or_own(raw: dict[str, Any], name: str) -> float:
    """The value, refused when negative but not -1: -0.5 is not 'the preset' by accident."""
    value = float(raw[name])
    if value < 0 and value != -1.0:
        raise ValueError(f'{name} must be -1 (preset) or >= 0, got {value}')
    return value


def check_settings(raw: dict[str, Any]) -> NodeSettings:
    """Validate raw parameter values; returns NodeSettings or raises ValueError(reason)."""
    n = int(raw['num_classes'])
    if not 2 <= n <= 254:
        raise ValueError(f'num_classes must be in [2, 254] (255 marks unlabelled), got {n}')
    names = [str(x) for x in raw['class_names']]
    if len(names) > n:
        raise ValueError(f'class_names has {len(names)} names for num_classes={n}')
    names += [f'class_{i}' for i in range(len(names), n)]
    class_topic_names(names)  # ValueError when two names give one topic token
    colors = [parse_color(c) for c in raw['class_colors']]
    if len(colors) > n:
        raise ValueError(f'class_colors has {len(colors)} colours for num_classes={n}')
    colors += [parse_color(DEFAULT_PALETTE[i % len(DEFAULT_PALETTE)])
               for i in range(len(colors), n)]
    active = int(raw['active_class'])
    if not 0 <= active < n:
        raise ValueError(f'active_class must be in [0, {n - 1}], got {active}')
    preset = _choice(raw, 'preset', tuple(PRESETS))
    refine = _choice(raw, 'refine', ('', 'none', 'graphcut'))
    mode = _choice(raw, 'mode', ('tracking', 'still'))
    transport = _choice(raw, 'image_transport', ('raw', 'compressed'))
    device = str(raw['device'])
    try:
        resolve_device(device)
    except ConfigError as err:
        raise ValueError(str(err)) from err
    if not str(raw['image_plane_frame']).strip():
        raise ValueError('image_plane_frame must not be empty')
    preset_or_own = {name: _preset_or_own(raw, name) for name in _PRESET_WHEN_MINUS_ONE}
    if not 1 <= int(raw['jpeg_quality']) <= 100:
        raise ValueError(f'jpeg_quality must be in [1, 100], got {raw["jpeg_quality"]}')
    if float(raw['publish_rate']) <= 0:
        raise ValueError(f'publish_rate must be > 0 Hz, got {raw["publish_rate"]}')
    settings = NodeSettings(
        num_classes=n, class_names=tuple(names), class_colors=tuple(colors), active_class=active,
        stroke_width=float(raw['stroke_width']), preset=preset, device=device,
        working_size=int(raw['working_size']),
        width=int(raw['width']), network_scale=float(raw['network_scale']), refine=refine,
        refine_merge=bool(raw['refine_merge']),
        learning_rate=float(raw['learning_rate']), tcl=bool(raw['tcl']),
        **preset_or_own, warmup_iterations=int(raw['warmup_iterations']),
        iterations_per_click=int(raw['iterations_per_click']),
        iterations_first=int(raw['iterations_first']),
        frame_switch_iterations=int(raw['frame_switch_iterations']), mode=mode,
        publish_rate=float(raw['publish_rate']), session_dir=str(raw['session_dir']),
        autosave_period=float(raw['autosave_period']), image_transport=transport,
        torch_threads=int(raw['torch_threads']),
        image_plane_stride=int(raw['image_plane_stride']),
        image_plane_rate=float(raw['image_plane_rate']),
        image_plane_scale=float(raw['image_plane_scale']),
        image_plane_frame=str(raw['image_plane_frame']),
        jpeg_quality=int(raw['jpeg_quality']), autostart=bool(raw['autostart']))
    try:
        engine_config(settings).validate()
    except ConfigError as err:
        raise ValueError(str(err)) from err
    return settings


def engine_config(s: NodeSettings) -> SessionConfig:
    """The engine configuration: the preset, with every non-default parameter applied."""
    cfg = PRESETS[s.preset](s.num_classes, device=s.device)
    top: dict[str, Any] = {}
    if s.working_size > 0:
        top['working_size'] = s.working_size
    if s.learning_rate > 0:
        top['learning_rate'] = s.learning_rate
    if s.network_scale > 0:
        top['network_scale'] = s.network_scale
    if s.refine:
        top['refine'] = s.refine
    top['refine_merge'] = s.refine_merge
    for name in ('refine_click_edge_cost', 'refine_network_weight',
                 'refine_network_weight_first', 'refine_click_confidence'):
        if getattr(s, name) >= 0:
            top[name] = getattr(s, name)
    if s.warmup_iterations >= 0:
        top['warmup_iterations'] = s.warmup_iterations
    if s.iterations_per_click >= 0:
        top['iterations_per_click'] = s.iterations_per_click
    model = cfg.model if s.width <= 0 else dataclasses.replace(cfg.model, width=s.width)
    loss = dataclasses.replace(cfg.loss, tcl=s.tcl)
    if s.tcl_lambda >= 0:
        loss = dataclasses.replace(loss, tcl_lambda=s.tcl_lambda)
    return dataclasses.replace(cfg, model=model, loss=loss, **top)


def schedule_for(s: NodeSettings) -> Schedule:
    """The training thread's iteration counts and periods from the settings."""
    return Schedule(mode=s.mode, frame_switch_iterations=s.frame_switch_iterations,
                    iterations_first=s.iterations_first,
                    iterations_per_click=engine_config(s).iterations_per_click,
                    publish_period=1.0 / s.publish_rate, autosave_period=s.autosave_period)
