"""Typed, frozen configuration of the SegDIP engine, with named presets.

The paper (Malik et al., SegDIP) fixes the architecture and the losses; what it leaves open
(learning rate, clip value, iteration counts, ...) is set here and documented in the README
with the benchmark figures that decided it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import ConfigError

__all__ = ['ModelConfig', 'LossConfig', 'SessionConfig', 'paper_preset', 'default_preset',
           'still_preset', 'PRESETS', 'config_from_dict', 'config_to_dict']


@dataclass(frozen=True)
class ModelConfig:
    """Network shape. Paper values: width 128, 4 encoder and 3 decoder layers, meshgrid input."""

    num_classes: int = 2          # N, size of the segmentation head
    width: int = 128              # filters per conv layer
    encoder_layers: int = 4       # each halves the resolution (stride 2)
    decoder_layers: int = 3       # each doubles it (nearest-neighbour upsampling)
    kernel_size: int = 3
    leaky_slope: float = 0.2      # Deep Image Prior's default
    input_code: str = 'meshgrid'  # 'meshgrid' (paper), 'meshgrid+rgb', 'fourier', 'noise'
    fourier_bands: int = 0        # extra sin/cos bands of the meshgrid for 'fourier'
    seg_trunk_grad: float = 1.0   # scale of the segmentation gradient into the shared layers
                                  # (1 = paper; < 1 keeps the features on the image)
    seg_head_hidden: int = 0      # 0: 1x1 conv head (paper); > 0: 3x3 conv of this width first

    def validate(self) -> None:
        if self.num_classes < 2:
            raise ConfigError(f'num_classes must be >= 2, got {self.num_classes}')
        if self.width < 1:
            raise ConfigError(f'width must be >= 1, got {self.width}')
        if self.encoder_layers < self.decoder_layers:
            raise ConfigError(f'encoder_layers ({self.encoder_layers}) must be >= decoder_layers '
                              f'({self.decoder_layers})')
        if self.kernel_size % 2 != 1:
            raise ConfigError(f'kernel_size must be odd, got {self.kernel_size}')
        if not 0.0 <= self.seg_trunk_grad <= 1.0:
            raise ConfigError(f'seg_trunk_grad must be in [0, 1], got {self.seg_trunk_grad}')
        if self.input_code not in ('meshgrid', 'meshgrid+rgb', 'fourier', 'noise'):
            raise ConfigError(f'unknown input_code {self.input_code!r}')


@dataclass(frozen=True)
class LossConfig:
    """Loss weights. TCL lambda 0.001 is the paper's value."""

    reconstruction_weight: float = 1.0
    annotation_weight: float = 1.0
    tcl: bool = True              # Temporal Consistency Loss on/off
    tcl_lambda: float = 0.001     # weight of unannotated pixels in the TCL
    tcl_momentum: float = 0.0     # 0: target = previous iteration's prediction (paper);
                                  # m > 0: an exponential average of past predictions
    border_background: float = 0.0  # weight of a weak 'class 0' label on the image border
                                    # while the frame has clicks but none of class 0
    tcl_anchor: str = 'previous'  # 'previous' (paper): T^k from iteration k; 'snapshot': the
                                  # prediction from just before the annotations last changed

    def validate(self) -> None:
        if self.tcl_lambda < 0 or self.tcl_lambda > 1:
            raise ConfigError(f'tcl_lambda must be in [0, 1], got {self.tcl_lambda}')
        if not 0.0 <= self.tcl_momentum < 1.0:
            raise ConfigError(f'tcl_momentum must be in [0, 1), got {self.tcl_momentum}')
        if self.tcl_anchor not in ('previous', 'snapshot'):
            raise ConfigError(f"tcl_anchor must be 'previous' or 'snapshot', got {self.tcl_anchor!r}")
        if self.reconstruction_weight < 0 or self.annotation_weight < 0:
            raise ConfigError('loss weights must be >= 0')


