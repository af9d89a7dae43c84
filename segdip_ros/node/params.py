# SPDX-License-Identifier: Apache-2.0
"""Parameters of the segdip node: declarations with descriptors, validation, engine config.

Why a module of its own: the node must refuse a bad value with a reason, both at start-up
(raise, the node does not start) and on a live `ros2 param set` (SetParametersResult with the
reason). One pure function, :func:`check_settings`, does both, and it is testable without a node.

The engine is configured by a preset (`preset`) plus the working size; the presets' values are
written into the descriptions, generated from `segdip_ros.core.PRESETS`, so they cannot drift.
The one sentinel: 0 means "the preset's value".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from segdip_ros.core import PRESETS, ConfigError, SessionConfig, resolve_device
from segdip_ros.core.config import parse_overrides
from segdip_ros.node.keyframes import KEYFRAME_MODES
from segdip_ros.node.state import Schedule
from segdip_ros.ros.image_plane import class_topic_names

__all__ = [
    'AUTOSAVE_PERIOD',
    'DEFAULT_PALETTE',
    'LIVE_PARAMS',
    'PARAMS',
    'STROKE_WIDTH',
    'Mode',
    'NodeSettings',
    'ParamSpec',
    'Transport',
    'check_settings',
    'declare_all',
    'engine_config',
    'node_value',
    'parse_color',
    'parse_overrides',
    'read_settings',
    'schedule_for',
]

# Distinct, readable on camera images; class 0 (background) is a cool blue.
DEFAULT_PALETTE = (
    '#3c64ff',
    '#ff3c3c',
    '#32c832',
    '#ffc81e',
    '#c83cff',
    '#1ec8c8',
    '#ff8c1e',
    '#a0a0a0',
    '#8c501e',
    '#ff78c8',
)
_HEX = re.compile(r'^#?([0-9a-fA-F]{6})$')
Mode = Literal['tracking', 'lockstep', 'still']
Transport = Literal['raw', 'compressed']
STROKE_WIDTH = 3.0  # px, strokes from ~/stroke (PolygonStamped carries no width)
AUTOSAVE_PERIOD = 30.0  # s between periodic checkpoints (and one after every annotation change)


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
            d.integer_range = [
                IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=0)
            ]
        if self.float_range is not None:
            d.floating_point_range = [
                FloatingPointRange(
                    from_value=self.float_range[0], to_value=self.float_range[1], step=0.0
                )
            ]
        return d


def _preset_values(field: str) -> str:
    """'default 160, still 160, paper 256': a field's value in every preset."""
    return ', '.join(f'{name} {getattr(make(), field)}' for name, make in PRESETS.items())


