# SPDX-License-Identifier: Apache-2.0
"""Shared test set-up: CPU only, one torch thread (tests run side by side on 2 cores),
DDS traffic kept on this machine."""

import os

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'OFF')
os.environ['CUDA_VISIBLE_DEVICES'] = os.environ.get('SEGDIP_TEST_CUDA', '')

import torch

torch.set_num_threads(1)

import sys

# shared helpers (node_harness, core_helpers) live beside this file; tests sit in sub-folders
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    """Register the markers of the ament linter tests (test_flake8.py, test_pep257.py)."""
    for name in ('linter', 'flake8', 'pep257'):
        config.addinivalue_line('markers', f'{name}: ROS 2 ament linter test')
