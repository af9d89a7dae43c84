"""Labels that follow the scene: what the session does between two frames of a video.

The paper carries labels from frame to frame with the TCL, whose target is the previous
prediction at the same pixel: a moving object leaves its labels behind. Here the previous
frame's final labels are pulled along classical optical flow (`flow`, OpenCV DIS) instead, and
used three ways on every frame:

1. as the network's training target (the motion-compensated TCL): the warped labels where the
   flow is confident (forward-backward consistent) and the label is clear, weighted by that
   confidence; the frame the user labelled is replayed in the same batch, so the network stays
   the appearance model of what the user vouched for (at a random brightness, so that model
   holds when the object moves into a shadow). The network's xy input is carried along the
   same flow: each pixel's position in the labelled frame, so what the network learned there
   stays on the object as it moves (the paper's closing idea of pixel flow in the network);
2. as a prior of the graph cut, together with the network's prediction: where the flow fails
   (occlusion, fast motion) the network, trained on this scene's appearance, still decides;
3. with the colour models of the labelled frame kept fixed (in CIE Lab with the lightness
   down-weighted, so an object moving into a shadow keeps its colours): refitting them to each
   frame's own result lets them drift onto the background the labels leaked into.

Order on a tracked frame: the cut first (flow, the network's prediction, the cut: the frame's
labels are ready at once), then the network trains on those labels (blurred, so a band along
the boundary, where the cut is least sure, is left out, and in a binary scene the background
next to the object, where a part the cut lost would lie: `tracked_frame_target`) with the
labelled frame replayed.

Everything is learned online from the user's labels; the flow has no learned weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy import ndimage

from .flow import FlowEstimator, fb_confidence, to_grey, warp
from .graphcut import ColourGMM, prior_graph_cut

__all__ = [
    'Motion',
    'TrackSettings',
    'anchor_colours',
    'carry_positions',
    'colour_features',
    'estimate_motion',
    'labels_target',
    'replay_gain',
    'tracked_frame_target',
    'tracking_cut',
    'tracking_prior',
    'training_target',
]

LAB_LIGHTNESS = 0.5  # weight of L in the colour models' Lab features
TARGET_BLUR = 2.0  # working px: the Gaussian on the labels before the confidence test


@dataclass(frozen=True)
class TrackSettings:
    """Tuning of tracking; the defaults are the values the DAVIS benchmark chose.

    warp_weight: weight of the warped labels' log-odds in the cut's prior (times the flow's
    confidence). network_weight: weight of the network's log-odds there (0 = the network has no
    say: the ablation). gamma: the cut's boundary weight (GrabCut's 50 erases thin parts at a
    160 px working size). target_confidence: a warped label is a training target where its
    probability is above this. replay: the labelled frame in every training batch. upsample
    radius / eps / scale: the guided filter that takes the labels to the image's own
    resolution (radius in original pixels, 0 = bilinear; its coefficients are computed at
    `scale` x the image's size, the fast guided filter). train_trunk: on tracked frames the class
    head's gradient trains the shared layers too, so the network becomes the scene's
    appearance model (DAVIS, first-frame mask: mean J 0.743 -> 0.761). carry_code: the
    network's xy input is each pixel's position in the labelled frame, carried along the flow
    (`carry_positions`), not its place in the image. replay_brightness: the labelled frame is
    replayed with its colours times a factor drawn from this range (`replay_gain`; (1, 1) =
    as labelled), so its appearance model holds under the lighting changes of a video.
    background_band: working px; in a binary scene a tracked frame's background pixels nearer
    than this to its object are left out of the network's target (`tracked_frame_target`;
    0 = none), when the user labelled at least half the labelled frame (a mask);
    sparse_background_band: the same when they labelled less (clicks, strokes, boxes), so
    the cut's first labels next to the object were already its guesses (`band_for`).
    """

    warp_weight: float = 2.0
    network_weight: float = 1.0
    gamma: float = 10.0
    target_confidence: float = 0.8
    replay: bool = True
    train_trunk: bool = True
    carry_code: bool = True
    replay_brightness: tuple[float, float] = (0.4, 1.3)
    upsample_radius: int = 4
    upsample_eps: float = 1e-3
    upsample_scale: float = 0.25
    background_band: float = 8.0
    sparse_background_band: float = 60.0

    def __post_init__(self) -> None:
        if (
            min(
                self.warp_weight,
                self.network_weight,
                self.gamma,
                self.upsample_eps,
                self.background_band,
                self.sparse_background_band,
            )
            < 0
        ):
            raise ValueError(f'tracking weights must be >= 0: {self}')
        low, high = self.replay_brightness
        if not 0.0 < low <= high:
            raise ValueError(f'replay_brightness must be 0 < low <= high, got {(low, high)}')
        if not 0.0 < self.upsample_scale <= 1.0:
            raise ValueError(f'upsample_scale must be in (0, 1], got {self.upsample_scale}')
        if not 0.5 <= self.target_confidence < 1.0:
            raise ValueError(
                f'target_confidence must be in [0.5, 1), got {self.target_confidence}'
            )

    def band_for(self, annotated_share: float) -> float:
        """The background band of a video tracked from a frame whose pixels the user labelled
        this share of."""
        return self.background_band if annotated_share >= 0.5 else self.sparse_background_band


@dataclass(frozen=True)
class Motion:
    """The previous frame's final labels in this frame: warped (N, h, w) probabilities, the
    flow's confidence (h, w) in [0, 1] and the backward flow (h, w, 2) it came from, at
    working size."""

    warped: np.ndarray
    confidence: np.ndarray
    backward: np.ndarray | None = None


def estimate_motion(
    flow: FlowEstimator, prev_rgb: np.ndarray, rgb: np.ndarray, prev_probs: np.ndarray
) -> Motion:
    """Pull `prev_probs` ((N, h, w) of the frame `prev_rgb`) into the frame `rgb` (both
    (h, w, 3) uint8 at working size) along the DIS flow between them."""
    back, fwd = flow.pair(to_grey(prev_rgb), to_grey(rgb))
    n, h, w = prev_probs.shape
    moved = warp(np.moveaxis(prev_probs, 0, 2), back).reshape(h, w, n)
    warped = np.clip(np.moveaxis(moved, 2, 0), 0.0, 1.0)
    warped = warped / np.maximum(warped.sum(axis=0, keepdims=True), 1e-6)
    return Motion(warped.astype(np.float32), fb_confidence(back, fwd), back)


def carry_positions(positions: np.ndarray, motion: Motion) -> np.ndarray:
    """(2, h, w) each pixel's position in the labelled frame, pulled from the previous frame
    (`positions`, at the network's size) into this one along the flow (taken to that size):
    the network's input code follows the motion, so what it learned at a point of the labelled
    frame stays on that point."""
    if motion.backward is None:
        return positions
    h, w = positions.shape[1:]
    fh, fw = motion.backward.shape[:2]
    back = cv2.resize(motion.backward, (w, h), interpolation=cv2.INTER_AREA)
    back = back * np.array([w / fw, h / fh], np.float32)
    moved = warp(np.moveaxis(positions, 0, 2), back)
    return np.ascontiguousarray(np.moveaxis(moved, 2, 0), dtype=np.float32)


def replay_gain(seed: int, iteration: int, brightness: tuple[float, float]) -> float:
    """The brightness factor of the labelled frame replayed at `iteration`: uniform in
    `brightness`, a function of (seed, iteration) alone, so a run, and a session restored from
    its checkpoint, replay the same frames."""
    low, high = brightness
    if low == high:
        return low
    gen = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
    return low + (high - low) * float(torch.rand((), generator=gen))


def _log_soft(p: np.ndarray, low: float) -> np.ndarray:
    """log of p squeezed into [low, 1 - (n - 1) low]: a certain label still leaves room."""
    n = p.shape[0]
    return np.log(low + (1.0 - n * low) * p)


def tracking_prior(
    motion: Motion, network: np.ndarray | None, settings: TrackSettings
) -> np.ndarray:
    """(N, h, w) prior probabilities of the tracking cut: the warped labels with weight
    warp_weight x confidence, times the network's probabilities with weight network_weight,
    both squeezed to 0.1 / 0.9 in a binary scene.

    The network's squeeze bounds its say: where the flow is sure, the warped labels outweigh it;
    where the flow is unsure (occlusion, fast motion, the boundary band) it decides, with the
    colour models. Squeezed to 0.02 / 0.98 instead, a confident mistake of the network
    overruled sure flow and was carried on by the next frames: DAVIS from the first-frame mask,
    seeds 0 / 1 / 2, mean J 0.783 / 0.770 / 0.730 against 0.766 / 0.764 / 0.758 with this
    squeeze (the ablation 0.737), from 5 clicks 0.611 / 0.570 / 0.615 against 0.599 / 0.602 /
    0.623, both before the positions were carried (`carry_positions`)."""
    n = motion.warped.shape[0]
    log_p = settings.warp_weight * motion.confidence[None] * _log_soft(motion.warped, 0.2 / n)
    if network is not None and settings.network_weight > 0:
        log_p = log_p + settings.network_weight * _log_soft(network, 0.2 / n)
    prior = np.exp(log_p - log_p.max(axis=0, keepdims=True))
    return prior / prior.sum(axis=0, keepdims=True)


def training_target(motion: Motion, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(labels (h, w) int64, weights (h, w) float32): the warped label where it is clear (its
    probability above `threshold`), weighted by the flow's confidence; weight 0 elsewhere."""
    labels = motion.warped.argmax(axis=0)
    clear = motion.warped.max(axis=0) > threshold
    return labels.astype(np.int64), (clear * motion.confidence).astype(np.float32)


def colour_features(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) float64 CIE Lab of an RGB uint8 image with L x LAB_LIGHTNESS: what the
    tracking colour models see."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float64)
    lab[..., 0] *= LAB_LIGHTNESS
    return lab


def labels_target(
    labels: np.ndarray, num_classes: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, weights): a frame's own labels as the network's target, weight 1 where the
    label, blurred by TARGET_BLUR, is still above `threshold`, 0 in the band along boundaries."""
    onehot = (labels[..., None] == np.arange(num_classes)).astype(np.float32)
    blurred = cv2.GaussianBlur(onehot, (0, 0), TARGET_BLUR)
    if blurred.ndim == 2:
        blurred = blurred[..., None]
    clear = blurred.max(axis=2) > threshold
    return labels.astype(np.int64), clear.astype(np.float32)


def tracked_frame_target(
    labels: np.ndarray, num_classes: int, threshold: float, band: float
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, weights): what the network learns from a tracked frame's cut (`labels`, (h, w)
    at working size): `labels_target`, and in a binary scene (class 0 the background, as the
    click prior has it) no background within `band` working px of the object.

    Where the cut loses a part of the object (the dog's hindquarters as it turns, the far
    side of a car, what 5 first-frame clicks left out), that part is background right next to
    the object. Taught as background frame after frame, the network learns the loss and the
    next cuts keep it; left out, the network keeps what the labelled frame and the object's
    own pixels taught it there, while the background farther away is still learned. DAVIS,
    seeds 0 / 1 / 2, two threads (docs/benchmarks.md): from the first-frame mask with 8 px mean
    J 0.780 / 0.759 / 0.776 against 0.769 / 0.760 / 0.785 without a band, wider bands worse
    (16 px: 0.775 / 0.753 / 0.759); from 5 clicks with 24 px 0.643 / 0.640 / 0.658 against
    0.612 / 0.587 / 0.608 (8 px: 0.617 / 0.621 / 0.634), all without skip connections; with
    them, from 5 clicks, 60 px gives 0.648 / 0.655 / 0.645 against 0.630 / 0.655 / 0.657 with
    40 px, 0.625 / 0.648 / 0.636 with 24 px and 0.640 / 0.644 / 0.617 with 80 px (from the
    mask, 8 px: 0.797 / 0.788 / 0.801).
    With a whole mask the cut's background next to the object is mostly right, and a network
    never taught it there leaks into it; from clicks it was a guess from the first frame on."""
    target, weights = labels_target(labels, num_classes, threshold)
    if num_classes != 2 or band <= 0 or not (labels == 1).any():
        return target, weights
    near = ndimage.distance_transform_edt(labels != 1) < band
    return target, np.where((labels == 0) & near, 0.0, weights).astype(np.float32)


def anchor_colours(rgb: np.ndarray, labels: np.ndarray) -> dict[int, ColourGMM]:
    """Colour models (on `colour_features`) of each class present in `labels` ((h, w) at the
    size of `rgb`)."""
    pixels = colour_features(rgb).reshape(-1, 3)
    flat = labels.ravel()
    return {
        int(c): ColourGMM(pixels[flat == c]) for c in np.unique(flat) if (flat == c).sum() >= 8
    }


def tracking_cut(
    rgb: np.ndarray, prior: np.ndarray, colours: dict[int, ColourGMM], settings: TrackSettings
) -> np.ndarray:
    """(h, w) labels of an unannotated frame: the graph cut with the tracking prior and the
    labelled frame's colour models (no hard constraints)."""
    seeds = np.full(prior.shape[1:], -1, np.int64)
    present = sorted(set(np.unique(prior.argmax(axis=0)).tolist()) | set(colours))
    if len(present) < 2:
        return prior.argmax(axis=0)
    return prior_graph_cut(
        rgb,
        prior,
        seeds,
        gamma=settings.gamma,
        classes=[int(c) for c in present],
        colour_models=colours,
        features=colour_features(rgb),
    )


def smooth_to(probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W) bilinear resize of (N, h, w) probabilities (helper of the session)."""
    h, w = size
    return np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in probs])
