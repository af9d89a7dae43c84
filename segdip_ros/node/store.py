# SPDX-License-Identifier: Apache-2.0
"""What the node keeps on disk in `session_dir`, so a restart (even after SIGKILL) loses
nothing the operator gave.

Layout::

    session_dir/checkpoint.pt        TrainingSession.save (model, optimiser, frame, annotations)
    session_dir/checkpoint.json      its header: frame stamp/frame_id, frame key, the log's
                                     last seq when it was written, sha256 of checkpoint.pt
    session_dir/annotations.jsonl    the write-ahead log (segdip_ros.node.journal)
    session_dir/dataset/             ~/save and keyframes: images/, masks/, overlays/,
                                     classes.json, manifest.jsonl (segdip_ros.offline.dataset)

Every file is written atomically (temp file, fsync, os.replace, fsync of the directory). Every
file read at start is checked; one that is torn or does not belong to this node's parameters
is renamed `<name>.<unix time>.<reason><suffix>` (never deleted) and reported in one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segdip_ros.core import CheckpointError, SessionConfig, TrainingSession
from segdip_ros.core.checkpoint import read_state
from segdip_ros.core.files import fsync_dir
from segdip_ros.node.journal import FrameKey, Journal, read_journal
from segdip_ros.offline.dataset import DatasetWriter

__all__ = ['Restored', 'SessionStore', 'atomic_write', 'fsync_dir']


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: readers see the old file or the new one, whole."""
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


@dataclass
class Restored:
    """What load_checkpoint found: the session and its header (checkpoint.json)."""

    session: TrainingSession
    stamp_ns: int
    frame_id: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def frame(self) -> FrameKey | None:
        f = self.meta.get('frame')
        return (str(f[0]), int(f[1])) if isinstance(f, list) and len(f) == 2 else None

    @property
    def journal_seq(self) -> int | None:
        seq = self.meta.get('journal_seq')
        return seq if isinstance(seq, int) else None


