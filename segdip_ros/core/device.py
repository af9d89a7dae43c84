"""Device and mixed-precision selection; nothing here assumes CUDA exists."""

from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ['autocast_dtype', 'resolve_device']


def resolve_device(spec: str = 'auto') -> torch.device:
    """'auto' -> the first CUDA device when one is usable, else CPU; 'cpu', 'cuda', 'cuda:N'.

    A CUDA device that is asked for but absent raises ConfigError naming it.
    """
    spec = (spec or 'auto').strip().lower()
    if spec == 'auto':
        return torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(
            f"unknown device {spec!r} (use 'auto', 'cpu', 'cuda' or 'cuda:N')"
        ) from err
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ConfigError(f'device {spec!r} asked for, but CUDA is not available here')
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f'device {spec!r}: only {torch.cuda.device_count()} CUDA device(s)')
    elif device.type != 'cpu':
        raise ConfigError(f"unsupported device type {device.type!r} (use 'cpu' or 'cuda')")
    return device


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The forward pass's autocast dtype on `device`, or None for full fp32: bf16 on CUDA
    devices that support it, fp16 on older CUDA devices, fp32 on CPU (CPU bf16 autocast is
    slower than fp32 for these small convolutions unless the CPU has AMX)."""
    if device.type == 'cuda':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None
