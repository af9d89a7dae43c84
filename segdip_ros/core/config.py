"""The engine's configuration: one flat, frozen dataclass and the named presets built on it.

The paper (Malik et al., SegDIP) fixes the architecture and the losses; what it leaves open
(learning rate, iteration counts, working size, ...) is set by the presets and documented with
the benchmark figures that decided it in docs/benchmarks.md. A user picks a preset and overrides
a few fields (``default_preset(3, working_size=200)``); tuning constants that no preset changes
live beside the code that uses them (`refine.CutSettings`, `model` architecture constants).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

from .errors import ConfigError

__all__ = [
    'OVERRIDABLE',
    'PRESETS',
    'InputCode',
    'PresetName',
    'Refine',
    'SessionConfig',
    'config_from_dict',
    'config_to_dict',
    'default_preset',
    'paper_preset',
    'parse_overrides',
    'still_preset',
]

InputCode = Literal['meshgrid', 'meshgrid+rgb', 'rgb']
Refine = Literal['none', 'graphcut']
PresetName = Literal['default', 'still', 'paper']


@dataclass(frozen=True)
class SessionConfig:
    """Everything a TrainingSession needs. Field defaults are the paper's values."""

    num_classes: int = 2
    """N, the number of classes (2 or more; class 0 is the background by convention)."""
    width: int = 128
    """Filters per conv layer."""
    input_code: InputCode = 'meshgrid'
    """The network's input: the xy meshgrid (paper), the meshgrid plus the frame's RGB, or the
    frame's RGB alone (no position: the network recognises a class by its appearance
    wherever it moves to)."""
    seg_trains_trunk: bool = True
    """The segmentation loss trains the shared layers (paper) or only its own head."""
    skip_connections: bool = False
    """The decoder adds the encoder's features at half and a quarter of the network's size
    (`model.SKIP_SCALES`); the paper's network has none. Off, every output pixel comes from the
    coarsest features, upsampled: smooth labels that reach far from a click. On, the labels
    follow the frame's own edges and texture, what an appearance model of a tracked object
    needs (docs/benchmarks.md)."""
    working_size: int = 256
    """Long side of the working resolution in px (paper: below 300)."""
    network_scale: float = 1.0
    """The network runs at working_size x this; its probabilities are upsampled."""
    learning_rate: float = 0.001
    """AMSGrad learning rate."""
    tcl_lambda: float = 0.001
    """Temporal Consistency Loss weight of unannotated pixels (0 = no TCL)."""
    click_radius: int = 0
    """Radius of a click in working px (0 = one pixel, as in the paper)."""
    refine: Refine = 'none'
    """'graphcut': an edge-aware graph cut turns the network's output into the labels."""
    warmup_iterations: int = 200
    """Reconstruction-only iterations on a new scene, before annotations count."""
    iterations_first: int = 100
    """Iterations on a scene's first frame after the warm-up."""
    iterations_per_click: int = 50
    """Iterations added by every accepted annotation."""
    iterations_per_frame: int = 30
    """Tracking: iterations on each new frame before it is labelled and the next one taken."""
    device: str = 'auto'
    """'auto' (CUDA when usable), 'cpu', 'cuda' or 'cuda:N'."""
    seed: int = 0
    """Seed of the network's initial weights (everything else is deterministic)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        _check(
            2 <= self.num_classes <= 254,
            f'num_classes must be in [2, 254] (255 marks unlabelled), got {self.num_classes}',
        )
        _check(1 <= self.width <= 1024, f'width must be in [1, 1024], got {self.width}')
        _check(
            self.input_code in get_args(InputCode),
            f'input_code must be one of {get_args(InputCode)}, got {self.input_code!r}',
        )
        _check(
            16 <= self.working_size <= 4096,
            f'working_size must be in [16, 4096], got {self.working_size}',
        )
        _check(
            0.1 <= self.network_scale <= 1.0,
            f'network_scale must be in [0.1, 1], got {self.network_scale}',
        )
        _check(
            0.0 < self.learning_rate <= 1.0,
            f'learning_rate must be in (0, 1], got {self.learning_rate}',
        )
        _check(
            0.0 <= self.tcl_lambda <= 1.0, f'tcl_lambda must be in [0, 1], got {self.tcl_lambda}'
        )
        _check(
            0 <= self.click_radius <= 64,
            f'click_radius must be in [0, 64], got {self.click_radius}',
        )
        _check(
            self.refine in get_args(Refine),
            f'refine must be one of {get_args(Refine)}, got {self.refine!r}',
        )
        for name in (
            'warmup_iterations',
            'iterations_first',
            'iterations_per_click',
            'iterations_per_frame',
        ):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and 0 <= value <= 1_000_000,
                f'{name} must be an integer in [0, 1000000], got {value!r}',
            )

    def with_classes(self, num_classes: int) -> SessionConfig:
        """The same configuration for another number of classes."""
        return replace(self, num_classes=num_classes)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def paper_preset(num_classes: int = 2, **overrides: Any) -> SessionConfig:
    """The configuration as the paper writes it: width 128, xy input, one-pixel clicks, the
    network's argmax as the labels."""
    return _build(SessionConfig(num_classes=num_classes), overrides)


