# SPDX-License-Identifier: Apache-2.0
"""`segdip_web` as a process: prints its URL, serves the page, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def test_console_script_serves_and_stops_on_sigint():
    exe = shutil.which('segdip_web', path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip('segdip_web is not installed in this environment')
    env = dict(
        os.environ, ROS_DOMAIN_ID='67', ROS_AUTOMATIC_DISCOVERY_RANGE='OFF', PYTHONUNBUFFERED='1'
    )
    proc = subprocess.Popen(
        [exe, '--ros-args', '-p', 'port:=0', '-p', 'node:=/nobody'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url, out, end = None, '', time.monotonic() + 60
        while url is None and time.monotonic() < end and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                out += proc.stdout.readline()
                m = re.search(r'segdip_web: open (http://127\.0\.0\.1:\d+/)\s', out)
                url = m.group(1) if m else None
        assert url, f'no URL printed: {out!r}'
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and '<canvas' in r.read().decode()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
        assert 'labelling console for /nobody on ' + url in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
