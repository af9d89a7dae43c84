"""The SegDIP network: xy input code -> (RGB reconstruction, N-class segmentation).

Encoder: `encoder_layers` convs; the first keeps full resolution and each later one halves it
(stride 2). Decoder: `decoder_layers` blocks of nearest-neighbour x2 upsampling + conv, so with
the paper's 4 + 3 layers the output is back at working resolution. (The paper's figure leaves the
first stride unspecified; 4 strided layers with 3 upsamplings would give a half-resolution output.)
BatchNorm + LeakyReLU after every conv, then two conv heads.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig

__all__ = ['SegDipNet', 'make_input_code', 'input_channels']


def _block(cin: int, cout: int, k: int, stride: int, slope: float) -> nn.Sequential:
    # BatchNorm without running stats: one image per batch, so train and predict use the same
    # (batch) statistics and a prediction never depends on how long the model has been running.
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, padding_mode='reflect', bias=False),
        nn.BatchNorm2d(cout, track_running_stats=False),
        nn.LeakyReLU(slope, inplace=True),
    )


class SegDipNet(nn.Module):
    """Encoder-decoder CNN with an RGB head (sigmoid) and a class head (logits)."""

    def __init__(self, cfg: ModelConfig, in_channels: int):
        super().__init__()
        cfg.validate()
        k, w, a = cfg.kernel_size, cfg.width, cfg.leaky_slope
        self.encoder = nn.ModuleList(
            [_block(in_channels if i == 0 else w, w, k, 1 if i == 0 else 2, a)
             for i in range(cfg.encoder_layers)])
        self.decoder = nn.ModuleList([_block(w, w, k, 1, a) for _ in range(cfg.decoder_layers)])
        self.upsample = nn.Upsample(scale_factor=2, mode='nearest')
        self.rgb_head = nn.Conv2d(w, 3, 1)
        if cfg.seg_head_hidden > 0:
            self.seg_head = nn.Sequential(
                nn.Conv2d(w + in_channels, cfg.seg_head_hidden, 3, padding=1, padding_mode='reflect'),
                nn.LeakyReLU(a, inplace=True),
                nn.Conv2d(cfg.seg_head_hidden, cfg.num_classes, 1))
            self._head_sees_code = True
        else:
            self.seg_head = nn.Conv2d(w, cfg.num_classes, 1)
            self._head_sees_code = False
        self.seg_trunk_grad = cfg.seg_trunk_grad
        self.downsampling = 2 ** (cfg.encoder_layers - 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z: (1, C, h, w) with h, w multiples of `downsampling`.

        Returns rgb (1, 3, h', w') in [0, 1] and class logits (1, N, h', w'), where h' = h when
        decoder_layers = encoder_layers - 1 (the paper's shape).
        """
        x = z
        for block in self.encoder:
            x = block(x)                      # (1, W, h / 2^i, w / 2^i)
        for block in self.decoder:
            x = block(self.upsample(x))       # (1, W, 2h, 2w)
        g = self.seg_trunk_grad
        # scale the segmentation gradient into the shared layers (0: the head sees detached features)
        feats = x if g >= 1.0 else (x.detach() if g <= 0.0 else x * g + x.detach() * (1.0 - g))
        if self._head_sees_code:
            feats = torch.cat([feats, z], dim=1)
        return torch.sigmoid(self.rgb_head(x)), self.seg_head(feats)


def input_channels(cfg: ModelConfig) -> int:
    """Number of channels of the input code for `cfg.input_code`."""
    if cfg.input_code == 'meshgrid':
        return 2
    if cfg.input_code == 'meshgrid+rgb':
        return 5
    if cfg.input_code == 'fourier':
        return 2 + 4 * cfg.fourier_bands
    return 32  # 'noise'


def make_input_code(cfg: ModelConfig, height: int, width: int, rgb: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """(1, C, height, width) input code: xy meshgrid in [-1, 1] (paper), optionally with Fourier
    bands or the image itself, or uniform noise (Deep Image Prior's alternative)."""
    ys = torch.linspace(-1.0, 1.0, height)
    xs = torch.linspace(-1.0, 1.0, width)
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    grid = torch.stack([gx, gy])[None]        # (1, 2, h, w)
    if cfg.input_code == 'meshgrid':
        return grid
    if cfg.input_code == 'meshgrid+rgb':
        if rgb is None:
            raise ValueError("input_code 'meshgrid+rgb' needs the image")
        return torch.cat([grid, rgb.cpu() * 2 - 1], dim=1)
    if cfg.input_code == 'fourier':
        bands = [grid]
        for i in range(cfg.fourier_bands):
            f = (2 ** i) * math.pi
            bands += [torch.sin(f * grid), torch.cos(f * grid)]
        return torch.cat(bands, dim=1)
    return torch.rand((1, 32, height, width), generator=generator) * 0.1
