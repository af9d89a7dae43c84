# SPDX-License-Identifier: Apache-2.0
"""Plain data passed between the node's callbacks and its training thread (no logic)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ['Frame', 'Request', 'Schedule', 'TrainerStats']


@dataclass(frozen=True)
class Frame:
    """One decoded camera frame. header: the message header (copied to every output)."""

    rgb: np.ndarray
    header: Any
    stamp_ns: int
    frame_id: str = ''


@dataclass(frozen=True)
class Schedule:
    """What the thread follows besides the engine's budgets (those come from the session's
    SessionConfig); replaced as a whole on a live parameter change."""

    mode: str = 'tracking'
    publish_period: float = 0.2
    autosave_period: float = 30.0
    dataset_keyframes: str = 'off'  # 'off' | 'annotated' (node/keyframes.py)
    dataset_period: float = 0.0  # s between dataset samples while labels show, 0 = off


@dataclass
class TrainerStats:
    """Counters for diagnostics and tests (written by the thread, read anywhere)."""

    state: str = 'waiting for image'
    iteration: int = 0
    frame_index: int = 0
    iterations_per_second: float = 0.0
    loss: float = float('nan')
    frames_used: int = 0
    frames_dropped: int = 0
    catch_up_frames: int = 0  # tracked frames cut short because a newer frame waited
    scenes: int = 0
    annotations_accepted: int = 0
    annotations_rejected: int = 0
    checkpoints: int = 0
    log_errors: int = 0
    publishes: int = 0
    last_error: str = ''


@dataclass
class Request:
    """A service request for the thread; `done` is set with `ok` and `message`."""

    op: str
    command: Any = None  # undo/clear: the Command accepted into the log
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    message: str = ''

    def finish(self, ok: bool, message: str) -> None:
        self.ok, self.message = ok, message
        self.done.set()