class SessionStore:
    """Checkpoint, write-ahead log and dataset samples of one session directory."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        class_names: Sequence[str] = ('background', 'object'),
        class_colors: Sequence[tuple[int, int, int]] = ((60, 100, 255), (255, 60, 60)),
    ) -> None:
        self.dir = Path(directory).expanduser()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.class_names = tuple(class_names)
        self.class_colors = tuple(tuple(c) for c in class_colors)  # live: the node updates it
        self._dataset: DatasetWriter | None = None
        self.checkpoint_path = self.dir / 'checkpoint.pt'
        self.meta_path = self.dir / 'checkpoint.json'
        self.log_path = self.dir / 'annotations.jsonl'
        self.journal: Journal | None = None

    # ----- set aside ------------------------------------------------------------------
    def set_aside(self, path: Path | None = None, reason: str = 'unusable') -> Path:
        """Rename `path` (default the checkpoint) to <stem>.<unix time>.<reason><suffix>."""
        path = path or self.checkpoint_path
        stamp = int(time.time())
        n = 0
        while True:
            tag = f'{stamp}.{reason}' if n == 0 else f'{stamp}-{n}.{reason}'
            target = path.with_name(f'{path.stem}.{tag}{path.suffix}')
            if not target.exists():
                break
            n += 1
        os.replace(path, target)
        fsync_dir(self.dir)
        return target

    # ----- annotation log -------------------------------------------------------------
    def open_journal(
        self, num_classes: int, expect_id: str | None = None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Read and check the log, open it for appending; (records, problems reported).

        A log whose header names another class count, or another log than the checkpoint's
        (`expect_id`), is set aside whole and a new one started. Torn or foreign lines are
        dropped: the file as it was is set aside and the good records written back.
        """
        notes: list[str] = []
        read = read_journal(self.log_path)
        header = read.header
        foreign = None
        if read.records and header is None:
            foreign = 'it has no header record (not written by this node)'
        elif header is not None and header.get('num_classes') not in (None, num_classes):
            foreign = f'it is for num_classes={header.get("num_classes")}, not {num_classes}'
        elif expect_id is not None and header is not None and header['id'] != expect_id:
            foreign = f'it is not the log the checkpoint was written with ({expect_id})'
        if foreign is not None:
            moved = self.set_aside(self.log_path, 'foreign')
            notes.append(f'annotation log {self.log_path} set aside as {moved.name}: {foreign}')
            read = read_journal(self.log_path)  # gone: a new log starts
        elif read.problems:
            moved = self.set_aside(self.log_path, 'damaged')
            data = ''.join(json.dumps(r, separators=(',', ':')) + '\n' for r in read.records)
            atomic_write(self.log_path, data.encode('utf-8'))
            notes.append(
                f'annotation log {self.log_path}: {"; ".join(read.problems)}; the '
                f'original is kept as {moved.name}, {len(read.records)} good '
                'record(s) kept'
            )
        header_id = None if read.header is None else str(read.header['id'])
        self.journal = Journal(self.log_path, read.last_seq, num_classes, header_id)
        return read.records, notes

    def read_log(self) -> list[dict[str, Any]]:
        """All valid records of the log (see journal.read_journal)."""
        return read_journal(self.log_path).records

    # ----- checkpoint ------------------------------------------------------------------
    def save_checkpoint(
        self,
        session: TrainingSession,
        stamp_ns: int,
        frame_id: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Checkpoint and header, each atomic; the header names the checkpoint by hash, so a
        kill between the two renames is detected (the pending header is kept to finish it)."""
        new = self.dir / 'checkpoint.pt.new'
        session.save(str(new))
        with open(new, 'rb') as f:
            os.fsync(f.fileno())
        meta = {
            'stamp_ns': int(stamp_ns),
            'frame_id': frame_id,
            'saved_at': time.time(),
            'iteration': session.iteration,
            'annotations': len(session.annotations),
            'sha256': _sha256(new),
            **(extra or {}),
        }
        pending = self.dir / 'checkpoint.json.new'
        atomic_write(pending, json.dumps(meta).encode('utf-8'))
        os.replace(new, self.checkpoint_path)
        os.replace(pending, self.meta_path)
        fsync_dir(self.dir)

    def _read_meta(self, sha: str) -> dict[str, Any] | None:
        """The header whose sha256 matches the checkpoint (the pending one when a kill came
        between the renames), None when none does."""
        for path in (self.meta_path, self.dir / 'checkpoint.json.new'):
            try:
                meta = json.loads(path.read_text(encoding='utf-8'))
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            if isinstance(meta, dict) and meta.get('sha256') == sha:
                if path != self.meta_path:
                    os.replace(path, self.meta_path)
                return meta
        return None

    def load_checkpoint(self, cfg: SessionConfig) -> Restored | None:
        """The saved session, None when there is none.

        Raises CheckpointError when it is torn, not loadable with weights only, has no
        matching header, or does not fit `cfg` (other model, working size, network scale or
        class count); the caller sets it aside with set_checkpoint_aside().
        """
        if not self.checkpoint_path.exists():
            return None
        try:
            sha = _sha256(self.checkpoint_path)
            state = read_state(str(self.checkpoint_path))  # weights only: no pickled objects
            session = TrainingSession(cfg)
            session.load_state_dict(state)  # refuses another engine shape
        except Exception as err:
            raise CheckpointError(
                f'cannot use {self.checkpoint_path.name}: {type(err).__name__}: {str(err)[:300]}'
            ) from err
        meta = self._read_meta(sha)
        if meta is None:
            raise CheckpointError('checkpoint.json does not describe it (sha256 differs)')
        return Restored(session, int(meta.get('stamp_ns', 0)), str(meta.get('frame_id', '')), meta)

    def set_checkpoint_aside(self, reason: str) -> Path:
        """Move the checkpoint and its header aside together; the checkpoint's new path."""
        moved = self.set_aside(self.checkpoint_path, reason)
        for path in (self.meta_path, self.dir / 'checkpoint.json.new'):
            if path.exists():
                self.set_aside(path, reason)
        return moved

    # ----- dataset samples -------------------------------------------------------------
    def save_sample(
        self,
        rgb: np.ndarray,
        labels: np.ndarray,
        overlay: np.ndarray,
        annotations: list[dict[str, Any]],
        stamp_ns: int,
        frame_id: str,
        source: str = 'save',
    ) -> list[Path]:
        """Add image, mask (class ids, 255 = unlabelled) and overlay to session_dir/dataset
        (atomic files, manifest last); returns the files written."""
        w = self._dataset
        if w is None or w.classes['classes'] != DatasetWriter.classes_for(
            self.class_names, self.class_colors
        ):
            w = self._dataset = DatasetWriter(
                self.dir / 'dataset', self.class_names, self.class_colors
            )
        record = w.add(rgb, labels, annotations, stamp_ns, frame_id, overlay, source)
        return w.paths(record)
