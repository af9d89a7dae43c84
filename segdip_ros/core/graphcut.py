"""A GrabCut-style graph cut whose energy keeps a per-pixel prior (binary scenes).

OpenCV's GrabCut takes a starting mask and then forgets it: after its first colour-model fit the
result depends on the colours only, so whatever the network predicted is lost. This cut keeps the
prior in the energy of every iteration:

    E(L) = sum_p [ -log P_gmm(I_p | L_p) - prior_weight * log prior_p(L_p) ]
           + gamma * sum_pq [L_p != L_q] exp(-beta |I_p - I_q|^2) / dist(p, q)

with colour GMMs of 5 full-covariance components per side refitted to the current labelling
(as GrabCut does), an 8-connected contrast-sensitive Potts term (GrabCut's gamma 50 and beta) and
the annotated pixels as hard constraints. Solved exactly by max-flow (PyMaxflow).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

Edges = list[tuple[tuple[int, int], np.ndarray]]  # (offset, (h, w) weights) per neighbour

__all__ = ['NEIGHBOUR_OFFSETS', 'ColourGMM', 'contrast_edges', 'prior_graph_cut']

_HARD = 1e9  # capacity that a cut never pays: annotated pixels keep their label
_EPS = 1e-4  # floor of prior probabilities: -log of it caps a certain prior at 9.2
_KMEANS_SEED = 12345
# the 8-neighbourhood, each pair of neighbours once: right, down, down-right, down-left
NEIGHBOUR_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))


class ColourGMM:
    """Gaussian mixture of RGB colours, fitted as GrabCut does: k-means, then hard assignment."""

    def __init__(self, samples: np.ndarray, components: int = 5) -> None:
        samples = np.asarray(samples, np.float64).reshape(-1, 3)
        k = max(1, min(components, len(samples) // 4))
        if k > 1:
            criteria = (cv2.TERM_CRITERIA_MAX_ITER + cv2.TERM_CRITERIA_EPS, 10, 0.5)
            # k-means++ draws from OpenCV's per-thread RNG: seeded here, the cut is a function
            # of its inputs (unseeded, a replayed coco_dev click gave IoU 0.01 once, 0.85 the
            # next time)
            cv2.setRNGSeed(_KMEANS_SEED)
            kmeans: Any = cv2.kmeans  # its stubs do not take None for the labels
            _, labels, _ = kmeans(
                samples.astype(np.float32), k, None, criteria, 1, cv2.KMEANS_PP_CENTERS
            )
            labels = labels.ravel()
        else:
            labels = np.zeros(len(samples), np.int64)
        self._fit(samples, labels, k)

    def _fit(self, samples: np.ndarray, labels: np.ndarray, k: int) -> None:
        logw, means, inv, logdet = [], [], [], []
        for c in range(k):
            x = samples[labels == c]
            if len(x) < 2:
                continue
            cov = np.cov(x, rowvar=False) + np.eye(3) * 1.0  # +1 grey level^2 keeps it invertible
            logw.append(np.log(len(x) / len(samples)))
            means.append(x.mean(axis=0))
            inv.append(np.linalg.inv(cov))
            logdet.append(np.linalg.slogdet(cov)[1])
        if not means:  # too few samples: one broad component
            centre = samples.mean(axis=0) if len(samples) else np.full(3, 127.5)
            logw, means = [0.0], [centre]
            inv, logdet = [np.eye(3) / 400.0], [3 * np.log(400.0)]
        self.logw, self.means = np.array(logw), np.array(means)
        self.inv, self.logdet = np.array(inv), np.array(logdet)

    def component_log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """(n, k) log(w_c N(x | c)) up to the shared constant."""
        maha = np.empty((len(x), len(self.means)))
        for c, (mean, inv) in enumerate(zip(self.means, self.inv)):
            d = x - mean  # (n, 3); one small matrix product per component (BLAS), not einsum
            maha[:, c] = ((d @ inv) * d).sum(axis=1)
        return self.logw[None] - 0.5 * (maha + self.logdet[None])

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """(n,) log p(x) up to a constant shared by every GMM."""
        comp = self.component_log_likelihood(x)
        top = comp.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(comp - top).sum(axis=1, keepdims=True)))[:, 0]

    def refit(self, samples: np.ndarray) -> None:
        """Reassign each sample to its most likely component and re-estimate (GrabCut's step)."""
        samples = np.asarray(samples, np.float64).reshape(-1, 3)
        if len(samples) < 2:
            return
        labels = self.component_log_likelihood(samples).argmax(axis=1)
        self._fit(samples, labels, len(self.means))


def contrast_edges(rgb: np.ndarray, gamma: float = 50.0) -> Edges:
    """GrabCut's pairwise weights: per offset, an (h, w) array of gamma exp(-beta d^2) / dist for
    the edge from each pixel to its neighbour at that offset (0 where the neighbour is outside)."""
    img = rgb.astype(np.float64)
    h, w = img.shape[:2]
    diffs = []
    for dy, dx in NEIGHBOUR_OFFSETS:
        d2 = np.zeros((h, w))
        ys, ye = 0, h - dy
        xs, xe = max(0, -dx), w - max(0, dx)
        a = img[ys:ye, xs:xe]
        b = img[ys + dy : ye + dy, xs + dx : xe + dx]
        d2[ys:ye, xs:xe] = ((a - b) ** 2).sum(axis=2)
        valid = np.zeros((h, w), bool)
        valid[ys:ye, xs:xe] = True
        diffs.append((d2, valid))
    mean_d2 = sum(d2[v].sum() for d2, v in diffs) / max(1, sum(v.sum() for _, v in diffs))
    beta = 0.0 if mean_d2 <= 0 else 1.0 / (2.0 * mean_d2)
    edges = []
    for (dy, dx), (d2, valid) in zip(NEIGHBOUR_OFFSETS, diffs):
        weight = gamma / np.hypot(dy, dx) * np.exp(-beta * d2) * valid
        edges.append(((dy, dx), weight))
    return edges


def _grid_graph(shape: tuple[int, ...]) -> tuple[Any, Any]:
    import maxflow

    graph = maxflow.Graph[float]()
    return graph, graph.add_grid_nodes(shape)


def _add_offset_edges(
    graph: Any, ids: Any, offset: tuple[int, int], weight: np.ndarray, symmetric: bool
) -> None:
    dy, dx = offset
    structure = np.zeros((3, 3))
    structure[1 + dy, 1 + dx] = 1.0
    graph.add_grid_edges(ids, weights=weight, structure=structure, symmetric=symmetric)


def _binary_cut(cost_one: np.ndarray, cost_zero: np.ndarray, edges: Edges) -> np.ndarray:
    """Minimise sum_p cost_x(p) + sum_pq w_pq [x_p != x_q]; True where x = 1."""
    graph, ids = _grid_graph(cost_one.shape)
    for offset, weight in edges:
        _add_offset_edges(graph, ids, offset, weight, symmetric=True)
    # a node on the sink side (x = 1) cuts its source edge: source capacity = cost of x = 1
    low = np.minimum(cost_one, cost_zero)
    graph.add_grid_tedges(ids, cost_one - low, cost_zero - low)
    graph.maxflow()
    return graph.get_grid_segments(ids)


def _slices(offset: tuple[int, int], h: int, w: int) -> tuple[tuple[slice, slice], ...]:
    """(p, q): the pixels p whose neighbour q = p + offset is inside, and those neighbours."""
    dy, dx = offset
    p = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
    q = (slice(dy, h), slice(max(0, dx), w - max(0, -dx)))
    return p, q


def _expand(labels: np.ndarray, alpha: int, unary: np.ndarray, edges: Edges) -> np.ndarray:
    """One alpha-expansion move for the Potts model (Boykov et al. 2001): each pixel keeps its
    label or takes `alpha`, whichever lowers the energy most; exact by one max-flow."""
    h, w = labels.shape
    cost_one = unary[alpha].copy()  # x = 1: take alpha
    cost_zero = np.take_along_axis(unary, labels[None], axis=0)[0]  # x = 0: keep
    graph, ids = _grid_graph((h, w))
    for offset, weight in edges:
        p, q = _slices(offset, h, w)
        a, b, wt = labels[p], labels[q], weight[p]
        e00 = wt * (a != b)
        e01 = wt * (a != alpha)  # p keeps, q switches
        e10 = wt * (b != alpha)  # p switches, q keeps
        # E(xp, xq) = E00 + (E10 - E00) xp + (E11 - E10) xq + (E01 + E10 - E00 - E11)(1 - xp) xq
        # with E11 = 0; the constant E00 does not move the cut
        cost_one[p] += e10 - e00
        cost_one[q] -= e10
        pair = np.zeros((h, w))
        pair[p] = e01 + e10 - e00  # >= 0: Potts is a metric
        _add_offset_edges(graph, ids, offset, pair, symmetric=False)
    low = np.minimum(cost_one, cost_zero)
    graph.add_grid_tedges(ids, cost_one - low, cost_zero - low)
    graph.maxflow()
    return np.where(graph.get_grid_segments(ids), alpha, labels)


def _colour_unary(gmms: list[ColourGMM], pixels: np.ndarray, floor: float) -> np.ndarray:
    """(K, n) colour costs: -log p(colour | class) as in GrabCut (floor 0), or, with a floor,
    -log max(floor, P(class | colour)): a bounded cost, so that colour cannot outvote the prior
    however unlike a colour model a pixel is."""
    loglik = np.stack([g.log_likelihood(pixels) for g in gmms])
    if floor <= 0:
        return -loglik
    post = np.exp(loglik - loglik.max(axis=0, keepdims=True))
    post /= post.sum(axis=0, keepdims=True)
    return -np.log(np.maximum(post, floor))


def prior_graph_cut(
    rgb: np.ndarray,
    prior: np.ndarray,
    seeds: np.ndarray,
    prior_weight: float = 1.0,
    iterations: int = 3,
    gamma: float = 50.0,
    classes: list[int] | None = None,
    colour_floor: float = 0.0,
    prior_floor: float = _EPS,
    init_labels: np.ndarray | None = None,
    colour_models: dict[int, ColourGMM] | None = None,
    features: np.ndarray | None = None,
) -> np.ndarray:
    """(h, w) int64 labels: the minimum of the energy above.

    rgb: (h, w, 3) uint8; prior: (N, h, w) class probabilities from any source (the network, a
    nearest-click map); seeds: (h, w) int, -1 unlabelled, else the class id (a hard constraint).
    The classes that compete: `classes`, or by default those with seeds. The colour models
    start from `init_labels` (else the prior's argmax) with the seeds imposed, then follow the
    cut's labelling, as in GrabCut. Two classes: one exact cut per iteration; more: one sweep of
    alpha-expansion moves.
    With fewer than two competing classes, returns the prior's argmax.
    colour_models: fixed colour models by class id (tracking keeps those of the frame the user
    labelled: refitting to each frame's own result drifts); then one cut, no refit. A class
    without one gets a model fitted as above. features: (h, w, 3) what the colour models see
    instead of `rgb` (the boundary term always sees `rgb`).
    """
    h, w = seeds.shape
    if rgb.shape != (h, w, 3) or prior.ndim != 3 or prior.shape[1:] != (h, w):
        raise ValueError(
            f'rgb {rgb.shape}, prior {prior.shape} and seeds {seeds.shape} must '
            'share their height and width'
        )
    if classes is None:
        classes = [int(c) for c in np.unique(seeds[seeds >= 0])]
    if len(classes) < 2:
        return prior.argmax(axis=0)
    pixels = (rgb if features is None else features).reshape(-1, 3).astype(np.float64)
    unary_prior = -prior_weight * np.log(
        np.clip(prior[classes].astype(np.float64), prior_floor, 1.0)
    )
    seeded = seeds >= 0
    hard = np.zeros((len(classes), h, w))
    slots = np.asarray(unary_prior.argmin(axis=0))  # the labelling, as indices into classes
    if init_labels is not None:  # the colour models' first labelling, if not the prior's
        lut = np.full(max(max(classes), int(init_labels.max())) + 1, -1)
        lut[classes] = np.arange(len(classes))
        mapped = lut[np.clip(init_labels, 0, None)]
        slots = np.where(mapped >= 0, mapped, slots)
    for i, c in enumerate(classes):
        hard[i][seeded & (seeds != c)] = _HARD
        slots[seeds == c] = i
    edges = contrast_edges(rgb, gamma)
    # first colour models from `init_labels` (the engine passes the nearest-click map: a wrong
    # network blob must not decide what the classes look like), else from the prior's argmax;
    # a class absent from that labelling starts from its seeds, then from the prior's argmax
    prior_slots = np.asarray(unary_prior.argmin(axis=0))
    first = []
    for i, c in enumerate(classes):
        for candidate in (slots == i, seeds == c, prior_slots == i):
            if candidate.any():
                break
        first.append(candidate)
    given = colour_models or {}
    gmms = [given.get(c) or ColourGMM(pixels[m.ravel()]) for c, m in zip(classes, first)]
    if colour_models is not None:
        iterations = 1
    for it in range(iterations):
        if it == 1:
            gmms = [
                ColourGMM(pixels[(slots == i).ravel()]) if (slots == i).sum() > 1 else gmm
                for i, gmm in enumerate(gmms)
            ]
        elif it > 1:
            for i, gmm in enumerate(gmms):
                gmm.refit(pixels[(slots == i).ravel()])
        unary = hard + unary_prior + _colour_unary(gmms, pixels, colour_floor).reshape(-1, h, w)
        if len(classes) == 2:
            slots = _binary_cut(unary[1], unary[0], edges).astype(np.int64)
        else:
            for i in range(len(classes)):
                slots = _expand(slots, i, unary, edges)
    return np.asarray(classes)[slots]
