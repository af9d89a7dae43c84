# SPDX-License-Identifier: Apache-2.0
"""The write-ahead annotation log of `session_dir` (annotations.jsonl): append, read, replay.

Why a write-ahead log: the training thread applies annotations only between chunks of
iterations, and not at all during warm-up, so a click can wait in memory for seconds. A record
is written (and fsync'ed) when the node ACCEPTS a command for its queue, before any training,
and a second record when the engine applies or refuses it. A restart replays the log against
the checkpoint, so every accepted command is applied exactly once, even after SIGKILL.

One JSON object a line; every record has `seq` (increasing through the file, also across
restarts), `id` and `status`::

    {"seq":0,"id":"9f3c21:0","status":"header","format":2,"num_classes":2}
    {"seq":1,"id":"9f3c21:1","status":"queued","type":"click","x":12.5,"y":40.0,"class_id":1,
     "stamp":{"sec":S,"nanosec":N},"source":"~/annotations"}            (also undo, clear)
    {"seq":2,"id":"9f3c21:1","status":"applied","frame":{"scene":"5be0a1","index":0,
     "stamp":{"sec":S,"nanosec":N},"size":[160,120]}}
    {"seq":3,"id":"9f3c21:3","status":"refused","reason":"..."}
    {"seq":4,"id":"9f3c21:4","status":"scene","scene":"77aa02","reason":"reset","size":[w,h]}

`id` is `<random per-process prefix>:<seq of its queued record>`; applied/refused records carry
the id of the command they settle. A command is *accepted* once its queued record is in the
file; it is *pending* while no applied/refused record has the same id.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segdip_ros.core import annotation_from_dict
from segdip_ros.core.files import fsync_dir
from segdip_ros.node.inputs import Command, command_to_dict, ns_to_stamp_dict

__all__ = [
    'JOURNAL_FORMAT',
    'STATUSES',
    'FrameKey',
    'Journal',
    'JournalRead',
    'ReplayPlan',
    'applied_record',
    'command_from_record',
    'frame_key',
    'plan_replay',
    'queued_record',
    'read_journal',
    'resolve_annotations',
]

JOURNAL_FORMAT = 2
STATUSES = ('header', 'queued', 'applied', 'refused', 'scene')
COMMAND_TYPES = ('click', 'stroke', 'box', 'mask', 'undo', 'clear')
MAX_LINE = 4_000_000  # characters; a longer line is not one the node wrote

FrameKey = tuple[str, int]  # (scene id, frame index within the scene)


def frame_key(record: dict[str, Any]) -> FrameKey | None:
    """(scene, index) of an applied record, None when it has none."""
    frame = record.get('frame')
    if not isinstance(frame, dict):
        return None
    return str(frame.get('scene', '')), int(frame.get('index', 0))


def queued_record(cmd: Command) -> dict[str, Any]:
    """The record that accepts `cmd` (the ~/annotations schema plus status and source)."""
    return {'status': 'queued', **command_to_dict(cmd), 'source': cmd.source}


def applied_record(scene: str, index: int, stamp_ns: int, size: tuple[int, int]) -> dict[str, Any]:
    """The record that settles a command as applied on frame (scene, index); size = (w, h)."""
    return {
        'status': 'applied',
        'frame': {
            'scene': scene,
            'index': int(index),
            'stamp': ns_to_stamp_dict(stamp_ns),
            'size': [int(size[0]), int(size[1])],
        },
    }


def command_from_record(rec: dict[str, Any], stamp: bool = True) -> Command:
    """A queued record back into the Command it accepted (same id); `stamp=False` drops its
    frame stamp (it goes to the current frame). Raises ValueError when it is malformed."""
    kind = rec['type']
    st = rec.get('stamp') if stamp else None
    stamp_ns = (
        int(st['sec']) * 1_000_000_000 + int(st.get('nanosec', 0)) if isinstance(st, dict) else 0
    )
    source = str(rec.get('source', 'log'))
    if kind in ('undo', 'clear'):
        return Command(kind, None, stamp_ns, source, rec['id'])
    ann = annotation_from_dict(
        {k: v for k, v in rec.items() if k not in ('seq', 'id', 'status', 'stamp', 'source')}
    )
    return Command('add', ann, stamp_ns, source, rec['id'])


@dataclass
class JournalRead:
    """What read_journal found. `problems`: one line per kind of damage (empty = clean)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    header: dict[str, Any] | None = None
    last_seq: int = -1


def _check_record(rec: Any) -> str | None:
    """Why `rec` is not a record this node writes, or None."""
    if not isinstance(rec, dict):
        return f'not a JSON object ({type(rec).__name__})'
    if not isinstance(rec.get('seq'), int) or not isinstance(rec.get('id'), str):
        return 'no integer "seq" or string "id"'
    status = rec.get('status')
    if status not in STATUSES:
        return f'unknown status {status!r}'
    if status == 'queued' and rec.get('type') not in COMMAND_TYPES:
        return f'queued record of unknown type {rec.get("type")!r}'
    return None


