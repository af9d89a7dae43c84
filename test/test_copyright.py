# SPDX-License-Identifier: Apache-2.0
"""Every Python file carries the licence line, and LICENSE holds the Apache-2.0 text.

The convention: `# SPDX-License-Identifier: Apache-2.0` as the first line (what package.xml's
<license> and setup.py's licence say). The engine package (segdip_ros/core) is left out
of this check.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPDX = '# SPDX-License-Identifier: Apache-2.0'
NOT_CHECKED = ('segdip_ros/core/',)


def _python_files() -> list[str]:
    out = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard', '*.py'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode == 0 and out.stdout.strip():
        return sorted(set(out.stdout.split()))
    return sorted(
        str(p.relative_to(ROOT))
        for folder in ('segdip_ros', 'test', 'launch')
        for p in (ROOT / folder).rglob('*.py')
    ) + ['setup.py']


def test_every_python_file_starts_with_the_spdx_line():
    files = [f for f in _python_files() if not f.startswith(NOT_CHECKED)]
    assert len(files) > 50
    missing = [
        f
        for f in files
        if (ROOT / f).is_file()
        and (ROOT / f).read_text(encoding='utf-8').split('\n', 1)[0] != SPDX
    ]
    assert not missing, f'first line is not {SPDX!r}: {missing}'


def test_license_file_is_the_apache_2_text():
    text = (ROOT / 'LICENSE').read_text(encoding='utf-8')
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION' in text
    assert 'END OF TERMS AND CONDITIONS' in text and len(text.splitlines()) > 190
    assert '<license>Apache-2.0</license>' in (ROOT / 'package.xml').read_text()
