# SPDX-License-Identifier: Apache-2.0
"""When the node adds frames to its dataset by itself (`dataset_keyframes`).

Why a module of its own: the rule is a few counters and clocks, testable without a thread or
an engine; the trainer only asks `due(...)` at its two decision points and writes the sample.

- 'annotated': a frame that got annotations is saved at the end of its training budget (the
  mask the operator's clicks produced), again after each further burst of clicks on it.
- a period ('10s' in dataset_keyframes): the current frame is saved every that many seconds
  while the node shows labels, skipped when neither the frame nor the model changed since the
  last one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

__all__ = ['KEYFRAME_MODES', 'KeyframePolicy']

KEYFRAME_MODES = ('off', 'annotated')


class KeyframePolicy:
    """State of the keyframe rule between calls (one per trainer)."""

    def __init__(self, now: float) -> None:
        self._accepted_saved = 0
        self._period_start = now
        self._last_key: Hashable = None

    def due(
        self,
        mode: str,
        period: float,
        budget_end: bool,
        now: float,
        annotations: int,
        accepted: int,
        key: Hashable,
        labelled: Callable[[], bool],
    ) -> str | None:
        """'keyframe' or 'period' when the current frame should be saved now, else None.

        budget_end: the frame's training budget has just been spent; annotations: on the
        current frame; accepted: annotations accepted so far (a counter); key: identifies
        frame + model state (e.g. (stamp, iteration)); labelled(): the mask has labels.
        """
        if (
            budget_end
            and mode == 'annotated'
            and annotations > 0
            and accepted != self._accepted_saved
        ):
            self._accepted_saved = accepted
            self._last_key = key
            return 'keyframe'
        if period > 0 and now - self._period_start >= period:
            self._period_start = now
            if key != self._last_key and labelled():
                self._last_key = key
                return 'period'
        return None