def read_journal(path: str | os.PathLike[str]) -> JournalRead:
    """Every valid record of the log at `path`, in file order, with what was wrong.

    A last line without its newline is a write the node did not finish (killed mid-write):
    the command was never acknowledged, so it is dropped and reported as torn. Lines that
    are not the node's records (foreign or corrupted) are dropped and reported, as are
    sequence numbers that go backwards.
    """
    out = JournalRead()
    p = Path(path)
    if not p.exists():
        return out
    raw = p.read_bytes()
    lines = raw.split(b'\n')
    tail = lines.pop()  # b'' when the file ends with a newline
    if tail:
        out.problems.append(f'the last line is torn ({len(tail)} bytes without a newline)')
    bad = 0
    first_bad = ''
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        why = None
        rec: Any = None
        if len(line) > MAX_LINE:
            why = f'line of {len(line)} bytes'
        else:
            try:
                rec = json.loads(line.decode('utf-8'))
            except (UnicodeDecodeError, ValueError, RecursionError) as err:
                why = f'not JSON ({type(err).__name__})'
        why = why or _check_record(rec)
        if why is None and rec['seq'] <= out.last_seq:
            why = f'seq {rec["seq"]} after {out.last_seq}'
        if why is not None:
            bad += 1
            first_bad = first_bad or f'line {n}: {why}'
            continue
        out.last_seq = rec['seq']
        if rec['status'] == 'header' and out.header is None:
            out.header = rec
        out.records.append(rec)
    if bad:
        out.problems.append(f'{bad} line(s) are not valid records (first: {first_bad})')
    return out


class Journal:
    """Appends records to one log file, thread-safe, each line fsync'ed before returning.

    Args:
        path: the log file.
        last_seq: the highest seq already in the file (from read_journal).
        num_classes: written into a new header, checked on the next start.
        header_id: id of the file's header record; None writes a header first.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        last_seq: int = -1,
        num_classes: int | None = None,
        header_id: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.prefix = secrets.token_hex(3)
        self._lock = threading.Lock()
        self._seq = last_seq
        self.appended = 0
        self.header_id = header_id
        if header_id is None:
            header: dict[str, Any] = {'status': 'header', 'format': JOURNAL_FORMAT}
            if num_classes is not None:
                header['num_classes'] = int(num_classes)
            self.header_id = self.append(header)['id']
            fsync_dir(self.path.parent)

    @property
    def last_seq(self) -> int:
        """seq of the last record written (-1 when none)."""
        return self._seq

    def append(self, record: dict[str, Any], command_id: str | None = None) -> dict[str, Any]:
        """Write `record` with the next seq and an id (`command_id`, or a new one); returns
        the record as written. Raises OSError when the disk refuses (the caller reports it)."""
        with self._lock:
            seq = self._seq + 1
            rec = {'seq': seq, 'id': command_id or f'{self.prefix}:{seq}', **record}
            line = json.dumps(rec, separators=(',', ':'), allow_nan=False) + '\n'
            with open(self.path, 'a', encoding='utf-8') as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._seq = seq
            self.appended += 1
            return rec


def resolve_annotations(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The annotation set after applying `commands` (queued records, in order) to an empty
    frame: adds append, undo removes the last, clear removes all. Returns the add records."""
    out: list[dict[str, Any]] = []
    for c in commands:
        if c['type'] == 'undo':
            if out:
                out.pop()
        elif c['type'] == 'clear':
            out.clear()
        else:
            out.append(c)
    return out


@dataclass
class ReplayPlan:
    """What a restart does with the log (see plan_replay).

    reapply: queued records of commands applied after the checkpoint was written, to apply
        again (in order) onto the restored session, without new records (already logged).
    replace_set: True when the node had moved to a later frame than the checkpoint's: the
        restored session's annotations are replaced by `reapply` (that frame's full set).
    frame: the frame key the restored session takes (None: keep the checkpoint's).
    pending: queued records without an applied/refused record, to queue again in order.
    restore: (log-only recovery, no usable checkpoint) the last frame's annotation set, to
        queue again as new commands for the first frame.
    """

    reapply: list[dict[str, Any]] = field(default_factory=list)
    replace_set: bool = False
    frame: FrameKey | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    restore: list[dict[str, Any]] = field(default_factory=list)


def plan_replay(
    records: list[dict[str, Any]], checkpoint_seq: int | None, checkpoint_frame: FrameKey | None
) -> ReplayPlan:
    """Which logged commands a restart applies again, from the log and the checkpoint.

    The rule: the checkpoint holds one frame and its annotations, and the seq of the last log
    record when it was written (`checkpoint_seq`, None = no usable checkpoint). Every applied
    record with a seq up to it is in the checkpoint. For the ones after it:
    - all on the checkpoint's frame: applied again onto it, in order;
    - the last one on a later frame (the node had moved on; that image is gone): the
      restored session takes that frame's key and that frame's complete annotation set
      from the log, on the checkpoint's image.
    Without a checkpoint, the last frame's annotation set is queued again as new commands.
    Pending commands (accepted, never applied or refused) are queued again either way.
    """
    queued: dict[str, dict[str, Any]] = {}
    settled: set[str] = set()
    applied: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (applied record, command)
    for rec in records:
        status = rec['status']
        if status == 'queued':
            queued.setdefault(rec['id'], rec)
        elif status in ('applied', 'refused'):
            settled.add(rec['id'])
            if status == 'applied' and rec['id'] in queued:
                applied.append((rec, queued[rec['id']]))
    plan = ReplayPlan(pending=[q for i, q in queued.items() if i not in settled])
    if not applied:
        return plan
    last_frame = frame_key(applied[-1][0])
    on_last = [cmd for rec, cmd in applied if frame_key(rec) == last_frame]
    if checkpoint_seq is None:
        plan.restore = resolve_annotations(on_last)
        return plan
    after = [(rec, cmd) for rec, cmd in applied if rec['seq'] > checkpoint_seq]
    if not after:
        return plan
    if last_frame == checkpoint_frame:
        plan.reapply = [cmd for _, cmd in after]
    else:
        plan.reapply, plan.replace_set, plan.frame = on_last, True, last_frame
    return plan
