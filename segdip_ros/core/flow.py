"""Classical optical flow at working size, for carrying labels from one video frame to the next.

Why: the network's xy input code and the TCL tie a label to an image position, which is wrong as
soon as the object moves. OpenCV's DIS flow (Kroeger et al. 2016; no learned weights, a few ms at
160 px) tells where each pixel of frame t was in frame t-1, so the previous frame's labels can be
pulled along the motion ("motion-compensated" prior and training target), and a forward-backward
check says where that pull can be trusted (occlusions, fast motion, untextured regions).

Conventions: a flow is (h, w, 2) float32 (dx, dy) in pixels. `backward` maps frame t to t-1:
frame_t(x) ~ frame_{t-1}(x + backward(x)); `warp` pulls any (h, w) or (h, w, C) map of frame t-1
into frame t with it.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ['FlowEstimator', 'fb_confidence', 'to_grey', 'warp']


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """(h, w) uint8 grey level of an (h, w, 3) RGB uint8 image (DIS works on one channel)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class FlowEstimator:
    """One DIS instance (creating it costs more than a 160 px flow), reused for every pair."""

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> None:
        self._dis = cv2.DISOpticalFlow_create(preset)  # type: ignore[attr-defined]

    def flow(self, grey_from: np.ndarray, grey_to: np.ndarray) -> np.ndarray:
        """(h, w, 2) flow with grey_from(x) ~ grey_to(x + flow(x))."""
        return self._dis.calc(grey_from, grey_to, None)

    def pair(self, grey_prev: np.ndarray, grey_cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(backward t -> t-1, forward t-1 -> t) flows of two consecutive grey frames."""
        return self.flow(grey_cur, grey_prev), self.flow(grey_prev, grey_cur)


def _sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx + flow[..., 0], gy + flow[..., 1]


def warp(
    values: np.ndarray, backward: np.ndarray, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """`values` of frame t-1 ((h, w) or (h, w, C) float32) pulled into frame t: out(x) =
    values(x + backward(x)), bilinear, replicated at the border (what leaves the image keeps
    the label of the nearest edge pixel)."""
    mx, my = _sample_grid(backward)
    return cv2.remap(
        values.astype(np.float32), mx, my, interpolation, borderMode=cv2.BORDER_REPLICATE
    )


def fb_confidence(
    backward: np.ndarray, forward: np.ndarray, alpha: float = 0.01, beta: float = 0.5
) -> np.ndarray:
    """(h, w) float32 in [0, 1]: how consistent the backward flow is with the forward one.

    A pixel x of frame t goes to x + b(x) in frame t-1 and should come back with the forward
    flow there: b(x) + f(x + b(x)) ~ 0. Sundaram et al. (ECCV 2010) call it inconsistent when
    |b + f|^2 > alpha (|b|^2 + |f|^2) + beta; this returns exp(-|b + f|^2 / that tolerance),
    1 for a perfect round trip, ~0.37 at the threshold, -> 0 at occlusions."""
    f_back = warp(forward, backward)
    err = ((backward + f_back) ** 2).sum(axis=2)
    tol = alpha * ((backward**2).sum(axis=2) + (f_back**2).sum(axis=2)) + beta
    return np.exp(-err / tol).astype(np.float32)
