# SPDX-License-Identifier: Apache-2.0
"""The node's training thread's rules, driven tick by tick with fake callables (no DDS, no
thread): which frame an annotation lands on, the iteration budgets, when labels are made."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from segdip_ros.core import Click, default_preset
from segdip_ros.core.synthetic import two_class_scene
from segdip_ros.node.inputs import Command
from segdip_ros.node.state import Frame, Schedule
from segdip_ros.node.trainer import Trainer

CFG = default_preset(
    2,
    working_size=64,
    width=8,
    warmup_iterations=4,
    iterations_first=6,
    iterations_per_click=5,
    iterations_per_frame=3,
)


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[int, bool]] = []  # (frame stamp, final)
        self.iteration_at: dict[int, int] = {}  # first final publish of a frame
        self.warnings: list[tuple[str, str]] = []

    def publish(self, frame, session, final) -> None:
        self.published.append((frame.stamp_ns, final))
        if final:
            self.iteration_at.setdefault(frame.stamp_ns, session.iteration)

    def warn(self, category, message) -> None:
        self.warnings.append((category, message))


@pytest.fixture
def trainer():
    rec = Recorder()
    t = Trainer(
        lambda: CFG,
        Schedule(mode='tracking', publish_period=1e6),
        rec.publish,
        rec.warn,
        lambda m: None,
    )
    t.rec = rec
    return t


def _frame(stamp: int) -> Frame:
    return Frame(two_class_scene(height=48, width=64, seed=1).rgb, None, stamp, 'cam')


def _run(t: Trainer, ticks: int = 200) -> None:
    """Tick until the budget is spent and nothing waits (or `ticks` run out)."""
    for _ in range(ticks):
        t._tick()
        if (
            t.session is not None
            and t._warmup_left <= 0
            and t._budget <= 0
            and t._pending is None
            and not t._commands
        ):
            t._tick()
            return


def test_first_frame_budget_and_clicks_queued_during_the_warm_up(trainer):
    trainer.submit_frame(_frame(100))
    trainer._tick()  # the scene starts, warm-up begins
    trainer.submit(Command('add', Click(10, 10, 1), 100, 'test'))
    trainer.submit(Command('add', Click(50, 40, 0), 0, 'test'))
    _run(trainer)
    s = trainer.session
    assert len(s.annotations) == 2
    # warm-up, the first frame, one click's worth per annotation; then its labels are made
    assert s.iteration == (
        CFG.warmup_iterations + CFG.iterations_first + 2 * CFG.iterations_per_click
    )
    assert s.predict().refined and (100, True) in trainer.rec.published


def test_an_annotation_for_a_future_frame_waits_for_it_and_a_late_one_is_kept(trainer):
    trainer.submit_frame(_frame(100))
    _run(trainer)
    trainer.submit(Command('add', Click(10, 10, 1), 300, 'test'))  # a frame not yet here
    _run(trainer)
    assert trainer.session.annotations == () and trainer.pending_commands == 1
    trainer.submit_frame(_frame(300))
    _run(trainer)
    assert trainer.session.frame_index == 1 and len(trainer.session.annotations) == 1
    trainer.submit_frame(_frame(400))
    _run(trainer)
    trainer.submit(Command('add', Click(20, 20, 0), 300, 'test'))  # its frame has passed
    _run(trainer)
    assert len(trainer.session.annotations) == 1  # on the current frame
    assert any(cat == 'late' for cat, _ in trainer.rec.warnings)


def _labelled_first_frame(t: Trainer) -> int:
    """Frame 100 with one click, its budget spent; returns the iteration count then."""
    t.submit_frame(_frame(100))
    t._tick()
    t.submit(Command('add', Click(10, 10, 1), 0, 'test'))
    _run(t)
    return t.session.iteration


def test_a_tracked_frame_is_labelled_before_it_trains(trainer):
    before = _labelled_first_frame(trainer)
    trainer.submit_frame(_frame(200))
    _run(trainer)
    assert trainer.rec.iteration_at[200] == before  # its labels went out before training
    assert trainer.session.iteration == before + CFG.iterations_per_frame


def test_fast_clicks_do_not_hold_the_stream_on_one_frame(trainer):
    trainer.submit_frame(_frame(100))
    _run(trainer)
    trainer.submit_frame(_frame(200))  # a newer frame waits
    for k in range(6):
        trainer._apply(Command('add', Click(10 + k, 10, 1), 0, 'test'))
    assert trainer._budget == CFG.iterations_per_click
    trainer.schedule = Schedule(mode='still', publish_period=1e6)
    trainer._budget = 0
    for k in range(3):
        trainer._apply(Command('add', Click(30 + k, 10, 0), 0, 'test'))
    assert trainer._budget == 3 * CFG.iterations_per_click  # still images: they add up
    assert np.isfinite(trainer.stats.iterations_per_second)


def test_a_stream_faster_than_training_gets_labels_for_every_frame_it_takes(trainer):
    """While a newer frame waits, a tracked frame trains CATCH_UP_ITERATIONS and gives way:
    each frame taken is labelled; with nothing waiting it trains its whole budget."""
    from segdip_ros.node.trainer import CATCH_UP_ITERATIONS

    trainer._make_config = lambda: replace(CFG, iterations_per_frame=8)
    start = _labelled_first_frame(trainer)
    trainer.submit_frame(_frame(200))
    for _ in range(3):  # frame 200 becomes current and is labelled
        trainer._tick()
        if trainer.session.frame_index == 1 and trainer._frame_refined:
            break
    trainer.submit_frame(_frame(300))  # the camera is already one frame ahead
    for _ in range(20):
        trainer._tick()
        if 300 in trainer.rec.iteration_at:
            break
    assert trainer.session.frame_index == 2
    assert trainer.rec.iteration_at[200] == start  # frame 200 was labelled, then trained
    assert trainer.rec.iteration_at[300] == start + CATCH_UP_ITERATIONS  # and gave way
    assert trainer.stats.catch_up_frames == 1
    _run(trainer)  # nothing waits now: frame 300 gets its whole budget
    assert trainer.session.iteration == start + CATCH_UP_ITERATIONS + 8
    finals = [stamp for stamp, final in trainer.rec.published if final]
    assert finals.count(200) == 1  # no second publish of the labels it gave way with