@dataclass(frozen=True)
class SessionConfig:
    """Everything a TrainingSession needs: model, loss, optimiser and runtime choices."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    working_size: int = 256        # long side of the working resolution, px (paper: < 300)
    learning_rate: float = 0.01
    grad_clip: float = 1.0         # max global grad norm
    warmup_iterations: int = 200   # reconstruction-only iterations on a new image
    iterations_per_click: int = 50
    click_radius: int = 0          # px at working resolution; 0 = one pixel (paper)
    device: str = 'auto'           # 'auto', 'cpu', 'cuda', 'cuda:N'
    amp: str = 'auto'              # 'auto', 'off', 'bf16', 'fp16'
    seed: int = 0
    refine: str = 'none'           # post-processing of probabilities: 'none', 'graphcut'
    refine_network_weight: float = 1.0   # exponent of the network's probabilities in the prior
    refine_network_weight_first: float = -1.0   # the exponent until the frame's first
                                   # correction, an annotation added after a cut was shown
                                   # (< 0: refine_network_weight throughout)
    refine_click_confidence: float = 0.9  # nearest-click prior on annotated frames (0 = none):
                                   # odds c : 1 - c against each other class
    refine_click_edge_cost: float = 0.0   # > 0: "nearest click" is nearest along the image,
                                   # a step costing 1 + this x the colour gradient (0: straight)
    refine_teaches: float = 0.0    # weight of a loss pulling the network towards its last
                                   # refined prediction (self-training; 0 = off)
    refine_teaches_next: float = 0.0   # the same on the next frame, where the last refined
                                   # mask of the annotated frame is one frame stale
    refine_merge: bool = False     # after the first annotation of a frame, a new one changes the
                                   # refined labels only in the regions of change it touches
    network_scale: float = 1.0     # the network runs at working_size * this (1 = paper);
                                   # its probabilities are upsampled bilinearly to the image

    def validate(self) -> None:
        self.model.validate()
        self.loss.validate()
        if not 16 <= self.working_size <= 4096:
            raise ConfigError(f'working_size must be in [16, 4096], got {self.working_size}')
        if self.learning_rate <= 0:
            raise ConfigError(f'learning_rate must be > 0, got {self.learning_rate}')
        if self.grad_clip <= 0:
            raise ConfigError(f'grad_clip must be > 0, got {self.grad_clip}')
        if self.click_radius < 0:
            raise ConfigError(f'click_radius must be >= 0, got {self.click_radius}')
        if self.amp not in ('auto', 'off', 'bf16', 'fp16'):
            raise ConfigError(f"amp must be 'auto', 'off', 'bf16' or 'fp16', got {self.amp!r}")
        if self.refine not in ('none', 'graphcut'):
            raise ConfigError(f"refine must be 'none' or 'graphcut', got {self.refine!r}")
        if min(self.refine_network_weight, self.refine_teaches, self.refine_teaches_next,
               self.refine_click_edge_cost) < 0:
            raise ConfigError('refine_network_weight, refine_teaches, refine_teaches_next and '
                              'refine_click_edge_cost must be >= 0')
        if not 0.0 <= self.refine_click_confidence < 1.0:
            raise ConfigError('refine_click_confidence must be in [0, 1), got '
                              f'{self.refine_click_confidence}')
        if not 0.1 <= self.network_scale <= 1.0:
            raise ConfigError(f'network_scale must be in [0.1, 1], got {self.network_scale}')

    def with_classes(self, num_classes: int) -> SessionConfig:
        """The same configuration for another number of classes."""
        return replace(self, model=replace(self.model, num_classes=num_classes))


def paper_preset(num_classes: int = 2, **overrides: Any) -> SessionConfig:
    """The configuration as the paper writes it: width 128, one-pixel clicks, plain TCL."""
    cfg = SessionConfig(model=ModelConfig(num_classes=num_classes, width=128),
                        loss=LossConfig(), working_size=256, learning_rate=0.001,
                        warmup_iterations=200, iterations_per_click=50, click_radius=0)
    return replace(cfg, **overrides)


def default_preset(num_classes: int = 2, **overrides: Any) -> SessionConfig:
    """The engine's tuned default (see README, 'Defaults and why')."""
    cfg = SessionConfig(model=ModelConfig(num_classes=num_classes, width=32, seg_trunk_grad=0.0,
                                          input_code='meshgrid+rgb'),
                        loss=LossConfig(), working_size=160, learning_rate=0.01,
                        warmup_iterations=300, iterations_per_click=50, click_radius=2,
                        network_scale=0.5, refine='graphcut', refine_network_weight=0.75,
                        refine_network_weight_first=0.5,
                        refine_click_confidence=0.9,
                        refine_click_edge_cost=0.3,
                        refine_teaches=1.0,
                        refine_teaches_next=0.3, refine_merge=True)
    return replace(cfg, **overrides)


def still_preset(num_classes: int = 2, **overrides: Any) -> SessionConfig:
    """The default for labelling still images: the paper's xy-only input code. On 40 coco_dev
    photos it needed fewer clicks (NoC@90 17.5 vs 18.8); the RGB frame in the input code is what
    makes tracking hold (synthetic sequence: 0.911 vs 0.730), so the default keeps it."""
    cfg = default_preset(num_classes)
    cfg = replace(cfg, model=replace(cfg.model, input_code='meshgrid'))
    return replace(cfg, **overrides)


PRESETS = {'paper': paper_preset, 'default': default_preset, 'still': still_preset}


def config_to_dict(cfg: SessionConfig) -> dict[str, Any]:
    """Plain nested dict (JSON-safe), stored in every checkpoint."""
    return asdict(cfg)


def config_from_dict(data: dict[str, Any]) -> SessionConfig:
    """Inverse of config_to_dict; unknown keys raise ConfigError."""
    try:
        d = dict(data)
        model = ModelConfig(**d.pop('model', {}))
        loss = LossConfig(**d.pop('loss', {}))
        return SessionConfig(model=model, loss=loss, **d)
    except TypeError as err:
        raise ConfigError(f'bad configuration dict: {err}') from err
