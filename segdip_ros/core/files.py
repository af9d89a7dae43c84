# SPDX-License-Identifier: Apache-2.0
"""Durable file writes shared by every writer of state (checkpoints, the annotation log, the
dataset): a rename is only durable once the folder holding it is fsync'ed too."""

from __future__ import annotations

import os

__all__ = ['fsync_dir']


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a folder, so that a rename in it survives a power loss (a no-op where the
    platform cannot open folders)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
