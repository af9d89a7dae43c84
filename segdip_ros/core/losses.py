"""Loss functions of SegDIP, as pure functions returning scalar tensors.

reconstruction_loss: ||x* - x||^2, averaged over pixels (the paper sums; a mean keeps the
learning rate independent of the working resolution).
tcl_loss: the paper's Temporal Consistency Loss, sum_ij BCE(S_ij, T_ij) * M_ij, with T the
previous prediction except at annotated pixels (the user's one-hot label) and M = 1 on annotated
pixels, lambda elsewhere. Normalised by the number of annotated pixels (at least 1), so that a
click weighs the same at every resolution. With lambda = 0 it is the plain annotation loss of
the paper's basic setup (loss on annotated pixels only).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ['reconstruction_loss', 'tcl_target', 'tcl_loss', 'binary_cross_entropy_map']

_EPS = 1e-6


def reconstruction_loss(rgb_pred: torch.Tensor, rgb_target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of (1, 3, h, w) images in [0, 1]."""
    return F.mse_loss(rgb_pred.float(), rgb_target.float())


def binary_cross_entropy_map(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE summed over classes: (1, N, h, w) x (1, N, h, w) -> (1, h, w)."""
    p = probs.float().clamp(_EPS, 1 - _EPS)
    t = target.float()
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).sum(dim=1)


def tcl_target(previous_probs: torch.Tensor | None, labels: torch.Tensor,
               num_classes: int) -> torch.Tensor:
    """T^k: previous probabilities (1, N, h, w) everywhere, one-hot user labels where
    labels >= 0. With no previous prediction, unannotated pixels get a uniform target (their
    weight is then set to 0 by tcl_weights)."""
    annotated = labels >= 0                               # (h, w)
    onehot = F.one_hot(labels.clamp(min=0), num_classes).permute(2, 0, 1)[None].float()
    if previous_probs is None:
        base = torch.full_like(onehot, 1.0 / num_classes)
    else:
        base = previous_probs.detach().float()
    return torch.where(annotated[None, None], onehot, base)


def tcl_loss(probs: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
             normaliser: float) -> torch.Tensor:
    """sum_ij BCE(S_ij, T_ij) * M_ij / normaliser; weights M is (h, w), 1 on annotated pixels
    and lambda elsewhere. The session passes the number of annotated pixels of the last
    annotated frame, so the loss keeps its scale on later (unannotated) tracking frames."""
    bce = binary_cross_entropy_map(probs, target)[0]      # (h, w)
    return (bce * weights).sum() / max(1.0, float(normaliser))
