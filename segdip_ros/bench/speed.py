# SPDX-License-Identifier: Apache-2.0
"""`segdip-bench speed`: training-step throughput, reference against the default, in one process.

Per cell (working size x width) the sessions train on the same synthetic image with the same
two clicks (so the annotation / TCL path runs, as after a click in the node):
- reference: `paper_preset` at that size and width, with its model and input code in plain
  NCHW: the paper's configuration in straightforward PyTorch;
- fullres: `default_preset` with `network_scale` 1 (channels-last, the network at the working
  size), which separates the memory-format gain from the architecture-level one;
- optimised: `default_preset` as shipped (`TrainingSession.step`: channels-last, the network
  at `network_scale` of the working size, probabilities upsampled bilinearly).
Every side runs the session's one training step. Timing rounds are interleaved (order rotated
each round) after a warm-up, with `torch.cuda.synchronize()` around every timed block on CUDA.
Achieved FLOP/s counts conv FLOPs only (analytic, from the layer shapes, x3 for forward + both
backward convolutions); peak is a large fp32 matmul measured in the same process.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segdip_ros.core import (
    Click,
    ConfigError,
    TrainingSession,
    default_preset,
    paper_preset,
    resolve_device,
)
from segdip_ros.core.synthetic import two_class_scene

__all__ = [
    'SpeedSettings',
    'add_options',
    'make_session',
    'markdown',
    'matmul_peak',
    'model_conv_flops',
    'run_cli',
    'run_speed',
    'step_flops',
    'time_interleaved',
]


@dataclass(frozen=True)
class SpeedSettings:
    """sizes: working long sides, px. widths: conv widths. iterations: timed iterations per
    side and cell (plus `warmup` untimed). rounds: interleaving rounds (<= iterations)."""

    sizes: tuple[int, ...] = (128, 160, 256, 300)
    widths: tuple[int, ...] = (32, 64, 128)
    iterations: int = 10
    warmup: int = 2
    rounds: int = 5
    device: str = 'cpu'
    peak_size: int = 2048


# ----- sessions and timing ---------------------------------------------------------------
def make_session(
    preset: Callable[..., Any],
    size: int,
    width: int,
    device: str,
    clicks: bool = True,
    **overrides: Any,
) -> TrainingSession:
    """A session on a 4:3 synthetic image whose long side is `size` (working size `size`),
    two warm-up iterations, then one click per class. `overrides`: SessionConfig fields."""
    cfg = preset(working_size=size, device=device, width=width, **overrides)
    scene = two_class_scene(height=max(8, size * 3 // 4), width=size, seed=0)
    s = TrainingSession(cfg)
    s.set_image(scene.rgb)
    s.step(2)
    if clicks:
        ys, xs = np.nonzero(scene.labels == 1)
        s.add_annotation(Click(x=float(xs[len(xs) // 2]), y=float(ys[len(ys) // 2]), class_id=1))
        s.add_annotation(Click(x=2.0, y=2.0, class_id=0))
    return s


def plain_nchw(session: TrainingSession) -> TrainingSession:
    """The session's model and input code back in the contiguous (NCHW) format: the plain
    PyTorch the reference side stands for."""
    assert session._model is not None and session._frame is not None
    session._model.to(memory_format=torch.contiguous_format)
    session._frame.code = session._frame.code.contiguous()
    return session


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_interleaved(
    sides: dict[str, Callable[[int], Any]],
    iterations: int,
    rounds: int,
    warmup: int,
    device: torch.device,
) -> dict[str, float]:
    """Iterations per second of each side. `sides[name](n)` runs n iterations. Warm-up first,
    then `rounds` rounds, each running every side for its share of `iterations` in a rotated
    order, so load changes on a shared machine hit all sides alike."""
    names = list(sides)
    for name in names:
        if warmup > 0:
            sides[name](warmup)
    _sync(device)
    rounds = max(1, min(rounds, iterations))
    per = [iterations // rounds + (1 if r < iterations % rounds else 0) for r in range(rounds)]
    spent = dict.fromkeys(names, 0.0)
    for r, n in enumerate(per):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            _sync(device)
            t0 = time.perf_counter()
            sides[name](n)
            _sync(device)
            spent[name] += time.perf_counter() - t0
    return {name: iterations / spent[name] if spent[name] > 0 else math.inf for name in names}


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of an n x n matmul on `device` (2 n^3 FLOPs), the peak estimate."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def step_flops(session: TrainingSession) -> int:
    """Conv FLOPs of one training iteration: 3 x forward (forward, grad-input, grad-weight)."""
    assert session._model is not None and session._frame is not None
    return 3 * model_conv_flops(session._model, session._frame.code)


def model_conv_flops(model: nn.Module, code: torch.Tensor) -> int:
    """Forward conv FLOPs of one model(code) call, from the layer shapes (2 * Cin * Cout * k^2
    * H_out * W_out per conv, recorded by forward hooks)."""
    total = 0

    def hook(mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Conv2d)
        total += (
            2
            * (mod.in_channels // mod.groups)
            * mod.out_channels
            * mod.kernel_size[0]
            * mod.kernel_size[1]
            * out.shape[-2]
            * out.shape[-1]
        )

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(code)
    finally:
        for h in handles:
            h.remove()
    return total


# ----- the grid --------------------------------------------------------------------------
def _grid_cell(size: int, width: int, st: SpeedSettings, device: torch.device) -> dict[str, Any]:
    sessions = {
        'reference': plain_nchw(make_session(paper_preset, size, width, st.device)),
        'fullres': make_session(default_preset, size, width, st.device, network_scale=1.0),
        'optimised': make_session(default_preset, size, width, st.device),
    }
    sides = {name: s.step for name, s in sessions.items()}
    flops = {name: step_flops(s) for name, s in sessions.items()}
    rates = time_interleaved(sides, st.iterations, st.rounds, st.warmup, device)
    h, w = sessions['reference'].work_size
    nh, nw = sessions['optimised'].network_size
    return {
        'size': size,
        'width': width,
        'work_h': h,
        'work_w': w,
        'net_h': nh,
        'net_w': nw,
        'its': rates,
        'flops_per_it': flops,
        'flops_per_s': {k: rates[k] * flops[k] for k in rates},
        'ratio_opt_ref': rates['optimised'] / rates['reference'],
        'ratio_fullres_ref': rates['fullres'] / rates['reference'],
    }


# ----- run and report --------------------------------------------------------------------
@dataclass
class SpeedResult:
    settings: dict[str, Any]
    machine: dict[str, Any]
    cells: list[dict[str, Any]] = field(default_factory=list)


def run_speed(st: SpeedSettings, log: Callable[[str], None] = print) -> SpeedResult:
    """Peak estimate, then the grid; `log` gets one line per cell."""
    device = torch.device(st.device)
    peak = matmul_peak(device, st.peak_size)
    machine = {
        'device': str(device),
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'peak_flops': peak,
        'cpu_capability': torch.backends.cpu.get_cpu_capability(),
        'peak_method': f'best of 5 fp32 {st.peak_size}x{st.peak_size} matmuls, '
        'same process and thread count',
    }
    res = SpeedResult(settings={**asdict(st)}, machine=machine)
    log(f'peak estimate: {peak / 1e9:.1f} GFLOP/s ({machine["peak_method"]})')
    for size in st.sizes:
        for width in st.widths:
            cell = _grid_cell(size, width, st, device)
            res.cells.append(cell)
            r = cell['its']
            log(
                f'size {size} width {width}: ref {r["reference"]:.2f} it/s, fullres '
                f'{r["fullres"]:.2f}, opt {r["optimised"]:.2f}, opt/ref '
                f'{cell["ratio_opt_ref"]:.2f}'
            )
    return res


def markdown(res: SpeedResult) -> str:
    """The grid as a Markdown table."""
    peak = res.machine['peak_flops']
    lines = [
        f'Device {res.machine["device"]} ({res.machine.get("cpu_capability")}), torch '
        f'{res.machine["torch"]}, {res.machine["threads"]} thread(s); peak estimate '
        f'{peak / 1e9:.1f} GFLOP/s ({res.machine["peak_method"]}).',
        '',
        '| work size (h x w) | network (h x w) | width | ref it/s | fullres it/s '
        '| opt it/s | fullres/ref | **opt/ref** | ref GFLOP/s (% peak) '
        '| opt GFLOP/s (% peak) |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for c in res.cells:
        r, f = c['its'], c['flops_per_s']
        lines.append(
            f'| {c["size"]} ({c["work_h"]}x{c["work_w"]}) | {c["net_h"]}x{c["net_w"]} | '
            f'{c["width"]} | {r["reference"]:.2f} | {r["fullres"]:.2f} | {r["optimised"]:.2f} | '
            f'{c["ratio_fullres_ref"]:.2f} | **{c["ratio_opt_ref"]:.2f}** | '
            f'{f["reference"] / 1e9:.1f} ({100 * f["reference"] / peak:.0f}%) | '
            f'{f["optimised"] / 1e9:.1f} ({100 * f["optimised"] / peak:.0f}%) |'
        )
    return '\n'.join(lines) + '\n'


def write(res: SpeedResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / 'speed.json').write_text(json.dumps(asdict(res), indent=1, default=str))
    (out / 'speed.md').write_text(markdown(res))


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(',') if v.strip())


def add_options(p: Any) -> None:
    """The options of `segdip-bench speed` on argparse parser `p`."""
    p.add_argument(
        '--sizes',
        default='128,160,256,300',
        help='working sizes (long side, px; 160 is the default)',
    )
    p.add_argument('--widths', default='32,64,128', help='conv widths')
    p.add_argument(
        '--iterations',
        type=int,
        default=10,
        help='timed iterations per side and cell (default 10; plus 2 warm-up)',
    )
    p.add_argument('--rounds', type=int, default=5, help='interleaving rounds (default 5)')
    p.add_argument('--device', default='cpu', help="'cpu', 'cuda[:N]' or 'auto'")
    p.add_argument(
        '--threads', type=int, default=1, help='torch CPU threads (default 1; 0 = torch default)'
    )
    p.add_argument('--out', default=None, help='folder for speed.json and speed.md')
    p.add_argument('--peak-size', type=int, default=2048, help='matmul size for the peak')
    p.add_argument(
        '--latency',
        action='store_true',
        help='instead: click-to-mask latency through the real node (rclpy)',
    )
    p.add_argument('--clicks', type=int, default=20, help='--latency: clicks (default 20)')
    p.add_argument('--domain-id', type=int, default=60, help='--latency: ROS domain 60-69')
    p.add_argument(
        '--tiny',
        action='store_true',
        help='--latency: tiny node config (smoke test), not the default one',
    )


def run_cli(args: Any) -> int:
    """Entry point of `segdip-bench speed` (cli.py wires the options); 0 ok, 2 usage error."""
    import sys

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.latency:
        from .latency import run_latency_cli

        return run_latency_cli(args)
    try:
        st = SpeedSettings(
            sizes=ints(args.sizes),
            widths=ints(args.widths),
            iterations=args.iterations,
            rounds=args.rounds,
            device=str(resolve_device(args.device)),
            peak_size=args.peak_size,
        )
    except (ValueError, ConfigError) as err:
        print(f'segdip-bench speed: {err}', file=sys.stderr)
        return 2
    if st.iterations < 1 or any(s < 16 for s in st.sizes) or any(w < 1 for w in st.widths):
        print('segdip-bench speed: --iterations >= 1, sizes >= 16, widths >= 1', file=sys.stderr)
        return 2
    res = run_speed(st, log=lambda m: print(m, file=sys.stderr, flush=True))
    text = markdown(res)
    print(text)
    if args.out is not None:
        write(res, Path(args.out))
    return 0
