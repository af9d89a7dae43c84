"""The SegDIP network: input code -> (RGB reconstruction, N-class segmentation logits).

Encoder: ENCODER_LAYERS convs; the first keeps full resolution and each later one halves it
(stride 2). Decoder: DECODER_LAYERS blocks of nearest-neighbour x2 upsampling + conv, so with
the paper's 4 + 3 layers the output is back at the input's resolution. (The paper's figure
leaves the first stride unspecified; 4 strided layers with 3 upsamplings would give a
half-resolution output.) BatchNorm + LeakyReLU after every conv, then two 1x1 conv heads.
With `skip_connections` (not in the paper) the decoder's outputs at half and a quarter of the
size get the encoder's of the same size added (U-Net's skips, summed rather than
concatenated, so the parameters and checkpoints stay the same).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import SessionConfig

__all__ = [
    'DOWNSAMPLING',
    'SegDipNet',
    'input_channels',
    'make_input_code',
    'meshgrid',
    'recolour_code',
]

ENCODER_LAYERS = 4  # the paper's
DECODER_LAYERS = 3
KERNEL_SIZE = 3  # Deep Image Prior's
LEAKY_SLOPE = 0.2  # Deep Image Prior's
DOWNSAMPLING = 2 ** (ENCODER_LAYERS - 1)  # input sides must be multiples of this
# Encoder outputs (by scale: 1 = full, 2 = half, 4 = quarter of the input's size) that a
# network with skip connections adds to the decoder's output of the same size. Not the full
# size: with it too, the network tracked no better (DAVIS from the first-frame mask, seed 0:
# mean J 0.796 against 0.797; from 5 clicks 0.625 against 0.625, docs/benchmarks.md).
SKIP_SCALES = (2, 4)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    # BatchNorm without running stats: one image per batch, so train and predict use the same
    # (batch) statistics and a prediction never depends on how long the model has been running.
    return nn.Sequential(
        nn.Conv2d(
            cin,
            cout,
            KERNEL_SIZE,
            stride=stride,
            padding=KERNEL_SIZE // 2,
            padding_mode='reflect',
            bias=False,
        ),
        nn.BatchNorm2d(cout, track_running_stats=False),
        nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
    )


class SegDipNet(nn.Module):
    """Encoder-decoder CNN with an RGB head (sigmoid) and a class head (logits)."""

    def __init__(self, cfg: SessionConfig) -> None:
        super().__init__()
        w = cfg.width
        self.encoder = nn.ModuleList(
            [
                _block(input_channels(cfg) if i == 0 else w, w, 1 if i == 0 else 2)
                for i in range(ENCODER_LAYERS)
            ]
        )
        self.decoder = nn.ModuleList([_block(w, w, 1) for _ in range(DECODER_LAYERS)])
        self.upsample = nn.Upsample(scale_factor=2, mode='nearest')
        self.rgb_head = nn.Conv2d(w, 3, 1)
        self.seg_head = nn.Conv2d(w, cfg.num_classes, 1)
        self.seg_trains_trunk = cfg.seg_trains_trunk
        self.skip_scales = SKIP_SCALES if cfg.skip_connections else ()

    def forward(
        self, z: torch.Tensor, train_trunk: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z: (B, C, h, w), h and w multiples of DOWNSAMPLING. train_trunk: whether the class
        head's gradient reaches the shared layers (None: the configuration's choice).

        Returns rgb (B, 3, h, w) in [0, 1] and class logits (B, N, h, w).
        """
        x = z
        skips: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.encoder):
            x = block(x)  # (1, W, h / 2^i, w / 2^i)
            if 2**i in self.skip_scales:
                skips[2**i] = x
        scale = DOWNSAMPLING
        for block in self.decoder:
            x = block(self.upsample(x))  # (1, W, 2h, 2w)
            scale //= 2
            if scale in skips:
                x = x + skips[scale]
        trunk = self.seg_trains_trunk if train_trunk is None else train_trunk
        feats = x if trunk else x.detach()
        return torch.sigmoid(self.rgb_head(x)), self.seg_head(feats)


def meshgrid(height: int, width: int, device: torch.device | str = 'cpu') -> torch.Tensor:
    """(1, 2, height, width) x and y in [-1, 1]."""
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([gx, gy])[None]


def recolour_code(cfg: SessionConfig, code: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """`code` (from make_input_code) with its colour channels taken from `rgb` instead, the
    positions kept."""
    if cfg.input_code == 'meshgrid':
        return code
    if cfg.input_code == 'rgb':
        return rgb * 2 - 1
    return torch.cat([code[:, :2], rgb * 2 - 1], dim=1)


def input_channels(cfg: SessionConfig) -> int:
    """Number of channels of the input code."""
    return {'meshgrid': 2, 'meshgrid+rgb': 5, 'rgb': 3}[cfg.input_code]


def make_input_code(
    cfg: SessionConfig, rgb: torch.Tensor, grid: torch.Tensor | None = None
) -> torch.Tensor:
    """(1, C, h, w) input code at the size of `rgb` ((1, 3, h, w) in [0, 1]): the xy meshgrid
    in [-1, 1] (paper), with the frame's colours in [-1, 1] for 'meshgrid+rgb', or those
    colours alone for 'rgb'. `grid` ((1, 2, h, w)) replaces the meshgrid: in a video, each
    pixel's position in the labelled frame, carried along the optical flow."""
    if cfg.input_code == 'rgb':
        return rgb * 2 - 1
    if grid is None:
        _, _, height, width = rgb.shape
        grid = meshgrid(height, width, rgb.device)
    if cfg.input_code == 'meshgrid':
        return grid
    return torch.cat([grid, rgb * 2 - 1], dim=1)
