"""One set of CPU convolution kernels on every x86-64 machine, so a run's figures repeat.

oneDNN, which runs torch's convolutions on a CPU, picks its kernels by the instruction set the
processor offers. AVX-512 and AVX2 kernels add in a different order; the network is trained
online and its predictions feed the next frame's labels, so those last-bit differences grow:
the same DAVIS run (first-frame mask, one thread) gave car-shadow J 0.671 with AVX-512 kernels
and 0.725 with AVX2 ones on the same machine. With oneDNN capped at AVX2 that machine gave
the same J to three decimals as an AVX2-only one, and ran as fast as without the cap (0.150
against 0.153 s per frame, one run each).

`ONEDNN_MAX_CPU_ISA` is read when torch makes its first convolution, so this module sets it
when `segdip_ros.core` is imported, before any model exists; a value the user set wins
(`ONEDNN_MAX_CPU_ISA=ALL` for the fastest kernels the processor has). It is a cap: a processor
without AVX2 keeps its own kernels. GPUs are not affected.
"""

from __future__ import annotations

import os

__all__ = ['KERNEL_CAP', 'KERNEL_CAP_VARIABLE', 'cap_cpu_kernels', 'cpu_kernels']

KERNEL_CAP_VARIABLE = 'ONEDNN_MAX_CPU_ISA'
KERNEL_CAP = 'AVX2'


def cap_cpu_kernels() -> str:
    """Cap oneDNN's kernels at AVX2 unless the environment says otherwise; returns the cap in
    force. Without effect once torch has run a convolution in this process."""
    return os.environ.setdefault(KERNEL_CAP_VARIABLE, KERNEL_CAP)


def cpu_kernels() -> str:
    """What a report should record about the CPU kernels: oneDNN's cap and torch's own
    vectorisation level (e.g. 'oneDNN<=AVX2, ATen AVX512')."""
    import torch

    cap = os.environ.get(KERNEL_CAP_VARIABLE, 'ALL')
    return f'oneDNN<={cap}, ATen {torch.backends.cpu.get_cpu_capability()}'


cap_cpu_kernels()
