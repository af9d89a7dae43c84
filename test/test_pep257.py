# SPDX-License-Identifier: Apache-2.0
"""ament_pep257, ROS 2's docstring test, with the codes setup.cfg [pydocstyle] leaves out."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from ament_pep257.main import main

ROOT = Path(__file__).resolve().parents[1]
PATHS = ['segdip_ros', 'test', 'launch', 'setup.py']


def _add_ignore() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    return [c.strip() for c in cfg.get('pydocstyle', 'add-ignore').split(',') if c.strip()]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    rc = main(argv=['--add-ignore', *_add_ignore(), '--', *PATHS])
    errors = [line for line in capsys.readouterr().err.splitlines() if ': D' in line]
    assert rc == 0, f'{len(errors)} docstring error(s):\n' + '\n'.join(errors)
