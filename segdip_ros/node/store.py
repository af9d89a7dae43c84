# SPDX-License-Identifier: Apache-2.0
"""What the node keeps on disk in `session_dir`, so a restart loses nothing the operator did.

Layout::

    session_dir/checkpoint.pt        TrainingSession.save (model, optimiser, frame, annotations)
    session_dir/checkpoint.json      frame stamp and frame_id of that frame
    session_dir/annotations.jsonl    every accepted annotation change, one JSON object a line,
                                     in the ~/annotations schema with the frame "stamp"
    session_dir/dataset/<sec>_<nanosec>_{image,mask,overlay}.png + _annotations.json  (~/save)

The log is append-only and flushed to disk per line: in tracking mode the engine keeps only
the current frame's annotations (the paper's rule), so the log is the complete record.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segdip_ros.core import SessionConfig, TrainingSession
from segdip_ros.core.checkpoint import read_state

__all__ = ['SessionStore']


class SessionStore:
    """Checkpoint, annotation log and dataset samples of one session directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory).expanduser()
        self.dir.mkdir(parents=True, exist_ok=True)
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
                    annotations: list[dict[str, Any]], stamp_ns: int, frame_id: str
                    ) -> list[Path]:
        """Write image, mask (class ids, 255 = unlabelled), overlay PNGs and annotations JSON."""
        out = self.dir / 'dataset'
        out.mkdir(parents=True, exist_ok=True)
        base = f'{stamp_ns // 1_000_000_000}_{stamp_ns % 1_000_000_000:09d}'
        paths = [out / f'{base}_image.png', out / f'{base}_mask.png', out / f'{base}_overlay.png',
                 out / f'{base}_annotations.json']
        ok = cv2.imwrite(str(paths[0]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        ok &= cv2.imwrite(str(paths[1]), labels.astype(np.uint8))
        ok &= cv2.imwrite(str(paths[2]), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f'could not write PNG files into {out}')
        paths[3].write_text(json.dumps({
            'stamp': {'sec': stamp_ns // 1_000_000_000, 'nanosec': stamp_ns % 1_000_000_000},
            'frame_id': frame_id, 'image_size': [int(rgb.shape[1]), int(rgb.shape[0])],
            'annotations': annotations}, indent=1), encoding='utf-8')
        return paths
