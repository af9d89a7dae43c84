"""TrainingSession: one SegDIP network trained online for one scene (an image or a video).

The session is the engine's facade: numpy in, numpy out, coordinates in original image pixels.
It owns the model, the optimiser (AMSGrad, clipped gradients), the annotations of the current
frame and the previous prediction that the Temporal Consistency Loss uses as its target.
All public methods are thread-safe, so a ROS callback may add a click while another thread trains.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .annotations import Annotation, rasterise, validate_annotation
from .checkpoint import CheckpointMixin
from .config import SessionConfig, default_preset
from .device import resolve_amp_dtype, resolve_device
from .errors import ImageError, TrainingError
from .fast import pin_for
from .losses import binary_cross_entropy_map, reconstruction_loss, tcl_loss, tcl_target
from .model import SegDipNet, input_channels, make_input_code
from .refine import graphcut_refine

__all__ = ['TrainingSession', 'StepResult', 'Prediction', 'working_size_for', 'check_rgb']

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
    probabilities: (H, W, N) float32, summing to 1 over the last axis."""

    labels: np.ndarray
    probabilities: np.ndarray


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


class TrainingSession(CheckpointMixin):
    """Online SegDIP training for one scene. See docs/ENGINE_API.md for the whole API."""

    def __init__(self, cfg: SessionConfig | None = None):
        cfg = cfg or default_preset()
        cfg.validate()
        self.cfg = cfg
        self.num_classes = cfg.model.num_classes
        self.device = resolve_device(cfg.device)
        self._amp_dtype = resolve_amp_dtype(cfg.amp, self.device)
        self._lock = threading.RLock()
        self._model: SegDipNet | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._image: np.ndarray | None = None
        self._target: torch.Tensor | None = None      # (1, 3, h, w) in [0, 1]
        self._code: torch.Tensor | None = None        # (1, C, h, w)
        self._work_size: tuple[int, int] | None = None
        self._net_size: tuple[int, int] | None = None  # the network's resolution
        self._annotations: list[Annotation] = []
        self._labels: torch.Tensor | None = None      # (h, w) int64, -1 = unlabelled
        self._prev_probs: torch.Tensor | None = None  # (1, N, h, w) TCL target base
        self._has_labels = False                       # annotated now or on an earlier frame
        self._label_norm = 1.0                         # annotated pixels of the last annotated frame
        self._cache: tuple[tuple[int, int], Prediction] | None = None
        self._version = 0                              # bumps on every annotation change
        self.iteration = 0
        self.frame_index = 0

    # ----- properties -------------------------------------------------------------------
    @property
    def has_image(self) -> bool:
        return self._image is not None

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(height, width) of the original image, or None before set_image."""
        return None if self._image is None else self._image.shape[:2]

    @property
    def work_size(self) -> tuple[int, int] | None:
        """(height, width) of the working resolution, or None before set_image."""
        return self._work_size

    @property
    def network_size(self) -> tuple[int, int] | None:
        """(height, width) the network runs at (working size x network_scale), or None."""
        return self._net_size

    @property
    def annotations(self) -> tuple[Annotation, ...]:
        """Annotations of the current frame, oldest first."""
        with self._lock:
            return tuple(self._annotations)

    @property
    def image(self) -> np.ndarray | None:
        """The current original frame (H, W, 3) uint8."""
        return self._image

    @property
    def has_labels(self) -> bool:
        """True once the model has annotations to learn from (now or on an earlier frame)."""
        return self._has_labels

    # ----- scene and frames -------------------------------------------------------------
    def set_image(self, rgb: np.ndarray) -> None:
        """Start a new scene: a fresh model, no annotations, `rgb` as reconstruction target."""
        rgb = check_rgb(rgb)
        with self._lock:
            mult = 2 ** (self.cfg.model.encoder_layers - 1)
            self._work_size = working_size_for(rgb.shape[0], rgb.shape[1], self.cfg.working_size, mult)
            long_side = max(mult, round(max(self._work_size) * self.cfg.network_scale))
            self._net_size = working_size_for(rgb.shape[0], rgb.shape[1], long_side, mult)
            self._image = rgb.copy()
            self._target = self._to_tensor(rgb)
            self._build_model()
            self._annotations = []
            self._labels = torch.full(self._net_size, -1, dtype=torch.long, device=self.device)
            self._prev_probs = None
            self._refined: torch.Tensor | None = None  # (1, N, h, w) last refined prediction
            self._forget_shown()
            self._has_labels = False
            self.iteration = 0
            self.frame_index = 0
            self._touch()

    def next_frame(self, rgb: np.ndarray) -> None:
        """Tracking: keep the model, make `rgb` the reconstruction target. Annotations are per
        frame (as in the paper): the new frame starts with none, TCL carries the labels."""
        rgb = check_rgb(rgb)
        with self._lock:
            self._require_image()
            if rgb.shape != self._image.shape:
                raise ImageError(f'next frame has shape {rgb.shape}, the session has '
                                 f'{self._image.shape}; call set_image() to start a new scene')
            self._image = rgb.copy()
            self._target = self._to_tensor(rgb)
            if self.cfg.model.input_code == 'meshgrid+rgb':
                self._code = self._make_code()
            # the refined mask of an annotated frame teaches the next frame too (one frame
            # stale, as the TCL's target); after an unannotated frame there is none
            if not self._annotations:
                self._refined = None
            self._annotations = []
            self._labels = torch.full(self._net_size, -1, dtype=torch.long, device=self.device)
            self._forget_shown()
            self.frame_index += 1
            self._touch()

    # ----- annotations ------------------------------------------------------------------
    def add_annotation(self, annotation: Annotation) -> int:
        """Add a click, stroke or box of the current frame; returns its index.

        Raises AnnotationError (outside the image, unknown class, degenerate) and leaves the
        session unchanged.
        """
        with self._lock:
            self._require_image()
            h, w = self._image.shape[:2]
            validate_annotation(annotation, w, h, self.num_classes)
            self._annotations.append(annotation)
            self._update_labels()
            return len(self._annotations) - 1

    def undo(self) -> Annotation | None:
        """Remove and return the last annotation of the current frame (None if there is none)."""
        with self._lock:
            if not self._annotations:
                return None
            last = self._annotations.pop()
            self._update_labels()
            return last

    def clear(self) -> int:
        """Remove every annotation of the current frame; returns how many were removed."""
        with self._lock:
            n = len(self._annotations)
            self._annotations = []
            self._forget_shown()     # starting over: the next annotation may change anything
            if self._image is not None:
                self._update_labels()
            return n

    # ----- training ---------------------------------------------------------------------
    def warmup(self, iterations: int | None = None) -> StepResult:
        """Reconstruction-only iterations before the first click (paper, section 3.6)."""
        n = self.cfg.warmup_iterations if iterations is None else iterations
        return self.step(n)

    def step(self, iterations: int = 1) -> StepResult:
        """Run `iterations` optimiser steps. A non-finite loss skips its update (counted in the
        result); running out of memory raises TrainingError and leaves the session usable."""
        if iterations < 0:
            raise ValueError(f'iterations must be >= 0, got {iterations}')
        self._require_image()
        t0 = time.perf_counter()
        last = (float('nan'),) * 3
        nonfinite = 0
        for _ in range(iterations):
            with self._lock:
                try:
                    losses = self._one_iteration()
                except torch.cuda.OutOfMemoryError as err:
                    self._optimizer.zero_grad(set_to_none=True)
                    torch.cuda.empty_cache()
                    raise TrainingError(f'out of memory on {self.device} at working size '
                                        f'{self._work_size}: lower working_size or width') from err
            if losses is None:
                nonfinite += 1
            else:
                last = losses
        return StepResult(iterations, last[0], last[1], last[2], time.perf_counter() - t0, nonfinite)

    def _one_iteration(self) -> tuple[float, float, float] | None:
        model, opt, loss_cfg = self._model, self._optimizer, self.cfg.loss
        opt.zero_grad(set_to_none=True)
        with self._autocast():
            rgb, logits = model(self._code)
        probs = torch.softmax(logits.float(), dim=1)
        rec = reconstruction_loss(rgb, self._target)
        loss = loss_cfg.reconstruction_weight * rec
        seg = torch.zeros((), device=self.device)
        if self._has_labels:
            annotated = self._labels >= 0
            if loss_cfg.tcl:
                target = tcl_target(self._prev_probs, self._labels, self.num_classes)
                lam = loss_cfg.tcl_lambda if self._prev_probs is not None else 0.0
                weights = torch.where(annotated, 1.0, lam)
            else:
                target = tcl_target(None, self._labels, self.num_classes)
                weights = annotated.float()
            seg = tcl_loss(probs, target, weights, self._label_norm)
            if self._border_active:
                # no background click yet: the image border is probably background (class 0)
                border_p0 = probs[0, 0][self._border & ~annotated]
                seg = seg + loss_cfg.border_background * -torch.log(border_p0.clamp_min(1e-6)).mean()
            teaches = self.cfg.refine_teaches if self._annotations else self.cfg.refine_teaches_next
            if self._refined is not None and teaches > 0:
                # self-training: the network learns the refined labelling everywhere (on the
                # next frame, where the mask is one frame stale, with its own weight)
                taught = binary_cross_entropy_map(probs, self._refined)[0].mean()
                seg = seg + teaches * taught
            loss = loss + loss_cfg.annotation_weight * seg
        if not torch.isfinite(loss):
            opt.zero_grad(set_to_none=True)
            return None
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
        opt.step()
        self._update_tcl_base(probs.detach())
        self.iteration += 1
        return float(loss.detach()), float(rec.detach()), float(seg.detach())

    # ----- outputs ----------------------------------------------------------------------
    def predict(self) -> Prediction:
        """Class ids and probabilities at original size for the current model."""
        with self._lock:
            self._require_image()
            key = (self.iteration, self._version)
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
            probs = self.working_probabilities()                  # (1, N, h, w)
            if self.cfg.refine == 'graphcut' and self._annotations:
                probs = self._graphcut_refined(probs)
            h, w = self._image.shape[:2]
            up = F.interpolate(probs, size=(h, w), mode='bilinear', align_corners=False)[0]
            up = up / up.sum(dim=0, keepdim=True)
            probs_np = up.permute(1, 2, 0).contiguous().cpu().numpy().astype(np.float32)
            labels = probs_np.argmax(axis=2).astype(np.uint8)
            if not self._has_labels:
                labels[:] = UNLABELLED_ID
            pred = Prediction(labels, probs_np)
            self._cache = (key, pred)
            return pred

    @torch.no_grad()
    def working_probabilities(self) -> torch.Tensor:
        """(1, N, h, w) float32 class probabilities at working resolution."""
        with self._lock:
            self._require_image()
            with self._autocast():
                _, logits = self._model(self._code)
            return torch.softmax(logits.float(), dim=1)

    @torch.no_grad()
    def reconstruction(self) -> np.ndarray:
        """The network's RGB reconstruction, (H, W, 3) uint8 at original size."""
        with self._lock:
            self._require_image()
            with self._autocast():
                rgb, _ = self._model(self._code)
            img = (rgb.float()[0].permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()
            h, w = self._image.shape[:2]
            return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)

    def _graphcut_refined(self, probs: torch.Tensor) -> torch.Tensor:
        """The graph cut at working resolution (not the network's): the boundary term is
        only as sharp as the image it sees."""
        h, w = self._work_size
        up = F.interpolate(probs, size=(h, w), mode='bilinear', align_corners=False)[0]
        small = cv2.resize(self._image, (w, h), interpolation=cv2.INTER_AREA)
        seeds = rasterise(self._annotations, self._image.shape[:2], (h, w), self.cfg.click_radius)
        if self._shown is not None and not np.array_equal(seeds, self._shown[1]):
            self._corrected = True           # annotated after seeing a cut of this frame
            if self.cfg.refine_merge:
                self._merge_base = self._shown   # what the user saw when they annotated
        refined = graphcut_refine(small, up.cpu().numpy(), seeds, self._network_weight(),
                                  self.cfg.refine_click_confidence, base=self._merge_base,
                                  click_edge_cost=self.cfg.refine_click_edge_cost)
        self._shown = (refined.argmax(axis=0), seeds)
        out = torch.from_numpy(np.ascontiguousarray(refined, dtype=np.float32))[None].to(probs.device)
        if self.cfg.refine_teaches > 0 or self.cfg.refine_teaches_next > 0:
            self._refined = F.interpolate(out, size=self._net_size, mode='area')
        return out

    def _network_weight(self) -> float:
        """The network's exponent in the cut's prior. Before the frame's first correction the
        network knows little beyond the clicks, and weighted high it drags the cut towards its
        blob; after it, it has been taught the cut the user corrected, and its weight is what
        keeps the next cut near that one (stability)."""
        first = self.cfg.refine_network_weight_first
        return first if first >= 0 and not self._corrected else self.cfg.refine_network_weight

    # ----- internals --------------------------------------------------------------------
    def _forget_shown(self) -> None:
        """A new frame: no refined labelling shown yet, nothing for `refine_merge` to keep."""
        self._shown: tuple[np.ndarray, np.ndarray] | None = None        # (labels, seeds)
        self._merge_base: tuple[np.ndarray, np.ndarray] | None = None
        self._corrected = False    # an annotation was added or undone after a cut was shown

    def _require_image(self) -> None:
        if self._image is None:
            raise RuntimeError('An image must be set with .set_image(...) first.')

    def _touch(self) -> None:
        self._version += 1
        self._cache = None

    def _to_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        h, w = self._net_size
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        t = torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255.0
        # CUDA: page-locked upload that does not wait for the copy (a no-op on CPU)
        return pin_for(t, self.device).to(self.device, non_blocking=True)

    def _make_code(self) -> torch.Tensor:
        h, w = self._net_size
        gen = torch.Generator().manual_seed(self.cfg.seed)
        code = make_input_code(self.cfg.model, h, w, rgb=self._target, generator=gen)
        # NHWC: 1.06-1.27x faster steps on CPU (docs/speed.md), same values up to rounding
        return code.to(self.device).contiguous(memory_format=torch.channels_last)

    def _build_model(self) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            model = SegDipNet(self.cfg.model, input_channels(self.cfg.model))
        self._model = model.to(self.device, memory_format=torch.channels_last)
        self._optimizer = torch.optim.Adam(self._model.parameters(), lr=self.cfg.learning_rate,
                                           amsgrad=True)
        self._code = self._make_code()
        h, w = self._net_size
        border = torch.ones((h, w), dtype=torch.bool)
        border[2:-2, 2:-2] = False                     # a 2-pixel ring at working resolution
        self._border = border.to(self.device)
        self._border_active = False

    def _update_labels(self) -> None:
        labels = rasterise(self._annotations, self._image.shape[:2], self._net_size,
                           self.cfg.click_radius, radius_scale=self.cfg.network_scale)
        self._labels = torch.from_numpy(labels).to(self.device)
        self._border_active = (self.cfg.loss.border_background > 0 and bool(self._annotations)
                               and not any(a.class_id == 0 for a in self._annotations))
        if self.cfg.loss.tcl_anchor == 'snapshot' and self._has_labels:
            self._prev_probs = self.working_probabilities()   # what was predicted before the change
        if self._annotations:
            self._has_labels = True
            self._label_norm = float((labels >= 0).sum())
        elif self.frame_index == 0:
            self._has_labels = False
        self._touch()

    def _update_tcl_base(self, probs: torch.Tensor) -> None:
        """T^k base: the last prediction (paper), or its running average when tcl_momentum > 0,
        whose lag gives the loss a real pull back towards what was predicted before."""
        if self.cfg.loss.tcl_anchor == 'snapshot' and self._prev_probs is not None:
            return  # frozen until the annotations change (see _update_labels)
        m = self.cfg.loss.tcl_momentum
        if m <= 0 or self._prev_probs is None:
            self._prev_probs = probs
        else:
            self._prev_probs = self._prev_probs.mul_(m).add_(probs, alpha=1 - m)

    def _autocast(self):
        if self._amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self._amp_dtype)
