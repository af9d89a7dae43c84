"""The frame-switch rule: which engine calls a video's frames and annotations turn into.

One rule for the live node (`segdip_ros.node.trainer`, which spreads the same budgets over
time on its own thread) and for offline evaluation (`FrameDriver`, used by segdip_eval_bag and
the tests), so a bag replayed offline runs the very calls the node would make live:

- a scene's first frame: ``set_image``, ``warmup()`` (cfg.warmup_iterations, reconstruction
  only), the frame's annotations, then ``cfg.iterations_first`` iterations;
- every later frame: ``next_frame``, the frame's annotations (normally none), then
  ``cfg.iterations_per_frame`` iterations;
- every accepted annotation adds ``cfg.iterations_per_click`` to the current budget; undo and
  clear add nothing;
- labels: a frame with annotations is refined (``refine()``) when its budget is spent, after
  the network has learned the annotations; a frame without any (a tracked video frame) is
  refined as soon as it arrives, and the network then trains on those labels, so each frame's
  labels are out before its training starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .annotations import annotation_from_dict
from .config import SessionConfig
from .errors import SegDipError
from .session import Prediction, TrainingSession

__all__ = ['FrameDriver', 'apply_annotation', 'frame_budget', 'refine_first']


def refine_first(session: TrainingSession) -> bool:
    """True when the current frame is refined before its training: a video frame without
    annotations of its own."""
    return session.frame_index > 0 and not session.annotations


def frame_budget(cfg: SessionConfig, first: bool, annotations_added: int) -> int:
    """Iterations a frame gets once its annotations are applied (the warm-up not counted)."""
    base = cfg.iterations_first if first else cfg.iterations_per_frame
    return base + annotations_added * cfg.iterations_per_click


def apply_annotation(session: TrainingSession, ann: dict[str, Any]) -> bool:
    """Apply one annotation dict of the ~/annotations schema ({"type": "click", ...},
    {"type": "undo"}, {"type": "clear"}); True when it added an annotation. Raises SegDipError
    (AnnotationError) for a malformed one, leaving the session unchanged."""
    kind = ann.get('type') if isinstance(ann, dict) else None
    if kind == 'undo':
        session.undo()
        return False
    if kind == 'clear':
        session.clear()
        return False
    session.add_annotation(annotation_from_dict(ann))
    return True


class FrameDriver:
    """Feeds frames and their annotations to a session with the frame-switch rule.

    A malformed annotation is skipped and its message kept in `errors`, as the node logs it
    and goes on. `warmup=False` skips the warm-up (tests on tiny scenes).
    """

    def __init__(self, session: TrainingSession, warmup: bool = True) -> None:
        self.session = session
        self.warmup = warmup
        self.errors: list[str] = []

    def process(self, rgb: np.ndarray, annotations: Sequence[dict[str, Any]] = ()) -> Prediction:
        """Train on one frame and return its labels."""
        s = self.session
        first = not s.has_image
        if first:
            s.set_image(rgb)
            if self.warmup:
                s.warmup()
        else:
            s.next_frame(rgb)
        added = 0
        for ann in annotations:
            try:
                added += apply_annotation(s, ann)
            except (SegDipError, ValueError) as err:
                self.errors.append(f'frame {s.frame_index}: {err}')
        budget = frame_budget(s.cfg, first, added)
        if refine_first(s):
            pred = s.refine()
            s.step(budget)
            return pred
        s.step(budget)
        return s.refine()
