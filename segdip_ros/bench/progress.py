# SPDX-License-Identifier: Apache-2.0
"""A dependency-free progress bar on stderr, with a running figure (e.g. the mean NoC so far)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ['ProgressBar']


class ProgressBar:
    """`label [#####-----] 12/40  NoC@90 7.42  3.1 s/img  ETA 1m30s`, redrawn in place."""

    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO | None = None,
        width: int = 24,
        enabled: bool = True,
    ) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.enabled = enabled
        self.done = 0
        self._start = time.perf_counter()
        self._tty = bool(getattr(self.stream, 'isatty', lambda: False)())

    def update(self, done: int, info: str = '') -> None:
        """Show `done` of `total` items finished, with `info` after the counter."""
        self.done = done
        if not self.enabled:
            return
        filled = int(self.width * done / self.total)
        elapsed = time.perf_counter() - self._start
        per = elapsed / done if done else 0.0
        eta = per * (self.total - done)
        line = (
            f'\r{self.label} [{"#" * filled}{"-" * (self.width - filled)}] '
            f'{done}/{self.total}  {info}  {per:.1f} s/img  ETA {_fmt(eta)}'
        )
        if self._tty:
            self.stream.write(line.ljust(100))
        else:  # a log file: one line per update instead of carriage returns
            self.stream.write(line[1:] + '\n')
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write('\n')
            self.stream.flush()


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f'{m}m{s:02d}s' if m else f'{s}s'
