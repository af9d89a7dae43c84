# SPDX-License-Identifier: Apache-2.0
"""The CPU convolution kernels are capped at AVX2 when the engine is imported (core/numerics)."""

import os
import subprocess
import sys

_PROBE = """
import torch
import segdip_ros.core  # must cap the kernels although torch was imported first
import os
with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
    torch.nn.functional.conv2d(torch.rand(1, 32, 40, 40), torch.rand(32, 32, 3, 3), padding=1)
print('cap=' + os.environ.get('ONEDNN_MAX_CPU_ISA', ''))
"""


def _probe(**env):
    clean = {k: v for k, v in os.environ.items() if k != 'ONEDNN_MAX_CPU_ISA'}
    out = subprocess.run(
        [sys.executable, '-c', _PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    isa = [line for line in out.splitlines() if ',isa:' in line]
    cap = [line for line in out.splitlines() if line.startswith('cap=')]
    return (isa[0] if isa else ''), cap[0][4:]


def test_importing_the_engine_caps_onednn_at_avx2():
    isa, cap = _probe()
    assert cap == 'AVX2'
    assert isa, 'oneDNN printed no ISA line: the convolution did not run on oneDNN'
    assert 'AVX-512' not in isa and 'AMX' not in isa, isa


def test_a_cap_the_user_set_is_kept():
    _, cap = _probe(ONEDNN_MAX_CPU_ISA='AVX2_VNNI')
    assert cap == 'AVX2_VNNI'
