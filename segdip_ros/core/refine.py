"""Edge-aware refinement of the network's class probabilities: the session's `refine` step.

The network's output is smooth and ignores object edges. The graph cut of `graphcut.py` keeps the
network's probabilities as a prior in its energy and adds what the network lacks: per-class colour
models and a contrast-sensitive boundary term, with the annotations as hard constraints. Used
when `SessionConfig.refine == 'graphcut'`.
"""
from __future__ import annotations

import numpy as np

from .graphcut import prior_graph_cut

__all__ = ['graphcut_refine', 'MIN_CLASS_SHARE']

MIN_CLASS_SHARE = 0.005   # a class without seeds competes when the network gives it this share


def graphcut_refine(rgb: np.ndarray, probs: np.ndarray, seeds: np.ndarray,
                    prior_weight: float = 1.0, keep: float = 0.1) -> np.ndarray:
    """Refined (N, h, w) probabilities.

    rgb: (h, w, 3) uint8 at working resolution; probs: (N, h, w) network probabilities at the
    same size; seeds: (h, w) int annotations (-1 unlabelled, else the class id). The classes
    that compete are those with seeds plus those the network predicts on at least
    MIN_CLASS_SHARE of the pixels (so unannotated tracking frames are refined too). The result
    is the cut's labelling as one-hot, mixed with `keep` of the network's probabilities so that
    downstream users still see its confidence. Returns `probs` itself when fewer than two
    classes compete.
    """
    n = probs.shape[0]
    argmax = probs.argmax(axis=0)
    share = np.bincount(argmax.ravel(), minlength=n) / argmax.size
    competing = set(np.flatnonzero(share >= MIN_CLASS_SHARE)) | set(np.unique(seeds[seeds >= 0]))
    if len(competing) < 2:
        return probs
    labels = prior_graph_cut(rgb, probs, seeds, prior_weight=prior_weight,
                             classes=sorted(int(c) for c in competing))
    onehot = (labels[None] == np.arange(n)[:, None, None]).astype(np.float32)
    return (1.0 - keep) * onehot + keep * probs.astype(np.float32)
