"""The training objective of SegDIP, in one place: every optimiser step computes exactly this.

    loss = ||x* - x||^2                                  reconstruction (always)
         + TCL(S, T)                                     once the scene has annotations
         + teach * BCE(S, refined)                       self-training on the refined labels

reconstruction: mean squared error over pixels (the paper sums; a mean keeps the learning rate
independent of the working resolution).
TCL, the paper's Temporal Consistency Loss: sum_ij BCE(S_ij, T_ij) * M_ij with T the previous
prediction except at annotated pixels (the user's one-hot label), M = 1 on annotated pixels and
lambda elsewhere; normalised by the number of annotated pixels of the last annotated frame, so a
click weighs the same at every resolution and the loss keeps its scale on later (unannotated)
tracking frames. With lambda = 0 it is the paper's basic annotation loss.
Self-training: the network learns the graph cut's labelling of the frame everywhere, so what the
user saw is what the network keeps (refine.CutSettings.teaches).
On an unannotated video frame the TCL is motion-compensated (`tracking`): its target is the
previous frame's final labels pulled along the optical flow, and its per-pixel weight
(`Targets.weights`) the flow's confidence where that label is clear, 0 elsewhere; normalised by
the sum of the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ['LossTerms', 'Targets', 'binary_cross_entropy_map', 'objective', 'tcl_target']

_EPS = 1e-6


@dataclass(frozen=True)
class Targets:
    """What one iteration is trained towards (tensors at the network's resolution h x w).

    rgb: (1, 3, h, w) in [0, 1], the frame. labels: (h, w) int64 class ids, -1 unannotated.
    label_norm: annotated pixels of the last annotated frame (>= 1). previous: (1, N, h, w) the
    TCL's base T^k, or None before the first prediction. refined: (1, N, h, w) self-training
    target or None; teach: its weight. segment: False until the scene has annotations
    (reconstruction only). weights: (h, w) per-pixel weights of `labels` as the target (the
    motion-compensated TCL of a tracking frame), or None for the paper's TCL.
    """

    rgb: torch.Tensor
    labels: torch.Tensor
    label_norm: float
    previous: torch.Tensor | None
    refined: torch.Tensor | None
    teach: float
    tcl_lambda: float
    segment: bool
    weights: torch.Tensor | None = None


@dataclass(frozen=True)
class LossTerms:
    """The objective's value and its parts (tensors, not yet synchronised to the host)."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    segmentation: torch.Tensor


def binary_cross_entropy_map(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE summed over classes: (1, N, h, w) x (1, N, h, w) -> (1, h, w)."""
    p = probs.float().clamp(_EPS, 1 - _EPS)
    t = target.float()
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).sum(dim=1)


def tcl_target(
    previous: torch.Tensor | None, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """T^k: `previous` (1, N, h, w) everywhere, the one-hot user label where labels >= 0;
    uniform where there is no previous prediction (its weight is then 0)."""
    annotated = labels >= 0
    onehot = F.one_hot(labels.clamp(min=0), num_classes).permute(2, 0, 1)[None].float()
    base = (
        torch.full_like(onehot, 1.0 / num_classes)
        if previous is None
        else previous.detach().float()
    )
    return torch.where(annotated[None, None], onehot, base)


def objective(rgb: torch.Tensor, probs: torch.Tensor, targets: Targets) -> LossTerms:
    """The loss of one iteration from the network's outputs: rgb (1, 3, h, w) in [0, 1] and
    class probabilities (1, N, h, w)."""
    rec = F.mse_loss(rgb.float(), targets.rgb.float())
    seg = torch.zeros((), device=rgb.device)
    if targets.segment and targets.weights is not None:
        onehot = F.one_hot(targets.labels.clamp(min=0), probs.shape[1]).permute(2, 0, 1)[None]
        bce = binary_cross_entropy_map(probs, onehot.float())[0]
        seg = (bce * targets.weights).sum() / targets.weights.sum().clamp_min(1.0)
    elif targets.segment:
        labels = targets.labels
        lam = targets.tcl_lambda if targets.previous is not None else 0.0
        weights = torch.where(labels >= 0, 1.0, lam)
        target = tcl_target(targets.previous, labels, probs.shape[1])
        bce = binary_cross_entropy_map(probs, target)[0]
        seg = (bce * weights).sum() / max(1.0, float(targets.label_norm))
        if targets.refined is not None and targets.teach > 0:
            seg = seg + targets.teach * binary_cross_entropy_map(probs, targets.refined)[0].mean()
    return LossTerms(rec + seg, rec, seg)
