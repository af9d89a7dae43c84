"""Edge-aware refinement of the network's class probabilities (binary scenes).

The network's output is smooth and ignores object edges; GrabCut started from it snaps the
boundary to the image while keeping the network's decision of which regions are object.
Annotated pixels are hard constraints. Used only when `SessionConfig.refine == 'grabcut'`.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ['grabcut_refine']


def grabcut_refine(rgb: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                   iterations: int = 3, keep: float = 0.1) -> np.ndarray:
    """Refined (2, h, w) probabilities.

    rgb: (h, w, 3) uint8 image at working resolution; probs: (2, h, w) network probabilities;
    labels: (h, w) int annotations (-1 unlabelled, 0 background, 1 object). The result is the
    GrabCut labelling as one-hot, mixed with `keep` of the network's probabilities. Returns
    `probs` unchanged for more than 2 classes or when GrabCut has no seed of either kind.
    """
    if probs.shape[0] != 2:
        return probs
    mask = np.where(probs[1] > 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[labels == 1] = cv2.GC_FGD
    mask[labels == 0] = cv2.GC_BGD
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if fg.all() or not fg.any():
        return probs
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    try:
        cv2.grabCut(bgr, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return probs          # too few samples to fit the colour models: keep the network's
    obj = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    onehot = np.stack([1.0 - obj, obj])
    return (1.0 - keep) * onehot + keep * probs
