# SPDX-License-Identifier: Apache-2.0
"""What the node keeps on disk in `session_dir`, so a restart loses nothing the operator did.

Layout::

    session_dir/checkpoint.pt        TrainingSession.save (model, optimiser, frame, annotations)
    session_dir/checkpoint.json      frame stamp and frame_id of that frame
    session_dir/annotations.jsonl    every accepted annotation change, one JSON object a line,
                                     in the ~/annotations schema with the frame "stamp"
    session_dir/dataset/             ~/save and keyframes: images/, masks/, overlays/,
                                     classes.json, manifest.jsonl (segdip_ros.offline.dataset)

The log is append-only and flushed to disk per line: in tracking mode the engine keeps only
the current frame's annotations (the paper's rule), so the log is the complete record.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from segdip_ros.core import SessionConfig, TrainingSession
from segdip_ros.core.checkpoint import read_state
from segdip_ros.offline.dataset import DatasetWriter

__all__ = ['SessionStore']


class SessionStore:
    """Checkpoint, annotation log and dataset samples of one session directory."""

    def __init__(self, directory: str | os.PathLike[str],
                 class_names: Sequence[str] = ('background', 'object'),
                 class_colors: Sequence[tuple[int, int, int]] = ((60, 100, 255), (255, 60, 60))
                 ) -> None:
        self.dir = Path(directory).expanduser()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.class_names = tuple(class_names)
        self.class_colors = tuple(tuple(c) for c in class_colors)   # live: the node updates it
        self._dataset: DatasetWriter | None = None
        self.checkpoint_path = self.dir / 'checkpoint.pt'
        self.meta_path = self.dir / 'checkpoint.json'
        self.log_path = self.dir / 'annotations.jsonl'

    # ----- annotation log --------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        """Append one record and fsync, so a crash right after a click keeps the click."""
        with open(self.log_path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(record, separators=(',', ':')) + '\n')
            f.flush()
            os.fsync(f.fileno())

    def read_log(self) -> list[dict[str, Any]]:
        """All records of the log; a torn last line (crash mid-write) is skipped."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(encoding='utf-8').splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    # ----- checkpoint ------------------------------------------------------------------
    def save_checkpoint(self, session: TrainingSession, stamp_ns: int, frame_id: str) -> None:
        """Atomic checkpoint of the session plus the header of its frame."""
        session.save(str(self.checkpoint_path))
        meta = {'stamp_ns': int(stamp_ns), 'frame_id': frame_id, 'saved_at': time.time(),
                'iteration': session.iteration, 'annotations': len(session.annotations)}
        tmp = self.meta_path.with_suffix('.json.tmp')
        tmp.write_text(json.dumps(meta), encoding='utf-8')
        os.replace(tmp, self.meta_path)

    def load_checkpoint(self, cfg: SessionConfig) -> tuple[TrainingSession, int, str] | None:
        """(session, frame stamp ns, frame_id) from the checkpoint, None when there is none.

        Raises CheckpointError when it exists but does not fit `cfg` (other model or working
        size); the caller moves it aside with :meth:`set_aside` rather than deleting it.
        """
        if not self.checkpoint_path.exists():
            return None
        state = read_state(str(self.checkpoint_path))   # data only: no pickled objects
        session = TrainingSession(cfg)
        session.load_state_dict(state)
        stamp, frame_id = 0, ''
        try:
            meta = json.loads(self.meta_path.read_text(encoding='utf-8'))
            stamp, frame_id = int(meta.get('stamp_ns', 0)), str(meta.get('frame_id', ''))
        except (OSError, ValueError, TypeError):
            pass
        return session, stamp, frame_id

    def set_aside(self) -> Path:
        """Rename an unusable checkpoint to checkpoint.<unix time>.pt and return the new path."""
        target = self.dir / f'checkpoint.{int(time.time())}.pt'
        os.replace(self.checkpoint_path, target)
        return target

    # ----- dataset samples -------------------------------------------------------------
    def save_sample(self, rgb: np.ndarray, labels: np.ndarray, overlay: np.ndarray,
                    annotations: list[dict[str, Any]], stamp_ns: int, frame_id: str,
                    source: str = 'save') -> list[Path]:
        """Add image, mask (class ids, 255 = unlabelled) and overlay to session_dir/dataset
        (atomic files, manifest last); returns the files written."""
        w = self._dataset
        if w is None or w.classes['classes'] != DatasetWriter.classes_for(self.class_names,
                                                                          self.class_colors):
            w = self._dataset = DatasetWriter(self.dir / 'dataset', self.class_names,
                                              self.class_colors)
        record = w.add(rgb, labels, annotations, stamp_ns, frame_id, overlay, source)
        return w.paths(record)
