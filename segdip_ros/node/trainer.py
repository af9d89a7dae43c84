# SPDX-License-Identifier: Apache-2.0
"""The node's training thread: frames and annotation commands in, a TrainingSession trained.

Why a thread of its own: an optimiser step takes tens of milliseconds on a CPU, and a ROS
callback must never wait for it. Callbacks only hand over the newest frame (one slot: a newer
frame replaces an unused one, which is counted as dropped) and queue commands; this thread
applies them between short chunks of iterations (~0.1 s), trains, and calls the output
function at the publish rate. No rclpy here.

Engine call sequence: the engine's frame-switch rule (segdip_ros.core.schedule), spread over
time:
- new scene (first frame, ~/reset, image size change): set_image, warm-up
  (cfg.warmup_iterations, annotations held back so it stays reconstruction-only), then
  `cfg.iterations_first` iterations;
- every accepted annotation adds `cfg.iterations_per_click` iterations to the current budget
  (tracking with a newer frame waiting: the budget is then at most one click's worth);
- labels (`core.schedule`): an annotated frame is refined when its budget is spent, a tracked
  frame as soon as its annotations (none) are applied, then it trains; each refinement is
  published (`final=True`);
- tracking: when the budget is spent and a newer frame is waiting, next_frame(newest) with
  `cfg.iterations_per_frame`;
- still: the frame stays until ~/next_frame; with nothing to do the thread sleeps.

Annotations carry the stamp of the frame they were made on (0 = none: the current frame).
A stamp newer than the current frame is held until that frame becomes current; an older one
(its frame was dropped or passed) goes to the current frame, so no click is ever lost.
Annotations that arrive before any image are kept and applied to the first frame.

With a store, every command is written to the annotation log when it is accepted (submit,
before it is queued) and again when the engine applies or refuses it; a checkpoint is written
at every scene start and after every applied change. resume() replays the log against the
checkpoint (segdip_ros.node.journal.plan_replay), so SIGKILL in any state loses nothing that
was accepted and applies nothing twice.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from segdip_ros.core import (
    SegDipError,
    SessionConfig,
    TrainingError,
    TrainingSession,
    frame_budget,
)
from segdip_ros.core.schedule import refine_first
from segdip_ros.node.inputs import Command, command_to_dict
from segdip_ros.node.journal import ReplayPlan, applied_record, command_from_record, queued_record
from segdip_ros.node.keyframes import KeyframePolicy
from segdip_ros.node.state import Frame, Request, Schedule, TrainerStats
from segdip_ros.node.store import Restored, SessionStore

__all__ = ['Frame', 'Request', 'Schedule', 'Trainer', 'TrainerStats']

MAX_HELD = 1000  # annotations waiting for a future frame
CHUNK_SECONDS = 0.1  # target duration of one chunk of iterations
# Iterations a tracked frame trains for at most while a newer frame already waits: the
# labels of every frame come first (flow + cut), the network learns in the time left over.
CATCH_UP_ITERATIONS = 2


PublishFn = Callable[[Frame, TrainingSession, bool], None]
OverlayFn = Callable[[Frame, TrainingSession], np.ndarray]


class Trainer:
    """Owns the TrainingSession; all engine calls happen on its thread (see module doc).

    Args:
        make_config: engine configuration for a new scene (read again at every scene start,
            so learning-rate and TCL changes apply at the next reset).
        schedule: iteration counts and periods.
        publish: called with (frame, session, final) at the publish rate and at the end of
            each frame's budget.
        warn: warn(category, message) for problems (the node rate-limits them).
        info: info(message) for normal events.
        store: persistence, or None.
        overlay: overlay image for ~/save.
    """

    def __init__(
        self,
        make_config: Callable[[], SessionConfig],
        schedule: Schedule,
        publish: PublishFn,
        warn: Callable[[str, str], None],
        info: Callable[[str], None],
        store: SessionStore | None = None,
        overlay: OverlayFn | None = None,
    ) -> None:
        self._make_config = make_config
        self.schedule = schedule
        self._publish_fn = publish
        self._warn = warn
        self._info = info
        self._store = store
        self._overlay = overlay
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._paused = threading.Event()  # ~/enable false: no training, no publishing
        self._applying = 0  # commands taken off the queue whose apply + checkpoint runs now
        self._thread: threading.Thread | None = None
        self._pending: Frame | None = None
        self._commands: deque[Command] = deque()
        self._requests: deque[Request] = deque()
        self._held: list[Command] = []
        self.session: TrainingSession | None = None
        self.current: Frame | None = None
        self._warmup_left = 0
        self._budget = 0
        self._frame_refined = False
        self._frame_iterations = 0  # iterations the current frame has trained
        self._next_publish = 0.0
        self._last_save = time.monotonic()
        self._saved_iteration = -1
        self.scene_id = ''  # names the scene in applied records and the checkpoint
        self._frame_offset = 0  # frame index in records = session.frame_index + this
        self.stats = TrainerStats()
        self._keyframes = KeyframePolicy(time.monotonic())

    # ----- called from ROS callbacks (any thread) ----------------------------------------
    def submit_frame(self, frame: Frame) -> None:
        """Offer the newest frame; an unused older one is replaced (counted as dropped)."""
        with self._lock:
            if self._pending is not None:
                self.stats.frames_dropped += 1
            self._pending = frame
        self._wake.set()

    def submit(self, command: Command) -> Command:
        """Accept an annotation command: log it (write-ahead), then queue it; applied in
        order on the thread. Returns it with its log id."""
        with self._lock:  # log order = queue order
            command = self._accept(command)
            self._commands.append(command)
        self._wake.set()
        return command

    def request(self, op: str) -> Request:
        """Queue 'reset', 'next_frame', 'save', 'undo' or 'clear'; wait on the returned
        Request's `done`. undo and clear are accepted into the log here, like submit()."""
        req = Request(op)
        if op in ('undo', 'clear'):
            req.command = self._accept(Command(op, None, 0, 'service'))
        with self._lock:
            self._requests.append(req)
        self._wake.set()
        return req

    def _accept(self, command: Command) -> Command:
        """Write the command's queued record (fsync) and give it the record's id."""
        journal = self._store.journal if self._store is not None else None
        if journal is None:
            return command
        try:
            rec = journal.append(queued_record(command))
        except (OSError, ValueError) as err:
            self.stats.log_errors += 1
            self._warn(
                'store',
                f'cannot append to the annotation log (the command is queued '
                f'but would not survive a crash): {err}',
            )
            return command
        return replace(command, id=rec['id'])

    def set_schedule(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self._wake.set()

    def resume(self, restored: Restored | None, frame: Frame | None, plan: ReplayPlan) -> None:
        """Start from a restored session and the log's replay plan (before start()).

        The checkpoint's frame becomes current; commands applied after the checkpoint are
        applied again without new records, pending ones are queued again, and (no usable
        checkpoint) the last frame's annotation set is accepted again as new commands. Then
        a checkpoint is written, so a second crash replays from here.
        """
        if restored is not None and frame is not None:
            session, meta = restored.session, restored.meta
            self.session, self.current = session, frame
            self.stats.state, self.stats.iteration = 'idle', session.iteration
            self.stats.frame_index = session.frame_index
            key = restored.frame
            self.scene_id = key[0] if key else secrets.token_hex(3)
            self._frame_offset = (key[1] if key else 0) - session.frame_index
            self._warmup_left = max(0, int(meta.get('warmup_left', 0)))
            self._budget = int(meta.get('budget', 0))
            self._replay_onto_session(plan)
        for rec in plan.pending:
            self._requeue(rec, stamp=True)
        for rec in plan.restore:
            self._requeue(rec, stamp=False, new_record=True)
        if self.session is not None:
            self._autosave(force=True)
        self._saved_iteration = self.session.iteration if self.session is not None else -1

    def _replay_onto_session(self, plan: ReplayPlan) -> None:
        """Apply again the commands the checkpoint does not hold yet (see plan_replay)."""
        s = self.session
        if plan.replace_set:
            s.clear()
            if plan.frame is not None:
                self.scene_id = plan.frame[0]
                self._frame_offset = plan.frame[1] - s.frame_index
        refused = 0
        for rec in plan.reapply:
            try:
                cmd = command_from_record(rec)
                if cmd.kind == 'add':
                    s.add_annotation(cmd.annotation)
                elif cmd.kind == 'undo':
                    s.undo()
                else:
                    s.clear()
            except (SegDipError, ValueError, KeyError, TypeError):
                refused += 1
        if plan.reapply:
            self._info(
                f'applied {len(plan.reapply) - refused} logged command(s) again that '
                'the checkpoint did not hold yet'
                + (f' ({refused} no longer fit the image)' if refused else '')
            )

    def _requeue(self, rec: dict, stamp: bool, new_record: bool = False) -> None:
        """Queue a logged command again (its id kept, or accepted anew)."""
        try:
            cmd = command_from_record(rec, stamp=stamp)
        except (SegDipError, ValueError, KeyError, TypeError) as err:
            self._record(
                Command('add', None, 0, 'log', rec.get('id', '')),
                'refused',
                reason=f'cannot read the logged command: {err}',
            )
            return
        if new_record:
            self.submit(replace(cmd, id='', source='restored'))
        else:
            with self._lock:
                self._commands.append(cmd)

    def set_paused(self, paused: bool) -> None:
        """Pause (no iterations, no outputs; inputs keep queueing) or resume the thread."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def release(self) -> TrainingSession | None:
        """Drop the session, its frame and any waiting frame (after stop()); returns the
        session so the caller can free it. The next start() begins with the next frame, or
        with a session given to resume()."""
        session, self.session, self.current = self.session, None, None
        self._warmup_left = self._budget = 0
        with self._lock:
            self._pending = None
        return session

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def pending_commands(self) -> int:
        """Commands not yet applied and checkpointed (queued, held, or being applied)."""
        return len(self._commands) + len(self._held) + self._applying

    # ----- thread ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread (again after stop(): lifecycle activate)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name='segdip_trainer', daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread, save a last checkpoint; True when it ended within `timeout`."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as err:
                self.stats.last_error = repr(err)
                self._warn('trainer', f'training loop error (continuing): {err!r}')
                self._stop.wait(0.5)
        self._flush_on_stop()
        self._autosave(force=True)

    def _flush_on_stop(self) -> None:
        """Apply what is still queued or held (its frame never came) to the current frame,
        so the last checkpoint and the log hold every click the operator gave."""
        if self.session is None or self.current is None:
            return
        with self._lock:
            self._commands = deque(replace(c, stamp_ns=0) for c in (*self._held, *self._commands))
        self._held = []
        try:
            self._apply_commands()
        except Exception as err:
            self._warn('trainer', f'could not apply the last annotations: {err!r}')

    def _tick(self) -> None:
        self._handle_requests()
        if self._paused.is_set():
            self.stats.state = 'paused'
            self._wake.wait(0.5)
            self._wake.clear()
            return
        sched = self.schedule
        if self.session is None or self.current is None:
            frame = self._take_pending()
            if frame is None:
                self.stats.state = 'waiting for image'
                self._idle()
                return
            self._start_scene(frame)
            return
        if self._warmup_left > 0:
            self.stats.state = 'warm-up'
            n = self._chunk(self._warmup_left)
            self._step(n)
            self._warmup_left -= n
            self._maybe_publish()
            return
        self._apply_commands()
        if not self._frame_refined and refine_first(self.session):
            self._frame_refined = True  # a tracked frame: its labels first, then training
            self.session.refine()
            self._publish(final=True)
        if self._budget <= 0 and self.session.needs_refine:
            self._finish_budget()  # an undo or clear: no iterations, new labels at once
        self._keyframe(budget_end=False)
        catch_up = sched.catches_up
        if catch_up and self._pending is not None and self._behind():
            self._budget = 0  # its labels are out; the newer frame's come first
            self.stats.catch_up_frames += 1
        if self._budget <= 0 and sched.follows_stream and self._pending is not None:
            self._switch(self._take_pending())
            return
        if self._budget > 0:
            self.stats.state = 'training'
            n = self._chunk(self._budget)
            if catch_up and self._frame_refined and self._frame_iterations < CATCH_UP_ITERATIONS:
                n = min(n, CATCH_UP_ITERATIONS - self._frame_iterations)  # then look again
            self._step(n)
            self._frame_iterations += n
            self._budget -= n
            if self._budget <= 0:
                self._finish_budget()
                self._keyframe(budget_end=True)
            else:
                self._maybe_publish()
            return
        self.stats.state = 'idle'
        self._autosave()
        self._idle()

    # ----- scenes and frames -------------------------------------------------------------
    def _take_pending(self) -> Frame | None:
        with self._lock:
            frame, self._pending = self._pending, None
        return frame

    def _start_scene(self, frame: Frame) -> None:
        """Fresh model on `frame` (first frame, reset or size change), then warm-up."""
        old = self.session
        reason = (
            'first image'
            if old is None or not old.has_image
            else 'image size'
            if old.image.shape != frame.rgb.shape
            else 'reset'
        )
        session = TrainingSession(self._make_config())
        session.set_image(frame.rgb)
        self.session, self.current = session, frame
        self.scene_id, self._frame_offset = secrets.token_hex(3), 0
        self._warmup_left = session.cfg.warmup_iterations
        self._budget = frame_budget(session.cfg, first=True, annotations_added=0)
        self.stats.scenes += 1
        self.stats.frames_used += 1
        self.stats.frame_index = 0
        self._info(
            f'new scene {frame.rgb.shape[1]}x{frame.rgb.shape[0]} (working size '
            f'{session.work_size[1]}x{session.work_size[0]}, device {session.device}); '
            f'warm-up {self._warmup_left} iterations'
        )
        self._mark_scene(reason)
        self._release_held(frame.stamp_ns)

    def _mark_scene(self, reason: str) -> None:
        """Log the new scene and checkpoint it, so a restart resumes this scene."""
        if self._store is None or self._store.journal is None:
            return
        h, w = self.current.rgb.shape[:2]
        try:
            self._store.journal.append(
                {
                    'status': 'scene',
                    'scene': self.scene_id,
                    'reason': reason,
                    'size': [int(w), int(h)],
                }
            )
        except OSError as err:
            self._warn('store', f'cannot append to the annotation log: {err}')
        self._autosave(force=True)

    def _switch(self, frame: Frame | None) -> bool:
        """Make `frame` the reconstruction target (next_frame), or a new scene if its size
        differs. False when there is no frame."""
        if frame is None:
            return False
        if frame.rgb.shape != self.session.image.shape:
            old = self.session.image.shape
            self._warn(
                'size',
                f'image size changed from {old[1]}x{old[0]} to '
                f'{frame.rgb.shape[1]}x{frame.rgb.shape[0]}: restarting the session '
                '(model and current annotations start over; the log keeps them)',
            )
            self._start_scene(frame)
            return True
        self.session.next_frame(frame.rgb)
        self._frame_refined = False
        self._frame_iterations = 0
        self.current = frame
        self._budget = frame_budget(self.session.cfg, first=False, annotations_added=0)
        self.stats.frames_used += 1
        self.stats.frame_index = self.session.frame_index
        self._release_held(frame.stamp_ns)
        return True

    def _release_held(self, stamp_ns: int) -> None:
        """Queue (at the front) held commands whose frame is now current or already passed."""
        ready = [c for c in self._held if c.stamp_ns <= stamp_ns]
        if ready:
            self._held = [c for c in self._held if c.stamp_ns > stamp_ns]
            with self._lock:
                self._commands.extendleft(reversed(ready))

    # ----- commands ----------------------------------------------------------------------
    def _apply_commands(self) -> None:
        try:
            self._apply_queued()
        finally:
            self._applying = 0

    def _apply_queued(self) -> None:
        changed = False
        while True:
            with self._lock:
                if not self._commands:
                    break
                cmd = self._commands.popleft()
                self._applying += 1  # still pending until applied and checkpointed
            cur = self.current.stamp_ns
            if cmd.stamp_ns > cur:
                if len(self._held) >= MAX_HELD:
                    dropped = self._held.pop(0)
                    self._warn(
                        'held',
                        f'too many annotations wait for future frames; dropped '
                        f'the oldest ({command_to_dict(dropped)})',
                    )
                    self._record(dropped, 'refused', reason='too many wait for future frames')
                self._held.append(cmd)
                continue
            if cmd.stamp_ns and cmd.stamp_ns < cur:
                self._warn(
                    'late',
                    'an annotation arrived for a frame the node has already left '
                    '(or dropped); applied to the current frame',
                )
            changed |= self._apply(cmd)
        if changed:
            self._autosave(force=True)

    def _behind(self) -> bool:
        """A tracked frame (labels published, no annotations) that has had its catch-up
        iterations while a newer frame waits: the stream is faster than the full budget."""
        return (
            self._budget > 0
            and self._frame_refined
            and self._frame_iterations >= CATCH_UP_ITERATIONS
            and refine_first(self.session)
        )

    def _click_budget(self, per_click: int) -> int:
        """The budget after an accepted annotation: one more click's worth; but following a
        stream (tracking) with a newer frame waiting, at most one click's worth, so an operator
        who clicks faster than the network trains does not hold the video on one frame."""
        budget = max(self._budget, 0) + per_click
        if self.schedule.follows_stream and self._pending is not None:
            budget = min(budget, per_click)
        return budget

    def _apply(self, cmd: Command) -> bool:
        """Apply one command to the engine and log the outcome (applied or refused)."""
        s = self.session
        try:
            if cmd.kind == 'add':
                s.add_annotation(cmd.annotation)
                self.stats.annotations_accepted += 1
                self._budget = self._click_budget(s.cfg.iterations_per_click)
            elif cmd.kind == 'undo':
                if s.undo() is None:
                    return self._record(cmd, 'refused', reason='nothing to undo')
            elif cmd.kind == 'clear':
                if s.clear() == 0:
                    return self._record(cmd, 'refused', reason='nothing to clear')
            else:
                return self._record(cmd, 'refused', reason=f'unknown command {cmd.kind!r}')
        except Exception as err:
            self.stats.annotations_rejected += 1
            self._warn('annotation', f'annotation from {cmd.source or "input"} refused: {err}')
            return self._record(cmd, 'refused', reason=str(err)[:200])
        self._record(cmd, 'applied')
        self._wake.set()
        return True

    def _record(self, cmd: Command, status: str, reason: str = '') -> bool:
        """Settle an accepted command in the log; False (the value of a refusal)."""
        journal = self._store.journal if self._store is not None else None
        if journal is None or not cmd.id:
            return False
        if status == 'applied':
            h, w = self.current.rgb.shape[:2]
            rec = applied_record(
                self.scene_id,
                self._frame_offset + self.session.frame_index,
                self.current.stamp_ns,
                (w, h),
            )
        else:
            rec = {'status': status, 'reason': reason}
        try:
            journal.append(rec, command_id=cmd.id)
        except (OSError, ValueError) as err:
            self.stats.log_errors += 1
            self._warn('store', f'cannot append to the annotation log: {err}')
        return False

    # ----- requests ----------------------------------------------------------------------
    def _handle_requests(self) -> None:
        while True:
            with self._lock:
                if not self._requests:
                    return
                req = self._requests.popleft()
            try:
                ok, message = getattr(self, f'_req_{req.op}')(req)
            except Exception as err:
                ok, message = False, f'{req.op} failed: {err}'
            req.finish(ok, message)

    def _req_reset(self, req: Request) -> tuple[bool, str]:
        if self.current is None:
            return True, 'nothing to reset (no image yet)'
        self.stats.frames_used -= 1  # the same frame again
        self._start_scene(self.current)
        self._autosave(force=True)
        return True, 'session reset: fresh model on the current frame, warm-up restarted'

    def _req_next_frame(self, req: Request) -> tuple[bool, str]:
        if self.session is None:
            return False, 'no image has arrived yet'
        if not self._switch(self._take_pending()):
            return False, 'no newer frame has arrived since the current one'
        return True, f'switched to frame {self.stats.frame_index} (stamp {self.current.stamp_ns})'

    def _req_undo(self, req: Request) -> tuple[bool, str]:
        return self._edit(req.command or Command('undo', None, 0, 'service'))

    def _req_clear(self, req: Request) -> tuple[bool, str]:
        return self._edit(req.command or Command('clear', None, 0, 'service'))

    def _edit(self, cmd: Command) -> tuple[bool, str]:
        """undo/clear from a service (accepted by request()), after everything queued
        before it."""
        kind = cmd.kind
        if self.session is None or self.current is None or self._warmup_left > 0:
            with self._lock:
                self._commands.append(cmd)
            self._wake.set()
            return True, f'{kind} queued: it applies once the first frame is warmed up'
        self._apply_commands()
        before = len(self.session.annotations)
        if not self._apply(cmd):
            return False, f'nothing to {kind}: the current frame has no annotations'
        self._autosave(force=True)
        return True, f'{kind}: {before - len(self.session.annotations)} annotation(s) removed'

    def _req_save(self, req: Request) -> tuple[bool, str]:
        if self._store is None:
            return False, 'session_dir is empty: set it to save samples'
        if self.session is None or self.current is None:
            return False, 'no image has arrived yet'
        if self._warmup_left <= 0:
            self._apply_commands()  # include annotations queued before the request
        paths = self._save_sample('save')
        self._autosave(force=True)
        return True, f'saved {len(paths)} files: ' + ', '.join(str(p) for p in paths)

    def _save_sample(self, source: str) -> list[Path]:
        pred = self.session.refine() if self.session.needs_refine else self.session.predict()
        overlay = self._overlay(self.current, self.session) if self._overlay else self.current.rgb
        anns = [a.to_dict() for a in self.session.annotations]
        return self._store.save_sample(
            self.current.rgb,
            pred.labels,
            overlay,
            anns,
            self.current.stamp_ns,
            self.current.frame_id,
            source,
        )

    def _keyframe(self, budget_end: bool) -> None:
        """Add the current frame to the dataset when the keyframe policy says so."""
        sched = self.schedule
        if self._store is None or (sched.dataset_keyframes == 'off' and sched.dataset_period <= 0):
            return
        source = self._keyframes.due(
            sched.dataset_keyframes,
            sched.dataset_period,
            budget_end,
            time.monotonic(),
            len(self.session.annotations),
            self.stats.annotations_accepted,
            (self.current.stamp_ns, self.session.iteration),
            lambda: bool((self.session.predict().labels != 255).any()),
        )
        if source is not None:
            try:
                self._save_sample(source)
            except Exception as err:
                self._warn('dataset', f'cannot add a {source} sample to the dataset: {err}')

    # ----- training and output -----------------------------------------------------------
    def _chunk(self, remaining: int) -> int:
        rate = self.stats.iterations_per_second
        n = int(rate * CHUNK_SECONDS) if rate > 0 else 2
        return max(1, min(remaining, n, 100))

    def _step(self, n: int) -> None:
        try:
            r = self.session.step(n)
        except TrainingError as err:
            self._warn('training', str(err))
            self.stats.last_error = str(err)
            self._stop.wait(1.0)
            return
        if r.seconds > 0:
            rate = r.iterations / r.seconds
            old = self.stats.iterations_per_second
            self.stats.iterations_per_second = rate if old == 0 else 0.7 * old + 0.3 * rate
        if np.isfinite(r.loss):
            self.stats.loss = r.loss
        self.stats.iteration = self.session.iteration

    def _finish_budget(self) -> None:
        """The frame's or the annotation's iterations are spent: make the labels, show them."""
        assert self.session is not None
        try:
            if not refine_first(self.session) or self.session.needs_refine:
                self.session.refine()  # annotated frames: after the network learned them
        except SegDipError as err:
            self._warn('refine', f'refinement failed, showing the network alone: {err}')
        self._publish(final=True)

    def _maybe_publish(self) -> None:
        if time.monotonic() >= self._next_publish:
            self._publish(final=False)

    def _publish(self, final: bool) -> None:
        self._next_publish = time.monotonic() + self.schedule.publish_period
        if self.session is None or self.current is None:
            return
        try:
            self._publish_fn(self.current, self.session, final)
            self.stats.publishes += 1
        except Exception as err:
            self._warn('publish', f'cannot publish outputs: {err!r}')

    def _idle(self) -> None:
        timeout = max(0.01, min(0.5, self._next_publish - time.monotonic()))
        self._wake.wait(timeout)
        self._wake.clear()
        self._maybe_publish()

    def _autosave(self, force: bool = False) -> None:
        if (
            self._store is None
            or self.session is None
            or self.current is None
            or not self.session.has_image
        ):
            return
        period = self.schedule.autosave_period
        due = force or (period > 0 and time.monotonic() - self._last_save >= period)
        if not due or (not force and self.session.iteration == self._saved_iteration):
            return
        journal = self._store.journal
        extra = {
            'journal_seq': journal.last_seq if journal else -1,
            'journal_id': journal.header_id if journal else None,
            'frame': [self.scene_id, self._frame_offset + self.session.frame_index],
            'warmup_left': self._warmup_left,
            'budget': self._budget,
        }
        try:
            self._store.save_checkpoint(
                self.session, self.current.stamp_ns, self.current.frame_id, extra
            )
            self.stats.checkpoints += 1
        except Exception as err:
            self._warn('store', f'cannot write checkpoint: {err}')
        self._last_save = time.monotonic()
        self._saved_iteration = self.session.iteration
