# SPDX-License-Identifier: Apache-2.0
"""package.xml against the code: every third-party import has a rosdep key (or a documented
pip install), every key is used, and every key exists in rosdistro (Jazzy and Kilted)."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROSDEP = ROOT.parent / 'shared' / 'rosdep'

# import name -> rosdep key, where they differ (ROS packages import as their own name)
IMPORT_KEYS = {
    'numpy': 'python3-numpy',
    'cv2': 'python3-opencv',
    'yaml': 'python3-yaml',
    'scipy': 'python3-scipy',
    'skimage': 'python3-skimage',
    'matplotlib': 'python3-matplotlib',
    'torch': 'python3-pytorch-pip',
    'rosbags': 'python3-rosbags-pip',
    'pytest': 'python3-pytest',
    'tf2_ros': 'tf2_ros_py',  # the Python tf2_ros module comes with tf2_ros_py
    'aiohttp': 'python3-aiohttp',
}
# imports with no rosdep key: pip package, documented in package.xml and docs/node.md
PIP_ONLY = {'maxflow': 'PyMaxflow'}
# keys used without an import statement: key -> (file, text that uses it)
INDIRECT = {
    'rosgraph_msgs': ('segdip_ros/tools/replay_bag.py', "'rosgraph_msgs/msg/Clock'"),
    'lifecycle_msgs': ('segdip_ros/segdip_node.py', 'from rclpy.lifecycle import'),
    'rviz2': ('launch/segdip.launch.py', "package='rviz2'"),
}


def _imports(*folders: str) -> dict[str, set[str]]:
    """Top-level third-party modules imported anywhere (also inside functions) -> files."""
    local = {p.stem for p in (ROOT / 'test').rglob('*.py')}
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob('*.py'):
            for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split('.')[0]
                    if top in sys.stdlib_module_names or top == 'segdip_ros' or top in local:
                        continue
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _depends() -> dict[str, set[str]]:
    root = ET.parse(ROOT / 'package.xml').getroot()
    out: dict[str, set[str]] = {}
    for el in root:
        if isinstance(el.tag, str) and el.tag.endswith('depend'):
            out.setdefault(el.tag, set()).add(el.text.strip())
    return out


def _key(module: str) -> str:
    return IMPORT_KEYS.get(module, module)


def test_every_import_has_a_key_and_every_key_is_used():
    deps = _depends()
    run = deps.get('exec_depend', set()) | deps.get('depend', set())
    tests = deps.get('test_depend', set())
    assert set(deps) <= {'exec_depend', 'depend', 'test_depend', 'buildtool_depend'}, deps
    code = _imports('segdip_ros', 'launch')
    missing = {
        m: sorted(f)[:2] for m, f in code.items() if m not in PIP_ONLY and _key(m) not in run
    }
    assert not missing, f'imported but not in package.xml exec_depend: {missing}'
    test_code = _imports('test')
    missing = {
        m: sorted(f)[:2]
        for m, f in test_code.items()
        if m not in PIP_ONLY and _key(m) not in run | tests
    }
    assert not missing, f'imported by tests but not in package.xml: {missing}'
    used = {_key(m) for m in code}
    for key, (path, text) in INDIRECT.items():
        assert text in (ROOT / path).read_text(encoding='utf-8'), (key, path)
        used.add(key)
    assert not run - used, f'declared but unused: {sorted(run - used)}'
    test_used = {_key(m) for m in test_code}
    assert not tests - test_used, f'test_depend unused by test/: {sorted(tests - test_used)}'


def test_pip_only_dependencies_are_documented():
    xml = (ROOT / 'package.xml').read_text(encoding='utf-8')
    comments = ' '.join(re.findall(r'<!--(.*?)-->', xml, re.S))
    docs = (ROOT / 'docs' / 'node.md').read_text(encoding='utf-8')
    install = docs.split('## Install', 1)[1].split('\n## ', 1)[0] if '## Install' in docs else ''
    requirements = (ROOT / 'requirements.txt').read_text(encoding='utf-8')
    for module, pip_name in PIP_ONLY.items():
        assert module in _imports('segdip_ros'), f'{module} is no longer imported'
        assert f'pip install {pip_name}' in comments, f'package.xml says nothing of {pip_name}'
        assert pip_name in install and 'pip install' in install, (
            f"docs/node.md's Install section does not say how to get {pip_name}"
        )
        pinned = re.search(rf'^{pip_name}==(\S+)', requirements, re.M)
        assert pinned and f'{pip_name}=={pinned.group(1)}' in comments + install


def test_every_key_resolves_in_rosdistro_for_jazzy_and_kilted():
    if not ROSDEP.is_dir():
        pytest.skip(f'rosdep snapshots not found at {ROSDEP}')

    def names(file: str) -> set[str]:
        return set((ROSDEP / file).read_text(encoding='utf-8').split())

    files = ('system_keys.txt', 'jazzy_packages.txt', 'kilted_packages.txt')
    system, jazzy, kilted = (names(f) for f in files)
    assert 'python3-numpy' in system and 'rclpy' in jazzy & kilted  # snapshots look right
    keys = set().union(*_depends().values())
    unknown = sorted(k for k in keys if k not in system and not (k in jazzy and k in kilted))
    assert not unknown, f'not rosdep keys for both Jazzy and Kilted: {unknown}'
