"""Segmentation metrics: IoU, mean IoU with an ignore label, DAVIS boundary F measure.

Pure numpy functions on label images of equal shape; used by tests, the benchmark and the
bag evaluation so that every figure in the project comes from the same code.
"""

from __future__ import annotations

import numpy as np

__all__ = ['boundary_f_measure', 'boundary_map', 'iou', 'mean_iou']


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f'prediction shape {a.shape} differs from ground truth {b.shape}')


def iou(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Intersection over union of two boolean masks (HxW), counting only `valid` pixels.

    Two empty masks have IoU 1.0 (nothing to find, nothing found).
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    _check_same_shape(pred, gt)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        pred = pred & valid
        gt = gt & valid
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pred & gt) / union)


def mean_iou(
    pred: np.ndarray,
    gt: np.ndarray,
    ignore_index: int | None = None,
    classes: list[int] | None = None,
) -> float:
    """Mean IoU over the classes present in `gt` (or the given `classes`), ignoring
    pixels where gt == ignore_index."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    _check_same_shape(pred, gt)
    valid = np.ones(gt.shape, bool) if ignore_index is None else gt != ignore_index
    if classes is None:
        classes = [int(c) for c in np.unique(gt[valid])]
    if not classes:
        return 1.0
    return float(np.mean([iou(pred == c, gt == c, valid) for c in classes]))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a boolean mask: pixels whose right, bottom or bottom-right
    neighbour differs (as in the DAVIS seg2bmap)."""
    m = np.asarray(mask, dtype=bool)
    e = np.zeros_like(m)
    s = np.zeros_like(m)
    se = np.zeros_like(m)
    e[:, :-1] = m[:, 1:]
    s[:-1, :] = m[1:, :]
    se[:-1, :-1] = m[1:, 1:]
    b = (m ^ e) | (m ^ s) | (m ^ se)
    b[-1, :] = m[-1, :] ^ e[-1, :]
    b[:, -1] = m[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def _dilate(b: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    if radius <= 0:
        return b
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(b.astype(np.uint8), k).astype(bool)


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """DAVIS boundary F measure of two boolean masks; the match tolerance is
    `bound_th` times the image diagonal (0.008 as in DAVIS), at least 1 px."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    _check_same_shape(pred, gt)
    radius = max(1, int(np.ceil(bound_th * np.hypot(*gt.shape))))
    pb = boundary_map(pred)
    gb = boundary_map(gt)
    n_p = np.count_nonzero(pb)
    n_g = np.count_nonzero(gb)
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    precision = np.count_nonzero(pb & _dilate(gb, radius)) / n_p
    recall = np.count_nonzero(gb & _dilate(pb, radius)) / n_g
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))
