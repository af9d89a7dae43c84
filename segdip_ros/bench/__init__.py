# SPDX-License-Identifier: Apache-2.0
"""Interactive-segmentation benchmark: SegDIP against GrabCut and the random walker.

Simulated RITM / f-BRS clicker, NoC@85/90 and IoU-vs-clicks curves, JSON / Markdown / PNG
reports. Run it as `segdip-bench` (see docs/benchmark.md). Imports no ROS.
"""

from .base import Method, MethodSettings, working_shape
from .clicker import Clicker, SimClick, next_click
from .datasets import Sample, list_samples, load_sample
from .methods import METHODS, make_method, register, segdip_factory
from .runner import ImageRecord, run_image, run_method
from .scoring import noc, stability, summarize

__all__ = [
    'METHODS',
    'Clicker',
    'ImageRecord',
    'Method',
    'MethodSettings',
    'Sample',
    'SimClick',
    'list_samples',
    'load_sample',
    'make_method',
    'next_click',
    'noc',
    'register',
    'run_image',
    'run_method',
    'segdip_factory',
    'stability',
    'summarize',
    'working_shape',
]
