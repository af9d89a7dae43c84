"""TrainingSession: one SegDIP network trained online for one scene (an image or a video).

The session is the engine's facade: numpy in, numpy out, coordinates in original image pixels.
It is a small state machine:

- ``set_image`` starts a scene (a fresh model), ``next_frame`` moves a video on by one frame;
- ``add_annotation`` / ``undo`` / ``clear`` change the current frame's annotations;
- ``step(n)`` runs n iterations of the one training objective (`objective.objective`);
- ``refine()`` runs the graph cut on the network's current output and the annotations and
  keeps its result: the labels the user is shown, the self-training target and the base of the
  progressive merge. It is an explicit step: the schedule (`schedule.FrameDriver`, the node's
  trainer) calls it when a frame's or an annotation's training budget is spent;
- ``predict()`` is pure and cheap: the last refinement of the current frame, or the network's
  own output where there is none. Reading a prediction never changes what the network learns.

In a video (`tracking`), ``next_frame`` pulls the previous frame's final labels along the
optical flow; they are the network's training target on the new frame (with the labelled frame
replayed in the same batch) and, with the network's prediction, the prior of its graph cut.

Every piece of state that shapes training is saved by ``state_dict()`` as plain tensors and
JSON-safe values (`checkpoint`), so a restored session trains exactly as one that never stopped.
All public methods are thread-safe: a ROS callback may add a click while another thread trains.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .annotations import Annotation, rasterise, validate_annotation
from .config import SessionConfig, default_preset
from .device import autocast_dtype, resolve_device
from .errors import ImageError, TrainingError
from .flow import FlowEstimator
from .graphcut import ColourGMM
from .model import DOWNSAMPLING, SegDipNet, make_input_code, meshgrid, recolour_code
from .objective import LossTerms, Targets, objective
from .refine import CutSettings, graphcut_refine
from .tracking import (
    Motion,
    TrackSettings,
    anchor_colours,
    carry_positions,
    estimate_motion,
    labels_target,
    replay_gain,
    tracked_frame_target,
    tracking_cut,
    tracking_prior,
    training_target,
)
from .upsample import guided_upsample

__all__ = [
    'UNLABELLED_ID',
    'Prediction',
    'StepResult',
    'TrainingSession',
    'check_rgb',
    'working_size_for',
]

UNLABELLED_ID = 255


@dataclass(frozen=True)
class StepResult:
    """What `step(n)` did. Losses are those of the last finite iteration."""

    iterations: int
    loss: float
    reconstruction_loss: float
    annotation_loss: float
    seconds: float
    nonfinite_iterations: int = 0


@dataclass(frozen=True)
class Prediction:
    """labels: (H, W) uint8 class ids at original size, 255 where nothing is labelled yet.
    probabilities: (H, W, N) float32, summing to 1 over the last axis. refined: whether the
    labels come from a refinement (graph cut) of this frame or from the network alone."""

    labels: np.ndarray
    probabilities: np.ndarray
    refined: bool = False


def check_rgb(rgb: Any) -> np.ndarray:
    """Validate an RGB frame: (H, W, 3) uint8 with H, W >= 1, else ImageError."""
    if not isinstance(rgb, np.ndarray):
        raise ImageError(f'image must be a numpy array, got {type(rgb).__name__}')
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f'image must have shape (H, W, 3), got {rgb.shape}')
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageError(f'image is empty: shape {rgb.shape}')
    if rgb.dtype != np.uint8:
        raise ImageError(f'image must be uint8, got {rgb.dtype}')
    return rgb


def working_size_for(height: int, width: int, long_side: int, multiple: int) -> tuple[int, int]:
    """(h, w) with the long side at most `long_side` (never upscaled beyond the original, but at
    least `multiple`), aspect kept, each a multiple of `multiple` so strided layers line up."""
    scale = min(1.0, long_side / max(height, width))

    def snap(v: float) -> int:
        return max(multiple, int(round(v / multiple)) * multiple)

    return snap(height * scale), snap(width * scale)


@dataclass
class _Refinement:
    """The last graph cut of the current frame: labels shown, seeds it was made with."""

    probs: torch.Tensor  # (1, N, h, w) at working resolution
    labels: np.ndarray  # (h, w) int64 at working resolution
    seeds: np.ndarray  # (h, w) int64 annotations it saw, -1 unannotated


@dataclass
class _Anchor:
    """The last frame the user labelled: its colour models keep the tracking cut's colours, and
    it is replayed in every training batch of the frames that follow."""

    image: np.ndarray  # (H, W, 3) uint8, original size
    labels: np.ndarray  # (h, w) int64, its refined labels, working size
    colours: dict[int, ColourGMM]
    code: torch.Tensor  # (1, C, h, w) network input of that frame
    target: torch.Tensor  # (1, 3, h, w) that frame
    net_labels: torch.Tensor  # (h, w) its labels at network size
    net_weights: torch.Tensor  # (h, w) 0 in the band along its boundaries
    positions: np.ndarray  # (2, h, w) its pixels' places in the frame labelled before it
    annotated: float  # the share of its working-size pixels the user labelled


@dataclass
class _FrameState:
    """What belongs to the current frame; a new frame starts a new one."""

    image: np.ndarray  # (H, W, 3) uint8, original size
    small: np.ndarray  # (h, w, 3) uint8, working size
    target: torch.Tensor  # (1, 3, h, w) in [0, 1], network size
    code: torch.Tensor  # (1, C, h, w) the network's input
    positions: np.ndarray  # (2, h, w) network size: each pixel's place in the labelled frame
    motion: Motion | None = None  # the previous frame's labels pulled along
    track_labels: torch.Tensor | None = None  # (h, w) motion-compensated TCL target, network
    track_weights: torch.Tensor | None = None  # (h, w) its weights
    annotations: list[Annotation] = field(default_factory=list)
    labels: torch.Tensor | None = None  # (h, w) int64, -1 unannotated
    refinement: _Refinement | None = None  # the last refine() of this frame
    merge_base: _Refinement | None = None  # what the user saw when they annotated
    corrected: bool = False  # annotated after a refinement of this frame


class TrainingSession:
    """Online SegDIP training for one scene. See docs/ENGINE_API.md for the whole API."""

    def __init__(
        self,
        cfg: SessionConfig | None = None,
        cut: CutSettings | None = None,
        track: TrackSettings | None = None,
    ) -> None:
        cfg = cfg or default_preset()
        cfg.validate()
        self.cfg = cfg
        self.cut = cut or CutSettings()
        self.track = track or TrackSettings()
        self._flow: FlowEstimator | None = None
        self._anchor: _Anchor | None = None
        self.num_classes = cfg.num_classes
        self.device = resolve_device(cfg.device)
        self._amp_dtype = autocast_dtype(self.device)
        self._lock = threading.RLock()
        self._model: SegDipNet | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._frame: _FrameState | None = None
        self._work_size: tuple[int, int] = (0, 0)
        self._net_size: tuple[int, int] = (0, 0)
        self._previous: torch.Tensor | None = None  # (1, N, h, w) the TCL's base T^k
        self._teach_target: torch.Tensor | None = None  # (1, N, h, w) self-training target
        self._has_labels = False  # annotated now or on an earlier frame
        self._label_norm = 1.0  # annotated pixels, last annotated frame
        self._version = 0  # bumps on every annotation change
        self._cache: tuple[tuple[int, int], Prediction] | None = None
        self.iteration = 0
        self.frame_index = 0

    # ----- properties -------------------------------------------------------------------
    @property
    def has_image(self) -> bool:
        return self._frame is not None

    @property
    def image(self) -> np.ndarray | None:
        """The current original frame (H, W, 3) uint8."""
        return None if self._frame is None else self._frame.image

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(height, width) of the original image, or None before set_image."""
        return None if self._frame is None else self._frame.image.shape[:2]

    @property
    def work_size(self) -> tuple[int, int] | None:
        """(height, width) of the working resolution (the graph cut's), or None."""
        return self._work_size if self._frame is not None else None

    @property
    def network_size(self) -> tuple[int, int] | None:
        """(height, width) the network runs at (working size x network_scale), or None."""
        return self._net_size if self._frame is not None else None

    @property
    def annotations(self) -> tuple[Annotation, ...]:
        """Annotations of the current frame, oldest first."""
        with self._lock:
            return () if self._frame is None else tuple(self._frame.annotations)

    @property
    def has_labels(self) -> bool:
        """True once the model has annotations to learn from (now or on an earlier frame)."""
        return self._has_labels

    @property
    def needs_refine(self) -> bool:
        """True when refine() would see other annotations than the last refinement did."""
        with self._lock:
            f = self._frame
            if f is None or self.cfg.refine == 'none' or not f.annotations:
                return False
            return f.refinement is None or not np.array_equal(f.refinement.seeds, self._seeds())

    # ----- scene and frames -------------------------------------------------------------
    def set_image(self, rgb: np.ndarray) -> None:
        """Start a new scene: a fresh model, no annotations, `rgb` as reconstruction target."""
        rgb = check_rgb(rgb)
        with self._lock:
            h, w = rgb.shape[:2]
            self._work_size = working_size_for(h, w, self.cfg.working_size, DOWNSAMPLING)
            long_side = max(DOWNSAMPLING, round(max(self._work_size) * self.cfg.network_scale))
            self._net_size = working_size_for(h, w, long_side, DOWNSAMPLING)
            self._build_model()
            self._frame = self._new_frame(rgb)
            self._previous = None
            self._teach_target = None
            self._anchor = None
            self._has_labels = False
            self._label_norm = 1.0
            self.iteration = 0
            self.frame_index = 0
            self._touch()

    def next_frame(self, rgb: np.ndarray) -> None:
        """Tracking: keep the model, make `rgb` the reconstruction target. Annotations are per
        frame (as in the paper): the new frame starts with none, the TCL carries the labels, and
        the refined labels of an annotated frame teach the next one (one frame stale)."""
        rgb = check_rgb(rgb)
        with self._lock:
            old = self._require_frame()
            if rgb.shape != old.image.shape:
                raise ImageError(
                    f'next frame has shape {rgb.shape}, the session has '
                    f'{old.image.shape}; call set_image() to start a new scene'
                )
            if not old.annotations:
                self._teach_target = None
            new = self._new_frame(rgb)
            if self._tracking:
                motion = estimate_motion(
                    self._flow_estimator(), old.small, new.small, self._final_probs(old)
                )
                self._set_motion(new, motion)
                if self.track.carry_code:
                    self._set_positions(new, carry_positions(old.positions, motion))
            self._frame = new
            self.frame_index += 1
            self._touch()

    @property
    def _tracking(self) -> bool:
        """Labels follow the motion once the scene has them (with the graph cut)."""
        return self.cfg.refine == 'graphcut' and self._has_labels

    def _flow_estimator(self) -> FlowEstimator:
        if self._flow is None:
            self._flow = FlowEstimator()
        return self._flow

    def _final_probs(self, f: _FrameState) -> np.ndarray:
        """(N, h, w) the frame's final probabilities at working size: its last refinement, else
        the network's output."""
        probs = (
            f.refinement.probs
            if f.refinement is not None
            else F.interpolate(
                self._network_probabilities(),
                size=self._work_size,
                mode='bilinear',
                align_corners=False,
            )
        )
        return probs[0].cpu().numpy()

    def _set_motion(self, f: _FrameState, motion: Motion) -> None:
        """The frame's motion and, from it, its motion-compensated TCL target (network size)."""
        f.motion = motion
        self._set_track_target(f, *training_target(motion, self.track.target_confidence))

    def _set_positions(self, f: _FrameState, positions: np.ndarray) -> None:
        """The frame's positions in the labelled frame, and its input code built on them."""
        f.positions = positions
        grid = torch.from_numpy(positions)[None].to(self.device)
        f.code = make_input_code(self.cfg, f.target, grid).contiguous(
            memory_format=torch.channels_last
        )

    def _set_track_target(self, f: _FrameState, labels: np.ndarray, weights: np.ndarray) -> None:
        """The tracked frame's training target and weights (working size) at network size."""
        nh, nw = self._net_size
        small_labels = cv2.resize(
            labels.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST
        )
        small_weights = cv2.resize(weights, (nw, nh), interpolation=cv2.INTER_AREA)
        f.track_labels = torch.from_numpy(small_labels.astype(np.int64)).to(self.device)
        f.track_weights = torch.from_numpy(small_weights).to(self.device)

    # ----- annotations ------------------------------------------------------------------
    def add_annotation(self, annotation: Annotation) -> int:
        """Add a click, stroke or box to the current frame; returns its index.

        Raises AnnotationError (outside the image, unknown class, degenerate) and leaves the
        session unchanged.
        """
        with self._lock:
            f = self._require_frame()
            h, w = f.image.shape[:2]
            validate_annotation(annotation, w, h, self.num_classes)
            f.annotations.append(annotation)
            self._annotations_changed()
            return len(f.annotations) - 1

    def undo(self) -> Annotation | None:
        """Remove and return the last annotation of the current frame (None if there is none)."""
        with self._lock:
            f = self._frame
            if f is None or not f.annotations:
                return None
            last = f.annotations.pop()
            self._annotations_changed()
            return last

    def clear(self) -> int:
        """Remove every annotation of the current frame; returns how many were removed. The
        frame starts over: its refinements are forgotten."""
        with self._lock:
            f = self._frame
            if f is None:
                return 0
            n = len(f.annotations)
            f.annotations.clear()
            f.refinement = f.merge_base = None
            f.corrected = False
            self._annotations_changed()
            return n

    # ----- training ---------------------------------------------------------------------
    def warmup(self, iterations: int | None = None) -> StepResult:
        """Reconstruction-only iterations before the first click (paper, section 3.6)."""
        return self.step(self.cfg.warmup_iterations if iterations is None else iterations)

    def step(self, iterations: int = 1) -> StepResult:
        """Run `iterations` optimiser steps. A non-finite loss skips its update (counted in the
        result); running out of memory raises TrainingError and leaves the session usable."""
        if iterations < 0:
            raise ValueError(f'iterations must be >= 0, got {iterations}')
        self._require_frame()
        t0 = time.perf_counter()
        last = (float('nan'),) * 3
        nonfinite = 0
        for _ in range(iterations):
            with self._lock:
                try:
                    losses = self._one_iteration()
                except torch.cuda.OutOfMemoryError as err:
                    assert self._optimizer is not None
                    self._optimizer.zero_grad(set_to_none=True)
                    torch.cuda.empty_cache()
                    raise TrainingError(
                        f'out of memory on {self.device} at working size '
                        f'{self._work_size}: lower working_size or width'
                    ) from err
            if losses is None:
                nonfinite += 1
            else:
                last = losses
        return StepResult(
            iterations, last[0], last[1], last[2], time.perf_counter() - t0, nonfinite
        )

    def _one_iteration(self) -> tuple[float, float, float] | None:
        model, opt, f = self._model, self._optimizer, self._frame
        assert model is not None and opt is not None and f is not None and f.labels is not None
        opt.zero_grad(set_to_none=True)
        targets = [self._targets(f)]
        codes = [f.code]
        anchor = self._anchor
        tracked = f.track_labels is not None and not f.annotations
        if tracked and anchor is not None and self.track.replay:
            code, rgb_target = self._replayed(anchor)  # the labelled frame in the same batch
            codes.append(code)
            targets.append(self._anchor_targets(anchor, rgb_target))
        # on a tracked frame the network is the scene's appearance model: all its layers learn
        trunk = True if tracked and self.track.train_trunk else None
        with self._autocast():
            rgb, logits = model(torch.cat(codes) if len(codes) > 1 else codes[0], trunk)
        probs = torch.softmax(logits.float(), dim=1)
        terms = [objective(rgb[i : i + 1], probs[i : i + 1], tg) for i, tg in enumerate(targets)]
        total = LossTerms(
            sum((x.total for x in terms), torch.zeros((), device=self.device)),
            terms[0].reconstruction,
            terms[0].segmentation,
        )
        if not torch.isfinite(total.total):
            opt.zero_grad(set_to_none=True)
            return None
        total.total.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        self._previous = probs[:1].detach()
        self.iteration += 1
        return (
            float(total.total.detach()),
            float(total.reconstruction.detach()),
            float(total.segmentation.detach()),
        )

    def _targets(self, f: _FrameState) -> Targets:
        """This frame's targets: the paper's TCL on an annotated frame (and before tracking),
        the motion-compensated one on a tracked frame."""
        assert f.labels is not None
        tracked = f.track_labels is not None and not f.annotations
        return Targets(
            rgb=f.target,
            labels=f.track_labels if tracked else f.labels,  # type: ignore[arg-type]
            label_norm=self._label_norm,
            previous=self._previous,
            refined=None if tracked else self._teach_target,
            teach=self.cut.teaches,
            tcl_lambda=self.cfg.tcl_lambda,
            segment=self._has_labels,
            weights=f.track_weights if tracked else None,
        )

    def _replayed(self, anchor: _Anchor) -> tuple[torch.Tensor, torch.Tensor]:
        """(input code, reconstruction target) of the labelled frame as this iteration replays
        it: its colours times a brightness factor (`replay_gain`), so the network learns the
        objects' appearance under the lighting changes a video brings (a car driving into a
        shadow) rather than the labelled frame's exact colours."""
        gain = replay_gain(self.cfg.seed, self.iteration, self.track.replay_brightness)
        if gain == 1.0:
            return anchor.code, anchor.target
        target = (anchor.target * gain).clamp(0.0, 1.0)
        code = recolour_code(self.cfg, anchor.code, target)
        return code.contiguous(memory_format=torch.channels_last), target

    def _anchor_targets(self, anchor: _Anchor, rgb: torch.Tensor) -> Targets:
        return Targets(
            rgb=rgb,
            labels=anchor.net_labels,
            label_norm=1.0,
            previous=None,
            refined=None,
            teach=0.0,
            tcl_lambda=0.0,
            segment=True,
            weights=anchor.net_weights,
        )

    # ----- refinement -------------------------------------------------------------------
    def refine(self) -> Prediction:
        """Run the graph cut on the network's current output and the frame's annotations, keep
        its result (what predict() returns, the self-training target, the merge base), and
        return the new prediction. Without annotations on the frame, or with refine 'none',
        nothing changes and the network's prediction is returned."""
        with self._lock:
            f = self._require_frame()
            if self.cfg.refine == 'graphcut' and f.annotations:
                self._graphcut(f)
                self._set_anchor(f)
                self._touch()
            elif self._tracking and f.motion is not None and self._anchor is not None:
                self._track_cut(f, self._anchor)
                self._touch()
            return self.predict()

    def _track_cut(self, f: _FrameState, anchor: _Anchor) -> None:
        """An unannotated video frame: the cut with the warped labels and the network in its
        prior and the labelled frame's colour models (`tracking`)."""
        assert f.motion is not None
        h, w = self._work_size
        net = (
            F.interpolate(
                self._network_probabilities(), size=(h, w), mode='bilinear', align_corners=False
            )[0]
            .cpu()
            .numpy()
        )
        prior = tracking_prior(f.motion, net, self.track)
        labels = tracking_cut(f.small, prior, anchor.colours, self.track)
        n = self.num_classes
        onehot = (labels[None] == np.arange(n)[:, None, None]).astype(np.float32)
        keep = 0.1  # as graphcut_refine: the labels, with a little of the prior
        probs = (1.0 - keep) * onehot + keep * prior.astype(np.float32)
        f.refinement = _Refinement(
            torch.from_numpy(probs)[None], labels.astype(np.int64), np.full((h, w), -1, np.int64)
        )
        # the network then trains on these labels (the frame-switch rule: cut, then train)
        band = self.track.band_for(anchor.annotated)
        self._set_track_target(
            f, *tracked_frame_target(labels, n, self.track.target_confidence, band)
        )

    def _set_anchor(self, f: _FrameState) -> None:
        """An annotated frame was refined: it becomes the frame the video is tracked from."""
        if f.refinement is None:
            return
        annotated = float((f.refinement.seeds >= 0).mean())
        self._anchor = self._make_anchor(f, f.refinement.labels, annotated)

    def _make_anchor(self, f: _FrameState, labels: np.ndarray, annotated: float) -> _Anchor:
        """The frame `f` with its refined `labels` (working size) as the labelled frame, the
        user having labelled the share `annotated` of its pixels."""
        nh, nw = self._net_size
        net = cv2.resize(labels.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST)
        _, weights = labels_target(
            net.astype(np.int64), self.num_classes, self.track.target_confidence
        )
        return _Anchor(
            f.image,
            labels,
            anchor_colours(f.small, labels),
            f.code,
            f.target,
            torch.from_numpy(net.astype(np.int64)).to(self.device),
            torch.from_numpy(weights).to(self.device),
            f.positions,
            annotated,
        )

    def _graphcut(self, f: _FrameState) -> None:
        """The cut at working resolution (not the network's): the boundary term is only as
        sharp as the image it sees."""
        h, w = self._work_size
        probs = F.interpolate(
            self._network_probabilities(), size=(h, w), mode='bilinear', align_corners=False
        )[0]
        small = cv2.resize(f.image, (w, h), interpolation=cv2.INTER_AREA)
        seeds = self._seeds()
        if f.refinement is not None and not np.array_equal(seeds, f.refinement.seeds):
            f.corrected = True  # annotated after a refinement of this frame
            if self.cut.merge:
                f.merge_base = f.refinement  # what the user saw when they annotated
        weight = (
            self.cut.network_weight if f.corrected else self.cut.first_weight(self.num_classes)
        )
        base = None if f.merge_base is None else (f.merge_base.labels, f.merge_base.seeds)
        probs_np = probs.cpu().numpy()
        if f.motion is not None:  # a correction on a tracked frame keeps the tracked labels
            probs_np = tracking_prior(f.motion, probs_np, self.track)
        refined = graphcut_refine(
            small,
            probs_np,
            seeds,
            weight,
            self.cut.click_confidence,
            base=base,
            click_edge_cost=self.cut.click_edge_cost,
        )
        out = torch.from_numpy(np.ascontiguousarray(refined, dtype=np.float32))[None]
        f.refinement = _Refinement(out, refined.argmax(axis=0), seeds)
        if self.cut.teaches > 0:
            self._teach_target = F.interpolate(
                out.to(self.device), size=self._net_size, mode='area'
            )

    def _seeds(self) -> np.ndarray:
        f = self._frame
        assert f is not None
        return rasterise(f.annotations, f.image.shape[:2], self._work_size, self.cfg.click_radius)

    # ----- outputs ----------------------------------------------------------------------
    def predict(self) -> Prediction:
        """Class ids and probabilities at original size: the last refinement of this frame,
        else the network's own output. Pure: it never changes what the network learns."""
        with self._lock:
            f = self._require_frame()
            # a refinement does not change while the network trains on: only a new one does
            key = (-1 if f.refinement is not None else self.iteration, self._version)
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
            refined = f.refinement is not None
            probs = (
                f.refinement.probs if f.refinement is not None else self._network_probabilities()
            )
            h, w = f.image.shape[:2]
            tracked = f.refinement is not None and bool((f.refinement.seeds < 0).all())
            if tracked and self.track.upsample_radius > 0:  # a tracked frame's cut
                probs_np = self._edge_aware(probs[0].cpu().numpy(), f.image)
            else:
                up = F.interpolate(
                    probs.float(), size=(h, w), mode='bilinear', align_corners=False
                )[0]
                up = up / up.sum(dim=0, keepdim=True)
                probs_np = up.permute(1, 2, 0).contiguous().cpu().numpy().astype(np.float32)
            labels = probs_np.argmax(axis=2).astype(np.uint8)
            if not self._has_labels:
                labels[:] = UNLABELLED_ID
            pred = Prediction(labels, probs_np, refined)
            self._cache = (key, pred)
            return pred

    def _edge_aware(self, probs: np.ndarray, image: np.ndarray) -> np.ndarray:
        """(H, W, N) probabilities at the image's size from (N, h, w) at working size: each
        class by the guided filter with the full-resolution frame as guide, so boundaries
        follow the image's own edges instead of a 160 px staircase. Used on tracked frames;
        on an annotated frame the user's clicks place the boundary, and on 10 coco_dev photos
        the filter cost clicks there (NoC@85 6.7 against 5.8 bilinear)."""
        r, eps, scale = (
            self.track.upsample_radius,
            self.track.upsample_eps,
            self.track.upsample_scale,
        )
        if probs.shape[0] == 2:
            one = np.clip(guided_upsample(probs[1], image, r, eps, scale), 0.0, 1.0)
            out = np.stack([1.0 - one, one], axis=2)
        else:
            out = np.stack(
                [np.clip(guided_upsample(p, image, r, eps, scale), 1e-6, None) for p in probs],
                axis=2,
            )
            out /= out.sum(axis=2, keepdims=True)
        return out.astype(np.float32, copy=False)

    def working_probabilities(self) -> torch.Tensor:
        """(1, N, h, w) float32 class probabilities of the network at its resolution."""
        with self._lock:
            self._require_frame()
            return self._network_probabilities()

    @torch.no_grad()
    def reconstruction(self) -> np.ndarray:
        """The network's RGB reconstruction, (H, W, 3) uint8 at original size."""
        with self._lock:
            f = self._require_frame()
            assert self._model is not None
            with self._autocast():
                rgb, _ = self._model(f.code)
            img = (rgb.float()[0].permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()
            h, w = f.image.shape[:2]
            return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)

    # ----- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as plain tensors and JSON-safe values."""
        from .checkpoint import session_state

        with self._lock:
            return session_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict(); CheckpointError when it was made for another engine."""
        from .checkpoint import restore_session

        with self._lock:
            restore_session(self, state)

    def save(self, path: str) -> None:
        """Write state_dict() to `path` atomically (temp file, fsync, rename)."""
        from .checkpoint import save_state

        save_state(self.state_dict(), path)

    @classmethod
    def load(
        cls, path: str, device: str | None = None, cut: CutSettings | None = None
    ) -> TrainingSession:
        """A session from a file written by save(); CheckpointError when it cannot be used."""
        from .checkpoint import load_session

        return load_session(cls, path, device, cut)

    # ----- internals --------------------------------------------------------------------
    @torch.no_grad()
    def _network_probabilities(self) -> torch.Tensor:
        f = self._frame
        assert self._model is not None and f is not None
        with self._autocast():
            _, logits = self._model(f.code)
        return torch.softmax(logits.float(), dim=1)

    def _require_frame(self) -> _FrameState:
        if self._frame is None:
            raise RuntimeError('An image must be set with .set_image(...) first.')
        return self._frame

    def _touch(self) -> None:
        self._version += 1
        self._cache = None

    def _new_frame(self, rgb: np.ndarray) -> _FrameState:
        h, w = self._net_size
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        target = (torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255.0).to(self.device)
        # NHWC: faster steps on CPU (docs/benchmarks.md), the same values up to rounding
        code = make_input_code(self.cfg, target).contiguous(memory_format=torch.channels_last)
        wh, ww = self._work_size
        work = cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_AREA)
        positions = meshgrid(h, w)[0].numpy()
        frame = _FrameState(rgb.copy(), work, target, code, positions)
        frame.labels = torch.full(self._net_size, -1, dtype=torch.long, device=self.device)
        return frame

    def _build_model(self) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            model = SegDipNet(self.cfg)
        move: Any = model.to  # its stubs lack the memory_format keyword
        self._model = move(self.device, memory_format=torch.channels_last)
        # foreach: all parameters in one step, the same update as the per-tensor loop (identical
        # weights on the CPUs measured) with less of the per-op overhead that dominates a small
        # network's step on a CPU
        self._optimizer = torch.optim.Adam(
            self._model.parameters(), lr=self.cfg.learning_rate, amsgrad=True, foreach=True
        )

    def _annotations_changed(self) -> None:
        f = self._frame
        assert f is not None
        labels = rasterise(
            f.annotations,
            f.image.shape[:2],
            self._net_size,
            self.cfg.click_radius,
            radius_scale=self.cfg.network_scale,
        )
        f.labels = torch.from_numpy(labels).to(self.device)
        if f.annotations:
            self._has_labels = True
            self._label_norm = float((labels >= 0).sum())
        elif self.frame_index == 0:
            self._has_labels = False
        self._touch()

    def _autocast(self) -> AbstractContextManager[Any]:
        if self._amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self._amp_dtype)


GRAD_CLIP = 1.0  # max global gradient norm (AMSGrad with clipped gradients, as in the paper)