def default_preset(num_classes: int = 2, **overrides: Any) -> SessionConfig:
    """The engine's default, for live camera streams (tracking) and clicks.

    A narrow network (32) at half of a 160 px working size, fed the frame's colours with the
    meshgrid, trains fast enough on a CPU; the graph cut gives the labels their edges. In a
    video, 5 iterations per frame with the motion-compensated target keep the labels on the
    objects at camera rates (docs/benchmarks.md). Skip connections make the network a sharper
    appearance model of what it tracks: DAVIS from the first-frame mask, mean J 0.795 against
    0.772 without them (seeds 0-2); on still photos they cost clicks to 85 % (coco_dev NoC@85
    6.75 against 5.70, the same NoC@90 and area under the IoU curve), so `still` has none."""
    cfg = SessionConfig(
        num_classes=num_classes,
        width=32,
        input_code='meshgrid+rgb',
        seg_trains_trunk=False,
        skip_connections=True,
        working_size=160,
        network_scale=0.5,
        learning_rate=0.01,
        click_radius=2,
        refine='graphcut',
        warmup_iterations=300,
        iterations_per_frame=5,
    )
    return _build(cfg, overrides)


def still_preset(num_classes: int = 2, **overrides: Any) -> SessionConfig:
    """The paper's xy-only input code on the default's network without its skip connections,
    for still images. On coco_dev (20 photos, one thread) it reaches 90 % IoU in fewer clicks
    than the default (NoC@90 8.40 against 8.60) and 85 % in more (NoC@85 6.80 against 6.75);
    the frame's colours in the input and the skip connections are what tracking needs."""
    return _build(
        replace(default_preset(num_classes), input_code='meshgrid', skip_connections=False),
        overrides,
    )


def _build(cfg: SessionConfig, overrides: dict[str, Any]) -> SessionConfig:
    known = {f.name for f in fields(SessionConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f'unknown configuration field(s) {unknown}; known: {sorted(known)}')
    cfg = replace(cfg, **overrides)
    cfg.validate()
    return cfg


PRESETS: dict[str, Callable[..., SessionConfig]] = {
    'default': default_preset,
    'still': still_preset,
    'paper': paper_preset,
}


def config_to_dict(cfg: SessionConfig) -> dict[str, Any]:
    """Plain dict (JSON-safe), stored in every checkpoint."""
    return asdict(cfg)


def config_from_dict(data: dict[str, Any]) -> SessionConfig:
    """Inverse of config_to_dict; unknown keys or bad values raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f'a configuration must be a dict, got {type(data).__name__}')
    return _build(SessionConfig(), dict(data))


# fields a 'name=value' override may set (the others have parameters of their own in the node)
OVERRIDABLE = {
    f.name: str(f.type)
    for f in fields(SessionConfig)
    if f.name not in ('num_classes', 'device', 'working_size')
}


def parse_overrides(items: Any) -> tuple[tuple[str, Any], ...]:
    """['name=value', ...] (the node's engine_overrides, the tools' --engine) -> ((name, typed
    value), ...). ValueError naming the bad item; the values are checked by the preset."""
    out: list[tuple[str, Any]] = []
    for item in items or ():
        name, sep, text = str(item).partition('=')
        name, text = name.strip(), text.strip()
        if not sep or name not in OVERRIDABLE:
            raise ValueError(
                f"engine override {item!r} is not 'name=value' with a name of "
                f'{sorted(OVERRIDABLE)}'
            )
        kind = OVERRIDABLE[name]
        value: Any
        try:
            if kind == 'bool':
                if text.lower() not in ('true', 'false'):
                    raise ValueError('not true or false')
                value = text.lower() == 'true'
            elif kind == 'int':
                value = int(text)
            elif kind == 'float':
                value = float(text)
            else:
                value = text
        except ValueError as err:
            raise ValueError(f'engine override {item!r}: {err}') from err
        out.append((name, value))
    return tuple(out)
