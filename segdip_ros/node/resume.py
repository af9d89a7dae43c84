# SPDX-License-Identifier: Apache-2.0
"""Restore the training thread from `session_dir`: checkpoint plus write-ahead log.

Why a module of its own: the node restores at every lifecycle activate (a start is one), and
the rules for what a checkpoint and the annotation log give back are the store's and the
journal's (docs/durability.md); this function only joins them to the trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from segdip_ros.core import CheckpointError, SessionConfig
from segdip_ros.node.journal import ReplayPlan, plan_replay
from segdip_ros.node.state import Frame
from segdip_ros.node.store import SessionStore

__all__ = ['restore_trainer']


def restore_trainer(
    store: SessionStore,
    cfg: SessionConfig,
    num_classes: int,
    trainer: Any,
    warn: Callable[[str, str], Any],
    info: Callable[[str], Any],
) -> tuple[int, int] | None:
    """Checkpoint + write-ahead log -> the trainer's state (before trainer.start()).

    Returns the restored image size (h, w), or None when there was no usable checkpoint.
    """
    restored = None
    try:
        restored = store.load_checkpoint(cfg)
    except CheckpointError as err:
        moved = store.set_checkpoint_aside('unusable')
        warn(
            'resume',
            f'checkpoint in {store.dir} set aside as {moved.name} ({err}); '
            'starting from the annotation log alone',
        )
    expect = restored.meta.get('journal_id') if restored is not None else None
    records, notes = store.open_journal(num_classes, expect)
    for note in notes:
        warn('resume', note)
    plan = plan_replay(
        records, restored.journal_seq if restored else None, restored.frame if restored else None
    )
    frame = None
    if restored is not None:
        stamp_ns, frame_id = restored.stamp_ns, restored.frame_id
        header = Header(
            stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
            frame_id=frame_id,
        )
        frame = Frame(restored.session.image, header, stamp_ns, frame_id)
    trainer.resume(restored, frame, plan)
    _log_resume(store, trainer, restored is not None, plan, info)
    return restored.session.image_size if restored is not None else None


def _log_resume(
    store: SessionStore,
    trainer: Any,
    from_checkpoint: bool,
    plan: ReplayPlan,
    info: Callable[[str], Any],
) -> None:
    session = trainer.session
    if session is None and not (plan.pending or plan.restore):
        return
    what = (
        f'{len(session.annotations)} annotation(s) on the current frame, iteration '
        f'{session.iteration}'
        if from_checkpoint and session is not None
        else 'no checkpoint'
    )
    info(
        f'resumed session from {store.dir}: {what}; {len(plan.reapply)} logged command(s) '
        f'applied again, {len(plan.pending)} pending queued again, {len(plan.restore)} '
        'restored from the log for the first frame'
    )