_RO = '(read-only: needs a restart)'
PARAMS: dict[str, ParamSpec] = {
    'num_classes': ParamSpec(2, f'number of classes, >= 2 {_RO}', int_range=(2, 254)),
    'class_names': ParamSpec(
        ['background', 'object'], f'class names by id; missing ones become class_<id> {_RO}'
    ),
    'class_colors': ParamSpec(
        list(DEFAULT_PALETTE[:2]),
        "overlay colours '#rrggbb' by class id; missing ones from a palette",
        live=True,
    ),
    'active_class': ParamSpec(
        1, 'class of clicks, strokes and boxes that carry no class', live=True
    ),
    'preset': ParamSpec(
        'default',
        "engine preset: 'default' (camera streams and clicks), "
        "'still' (still images) or 'paper' (as the paper writes it) "
        f'{_RO}',
    ),
    'working_size': ParamSpec(
        0,
        'long side of the working resolution in px, 0 = the '
        f"preset's ({_preset_values('working_size')}) {_RO}",
        int_range=(0, 4096),
    ),
    'engine_overrides': ParamSpec(
        [],
        "engine configuration fields as 'name=value' on top of "
        "the preset, e.g. ['iterations_per_click=30', "
        "'warmup_iterations=100'] (docs/ENGINE_API.md lists them) "
        f'{_RO}',
    ),
    'device': ParamSpec('auto', f"'auto' (CUDA when usable), 'cpu', 'cuda' or 'cuda:N' {_RO}"),
    'torch_threads': ParamSpec(
        0, f'torch CPU threads, 0 = torch default {_RO}', int_range=(0, 256)
    ),
    'mode': ParamSpec(
        'tracking',
        "'tracking' (follow the stream; faster than training, every frame taken gets "
        "labels and trains 2 iterations), 'lockstep' (follow the stream, every frame "
        'trains its whole budget first, as segdip_eval_bag; for segdip_replay_bag --step) '
        "or 'still' (keep one frame until ~/next_frame)",
        live=True,
    ),
    'image_transport': ParamSpec('raw', f"'raw' (image) or 'compressed' (image/compressed) {_RO}"),
    'publish_rate': ParamSpec(
        5.0,
        'Hz of the outputs while training (labels are also published '
        "at the end of every frame's budget)",
        live=True,
        float_range=(0.1, 100.0),
    ),
    'session_dir': ParamSpec(
        '', f'folder for checkpoint, annotation log and ~/save; empty = no persistence {_RO}'
    ),
    'dataset_keyframes': ParamSpec(
        'off',
        "when frames are added to session_dir/dataset besides ~/save: 'off'; 'annotated' (a "
        "frame that got annotations, at the end of its training budget); '<N>s' (the current "
        "frame every N seconds while labels are shown), or both, e.g. 'annotated,10s'",
        live=True,
    ),
    'jpeg_quality': ParamSpec(
        80, 'JPEG quality of ~/overlay/compressed', live=True, int_range=(1, 100)
    ),
    'autostart': ParamSpec(
        True,
        'configure and activate at start-up; false: the node waits '
        f'unconfigured for a lifecycle manager {_RO}',
    ),
}
LIVE_PARAMS = frozenset(n for n, s in PARAMS.items() if s.live)


@dataclass(frozen=True)
class NodeSettings:
    """A validated snapshot of every parameter (names as in PARAMS)."""

    num_classes: int
    class_names: tuple[str, ...]
    class_colors: tuple[tuple[int, int, int], ...]
    active_class: int
    preset: str
    working_size: int
    engine_overrides: tuple[tuple[str, Any], ...]
    device: str
    torch_threads: int
    mode: Mode
    image_transport: Transport
    publish_rate: float
    session_dir: str
    jpeg_quality: int
    autostart: bool
    dataset_keyframes: str = 'off'
    dataset_period: float = 0.0


def parse_color(text: str) -> tuple[int, int, int]:
    """'#rrggbb' (or 'rrggbb') -> (r, g, b); ValueError naming the bad text."""
    m = _HEX.match(str(text).strip())
    if not m:
        raise ValueError(f"colour {text!r} is not '#rrggbb'")
    v = int(m.group(1), 16)
    return ((v >> 16) & 255, (v >> 8) & 255, v & 255)


def declare_all(node: Any) -> None:
    """Declare every parameter of PARAMS on `node` with its descriptor. An empty list default
    is declared by type (rclpy would read [] as a byte array)."""
    from rclpy.parameter import Parameter

    for name, spec in PARAMS.items():
        default = spec.default
        if isinstance(default, list) and not default:
            default = Parameter.Type.STRING_ARRAY
        node.declare_parameter(name, default, spec.descriptor(name))


def node_value(node: Any) -> Callable[[str], Any]:
    """`get(name)` reading `node`'s parameter, the default where a typed parameter was
    declared without a value (an empty list)."""
    from rclpy.exceptions import ParameterUninitializedException

    def get(name: str) -> Any:
        try:
            return node.get_parameter(name).value
        except ParameterUninitializedException:
            return PARAMS[name].default

    return get


def read_settings(
    get: Callable[[str], Any], overrides: dict[str, Any] | None = None
) -> NodeSettings:
    """Build and validate settings from `get(name) -> value` plus pending `overrides`.

    Raises ValueError with the reason when a value (or a combination) is invalid.
    """
    raw = {name: get(name) for name in PARAMS}
    raw.update(overrides or {})
    return check_settings(raw)


