# SPDX-License-Identifier: Apache-2.0
"""ruff (lint and format check, ruff.toml) and mypy (mypy.ini: strict on segdip_ros/core),
run on the tree so that a regression fails the test command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint_and_format():
    lint = _run(str(BIN / 'ruff'), 'check', '.')
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run(str(BIN / 'ruff'), 'format', '--check', '.')
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict_on_the_engine():
    res = _run(sys.executable, '-m', 'mypy', 'segdip_ros')
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'Success' in res.stdout
