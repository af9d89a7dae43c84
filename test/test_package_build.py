# SPDX-License-Identifier: Apache-2.0
"""The package builds with colcon (as on a ROS install), installs its scripts and share files."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [
    'segdip_node',
    'segdip_demo',
    'segdip-bench',
    'segdip_make_bag',
    'segdip_eval_bag',
    'segdip_replay_bag',
    'segdip_rviz_config',
    'segdip_web',
    'segdip_export',
]


def test_colcon_build_installs_scripts_and_share_files(tmp_path):
    bindir = Path(sys.executable).parent
    colcon = shutil.which('colcon', path=str(bindir)) or shutil.which('colcon')
    if colcon is None:
        pytest.skip('colcon is not installed in this environment')
    env = dict(os.environ, PATH=f'{bindir}{os.pathsep}{os.environ.get("PATH", "")}')
    # build a copy, so the build never writes into the source tree
    src = tmp_path / 'src' / 'segdip_ros'
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            '.venv', '.git', 'build', 'install', 'log', '__pycache__', '*.egg-info', 'out'
        ),
    )
    proc = subprocess.run(
        [
            colcon,
            '--log-base',
            str(tmp_path / 'log'),
            'build',
            '--base-paths',
            str(src),
            '--build-base',
            str(tmp_path / 'build'),
            '--install-base',
            str(tmp_path / 'install'),
            '--packages-select',
            'segdip_ros',
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    prefix = tmp_path / 'install' / 'segdip_ros'
    for name in SCRIPTS:
        assert (prefix / 'lib' / 'segdip_ros' / name).is_file(), (
            f'{name} not installed for ros2 run'
        )
    share = prefix / 'share' / 'segdip_ros'
    for rel in (
        'package.xml',
        'config/segdip.yaml',
        'launch/segdip.launch.py',
        'rviz/segdip.rviz',
    ):
        assert (share / rel).is_file(), f'share/segdip_ros/{rel} missing'
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    assert (index / 'segdip_ros').is_file()
    pages = list(prefix.glob('lib/python*/site-packages/segdip_ros/web/static/*'))
    assert sorted(p.name for p in pages) == ['app.js', 'index.html', 'style.css'], pages


def test_console_scripts_are_in_the_environment():
    bindir = Path(sys.executable).parent
    missing = [n for n in SCRIPTS if not (bindir / n).exists()]
    assert not missing, f'console scripts missing from {bindir}: {missing}'


def test_core_imports_no_ros():
    code = (
        'import sys, segdip_ros.core, segdip_ros.core.synthetic, segdip_ros.bench.cli; '
        'bad = [m for m in sys.modules if m.split(".")[0] in ("rclpy", "sensor_msgs", '
        '"std_msgs", "geometry_msgs")]; print(bad); sys.exit(1 if bad else 0)'
    )
    proc = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
