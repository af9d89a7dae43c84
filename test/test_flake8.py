# SPDX-License-Identifier: Apache-2.0
"""ament_flake8, ROS 2's flake8 test, with this package's settings (setup.cfg [flake8])."""

from __future__ import annotations

from pathlib import Path

import pytest
from ament_flake8.main import main_with_errors

ROOT = Path(__file__).resolve().parents[1]
PATHS = ['segdip_ros', 'test', 'launch', 'setup.py']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(monkeypatch):
    monkeypatch.chdir(ROOT)
    rc, errors = main_with_errors(argv=['--config', str(ROOT / 'setup.cfg'), *PATHS])
    assert rc == 0, f'{len(errors)} flake8 error(s):\n' + '\n'.join(errors)
