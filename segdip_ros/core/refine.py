"""Edge-aware refinement of the network's class probabilities: the session's `refine` step.

The network's output is smooth and ignores object edges. The graph cut of `graphcut.py` adds
what it lacks: per-class colour models and a contrast-sensitive boundary term, with the
annotations as hard constraints. Its prior combines two experts: the network's probabilities
(raised to `network_weight`) and, on a frame with annotations, the nearest-click map (the class
of the nearest annotated pixel gets `click_confidence`). On a frame without annotations (tracking)
the network is the only prior. Used when `SessionConfig.refine == 'graphcut'`; its tuning is
`CutSettings`, whose defaults are the values the benchmarks chose (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from .graphcut import NEIGHBOUR_OFFSETS, prior_graph_cut

__all__ = [
    'MIN_CLASS_SHARE',
    'CutSettings',
    'click_prior',
    'geodesic_click_map',
    'graphcut_refine',
    'merge_touched_changes',
    'nearest_click_map',
    'with_border_background',
]

MIN_CLASS_SHARE = 0.005  # a class without seeds competes when the network gives it this share


@dataclass(frozen=True)
class CutSettings:
    """How the session's graph cut uses the network, the clicks and what the user saw.

    network_weight: exponent of the network's probabilities in the cut's prior once the user
    has corrected a cut of this frame (an annotation added or undone after a refinement); before
    that `network_weight_first` (None: 0 with two classes, 0.5 with more): a network that
    knows little beyond the clicks drags the first cut towards its blob (DAVIS first frames from
    5 clicks: J 0.36 / 0.54 / 0.59 at 0.5, 0.65 / 0.53 / 0.68 at 0), while with several classes
    the clicks alone leave too much open (synthetic three-class scene from one stroke or box per
    class: mean IoU 0.41 at 0, above 0.8 at 0.5). After a correction the network has learned
    the cut being corrected and its weight keeps the next cut near that one.
    click_confidence: odds c : 1 - c of the nearest click's class in the prior (0 = no click
    prior); click_edge_cost: > 0 makes "nearest" nearest along the image (`geodesic_click_map`).
    merge: after a frame's first cut, a new annotation changes the labels only in the regions
    of change it touches (`merge_touched_changes`).
    teaches: weight of the self-training loss towards the refined labels on the annotated frame
    (the frames after it learn those labels pulled along the motion: `tracking`).
    """

    network_weight: float = 0.75
    network_weight_first: float | None = None
    click_confidence: float = 0.9
    click_edge_cost: float = 0.3
    merge: bool = True
    teaches: float = 1.0

    def first_weight(self, num_classes: int) -> float:
        """The network's weight before a frame's first correction."""
        if self.network_weight_first is not None:
            return self.network_weight_first
        return 0.0 if num_classes == 2 else 0.5

    def __post_init__(self) -> None:
        if (
            min(
                self.network_weight,
                self.network_weight_first or 0.0,
                self.click_edge_cost,
                self.teaches,
            )
            < 0
        ):
            raise ValueError(f'cut weights must be >= 0: {self}')
        if not 0.0 <= self.click_confidence < 1.0:
            raise ValueError(f'click_confidence must be in [0, 1), got {self.click_confidence}')


def nearest_click_map(seeds: np.ndarray) -> np.ndarray:
    """Every pixel takes the label of its nearest seed pixel (seeds >= 0); all -1 if none."""
    unseeded = seeds < 0
    if unseeded.all():
        return seeds.copy()
    idx = ndimage.distance_transform_edt(unseeded, return_distances=False, return_indices=True)
    return seeds[idx[0], idx[1]]


def geodesic_click_map(seeds: np.ndarray, rgb: np.ndarray, edge_cost: float) -> np.ndarray:
    """Every pixel takes the label of the seed pixel nearest along a path through the image;
    all -1 if there is no seed.

    A step between 8-neighbours costs its length times 1 + edge_cost x the mean colour gradient
    of its two pixels (Sobel of the lightly blurred image, grey levels per pixel), so a click's
    class spreads within its region and stops at edges, where the Euclidean map
    (`nearest_click_map`) stops at the midpoint between clicks. One multi-source Dijkstra."""
    if (seeds < 0).all():
        return seeds.copy()
    h, w = seeds.shape
    blurred = cv2.GaussianBlur(rgb.astype(np.float32), (3, 3), 0)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3) / 4
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3) / 4
    cost = 1.0 + edge_cost * np.sqrt((gx**2 + gy**2).sum(axis=2))
    index = np.arange(h * w).reshape(h, w)
    rows, cols, weights = [], [], []
    for dy, dx in NEIGHBOUR_OFFSETS:
        a = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))  # pixel p
        b = (slice(dy, h), slice(max(0, dx), w + min(0, dx)))  # its neighbour p + (dy, dx)
        rows.append(index[a].ravel())
        cols.append(index[b].ravel())
        weights.append((np.hypot(dy, dx) * (cost[a] + cost[b]) / 2).ravel())
    graph = coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
        shape=(h * w, h * w),
    ).tocsr()
    _, _, sources = dijkstra(
        graph,
        directed=False,
        indices=np.flatnonzero(seeds.ravel() >= 0),
        min_only=True,
        return_predecessors=True,
    )
    return seeds.ravel()[sources].reshape(h, w)


def with_border_background(seeds: np.ndarray, always: bool = False) -> np.ndarray:
    """Binary scenes: the one-pixel image border as background (0) where it is not annotated.
    By default only while no pixel is annotated background (the benchmark peers' convention:
    positive clicks alone would make every pixel their nearest); `always` keeps it after the
    first negative click too (the engine's click prior, see graphcut_refine)."""
    if (seeds == 0).any() and not always:
        return seeds
    seeds = seeds.copy()
    border = np.zeros(seeds.shape, bool)
    border[[0, -1], :] = True
    border[:, [0, -1]] = True
    seeds[border & (seeds < 0)] = 0
    return seeds


def click_prior(
    seeds: np.ndarray,
    num_classes: int,
    confidence: float,
    rgb: np.ndarray | None = None,
    edge_cost: float = 0.0,
) -> np.ndarray | None:
    """(N, h, w) nearest-click probabilities; None with nothing to be nearest to.

    Nearest along the image (`geodesic_click_map`) when `rgb` is given and `edge_cost` > 0,
    else in a straight line (`nearest_click_map`).

    `confidence` is what the nearest annotated pixel's class gets in a binary scene; with more
    classes it keeps the same odds, confidence / (1 - confidence), against each other class
    (so 0.9 against 0.1 each, normalised). Splitting 1 - confidence among the others instead
    made the prior's pull grow with the number of classes (log-odds 4.5 instead of 2.2 with
    11 classes) and every cut more like the nearest-click map: CamVid mIoU after 3 clicks per
    class 0.512 -> 0.534 with the odds kept (0.542 in another run).
    Binary scenes: the border counts as a background click throughout (objects rarely fill the
    frame; on the 40 coco_dev photos this took the no-network cut from NoC@85/90 8.82 / 11.03
    to 7.17 / 9.45)."""
    if num_classes == 2:
        seeds = with_border_background(seeds, always=True)
    if rgb is not None and edge_cost > 0:
        near = geodesic_click_map(seeds, rgb, edge_cost)
    else:
        near = nearest_click_map(seeds)
    if (near < 0).all():
        return None
    scale = confidence + (num_classes - 1) * (1.0 - confidence)
    prior = np.full((num_classes,) + near.shape, (1.0 - confidence) / scale)
    np.put_along_axis(prior, near[None].astype(np.int64), confidence / scale, axis=0)
    return prior


def merge_touched_changes(base: np.ndarray, new: np.ndarray, touched: np.ndarray) -> np.ndarray:
    """FocalClick's progressive merge, for any number of classes: of the pixels whose label
    differs between `base` (the labelling the user saw when they annotated) and `new`, keep the
    connected regions of change (8-connected) that touch a `touched` pixel (an annotation added
    or removed since); everywhere else keep `base`. A click then corrects the region it was
    made on and cannot flip a distant, already correct part of the mask: on the 40 coco_dev
    photos the share of clicks that cost more than 0.05 IoU went from 0.113 to 0.086 for the
    cut without a network (NoC@90 9.45 -> 9.62), from 0.071 to 0.054 with it (one seed)."""
    changed = base != new
    regions, _ = ndimage.label(changed, structure=np.ones((3, 3), bool))
    hit = np.unique(regions[touched & changed])
    accept = np.isin(regions, hit[hit > 0])
    return np.where(accept, new, base)


def graphcut_refine(
    rgb: np.ndarray,
    probs: np.ndarray | None,
    seeds: np.ndarray,
    network_weight: float = 1.0,
    click_confidence: float = 0.0,
    keep: float = 0.1,
    num_classes: int | None = None,
    base: tuple[np.ndarray, np.ndarray] | None = None,
    click_edge_cost: float = 0.0,
) -> np.ndarray:
    """Refined (N, h, w) probabilities.

    rgb: (h, w, 3) uint8 at working resolution; probs: (N, h, w) network probabilities at the
    same size, or None for the click prior alone (the benchmark's no-network ablation); seeds:
    (h, w) int annotations (-1 unlabelled, else the class id); click_confidence 0: no click prior.
    The classes that compete are those with seeds plus those the prior's argmax gives at least
    MIN_CLASS_SHARE of the pixels (so unannotated tracking frames are refined too). The result is
    the cut's labelling as one-hot, mixed with `keep` of the prior so that downstream users still
    see a confidence. Returns the prior itself when fewer than two classes compete.
    base: (labels, seeds) the user last saw and annotated on; the cut's changes from those labels
    are then kept only where they touch the annotations changed since (`merge_touched_changes`).
    click_edge_cost > 0: the click prior's nearest click is the geodesic one (`click_prior`).
    """
    n = probs.shape[0] if probs is not None else int(num_classes or 2)
    log_prior = np.zeros((n,) + seeds.shape)
    if probs is not None:
        log_prior += network_weight * np.log(np.clip(probs.astype(np.float64), 1e-4, 1.0))
    clicks = (
        click_prior(seeds, n, click_confidence, rgb, click_edge_cost)
        if click_confidence > 0
        else None
    )
    if clicks is not None:
        log_prior += np.log(clicks)
    prior = np.exp(log_prior - log_prior.max(axis=0, keepdims=True))
    prior /= prior.sum(axis=0, keepdims=True)
    argmax = prior.argmax(axis=0)
    share = np.bincount(argmax.ravel(), minlength=n) / argmax.size
    competing = set(np.flatnonzero(share >= MIN_CLASS_SHARE)) | set(np.unique(seeds[seeds >= 0]))
    if len(competing) < 2:
        return prior.astype(np.float32)
    # the colour models start from the click prior when there is one: a network that still
    # paints a blob would otherwise teach them the wrong colours (GrabCut's failure mode)
    first = None if clicks is None else clicks.argmax(axis=0)
    labels = prior_graph_cut(
        rgb, prior, seeds, classes=sorted(int(c) for c in competing), init_labels=first
    )
    if len(np.unique(labels)) < 2 <= len(np.unique(argmax)):
        labels = argmax  # nothing pins the cut (no annotation) and it fell to one class
    if base is not None:
        labels = merge_touched_changes(base[0], labels, seeds != base[1])
    onehot = (labels[None] == np.arange(n)[:, None, None]).astype(np.float32)
    return (1.0 - keep) * onehot + keep * prior.astype(np.float32)