def _choice(raw: dict[str, Any], name: str, allowed: tuple[str, ...]) -> Any:
    value = str(raw[name])
    if value not in allowed:
        raise ValueError(f'{name} must be one of {", ".join(allowed)}; got {value!r}')
    return value


def parse_keyframes(text: Any) -> tuple[str, float]:
    """'off' | 'annotated' | '<N>s' | 'annotated,<N>s' -> (mode, period in s, 0 = none)."""
    mode, period = 'off', 0.0
    for item in str(text).replace(' ', '').split(','):
        if item in KEYFRAME_MODES:
            mode = item if item != 'off' else mode
        elif item.endswith('s'):
            try:
                period = float(item[:-1])
            except ValueError:
                period = -1.0
            if not 0 < period <= 86400:
                raise ValueError(
                    f"dataset_keyframes: {item!r} is not a period like '10s' (0 < N <= 86400)"
                )
        else:
            raise ValueError(
                f"dataset_keyframes must be 'off', 'annotated', '<N>s' or "
                f"'annotated,<N>s'; got {text!r}"
            )
    return mode, period


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
    colors += [
        parse_color(DEFAULT_PALETTE[i % len(DEFAULT_PALETTE)]) for i in range(len(colors), n)
    ]
    active = int(raw['active_class'])
    if not 0 <= active < n:
        raise ValueError(f'active_class must be in [0, {n - 1}], got {active}')
    device = str(raw['device'])
    try:
        resolve_device(device)
    except ConfigError as err:
        raise ValueError(str(err)) from err
    if not 1 <= int(raw['jpeg_quality']) <= 100:
        raise ValueError(f'jpeg_quality must be in [1, 100], got {raw["jpeg_quality"]}')
    if float(raw['publish_rate']) <= 0:
        raise ValueError(f'publish_rate must be > 0 Hz, got {raw["publish_rate"]}')
    working_size = int(raw['working_size'])
    if working_size < 0:
        raise ValueError(f"working_size must be 0 (the preset's) or > 0, got {working_size}")
    threads = int(raw['torch_threads'])
    keyframes, period = parse_keyframes(raw['dataset_keyframes'])
    if threads < 0:
        raise ValueError(f'torch_threads must be >= 0, got {threads}')
    settings = NodeSettings(
        num_classes=n,
        class_names=tuple(names),
        class_colors=tuple(colors),
        active_class=active,
        preset=_choice(raw, 'preset', tuple(PRESETS)),
        working_size=working_size,
        engine_overrides=parse_overrides(raw.get('engine_overrides') or ()),
        device=device,
        torch_threads=threads,
        mode=_choice(raw, 'mode', get_args(Mode)),
        image_transport=_choice(raw, 'image_transport', get_args(Transport)),
        publish_rate=float(raw['publish_rate']),
        session_dir=str(raw['session_dir']),
        jpeg_quality=int(raw['jpeg_quality']),
        autostart=bool(raw['autostart']),
        dataset_keyframes=keyframes,
        dataset_period=period,
    )
    try:
        engine_config(settings)
    except ConfigError as err:
        raise ValueError(str(err)) from err
    return settings


def engine_config(s: NodeSettings) -> SessionConfig:
    """The engine configuration: the preset, with the working size and the overrides."""
    over: dict[str, Any] = {'device': s.device, **dict(s.engine_overrides)}
    if s.working_size > 0:
        over['working_size'] = s.working_size
    return PRESETS[s.preset](s.num_classes, **over)


def schedule_for(s: NodeSettings) -> Schedule:
    """What the training thread follows besides the engine's budgets."""
    return Schedule(
        mode=s.mode,
        publish_period=1.0 / s.publish_rate,
        autosave_period=AUTOSAVE_PERIOD,
        dataset_keyframes=s.dataset_keyframes,
        dataset_period=s.dataset_period,
    )
