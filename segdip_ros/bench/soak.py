# SPDX-License-Identifier: Apache-2.0
"""`segdip-bench soak --minutes 60`: the node for an hour at 30 Hz, memory and speed over time.

The node runs as a child process (segdip_ros.bench.nodeproc) in tracking mode with
`session_dir`; this process streams `moving_object_sequence` frames at `--fps`, sends a click
on `~/annotations` every `--click-period` s (on the frame just sent: its stamp, a point within
its size, the class its ground truth has there), and switches the frame size (160x120 <->
128x96) every `--size-period` s. Every `--sample-period` s it records the node's RSS (/proc)
and its /diagnostics (it/s, frames received/dropped). At the end the node is stopped with
SIGINT and its annotation log is compared with the clicks sent: every click sent must have a
queued record (accepted), every accepted click one applied or refused record, and RSS must
stay within 10 % after the first minute (max / min <= 1.10).

Writes OUT/soak.json (all samples), OUT/soak.png (RSS and it/s against time, matplotlib Agg)
and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from segdip_ros.bench.nodeproc import NodeClient, NodeProcess, read_log, rss_mb

__all__ = ['add_options', 'plot_soak', 'run_cli', 'run_soak']

SIZES = ((160, 120), (128, 96))


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument('--minutes', type=float, default=60.0, help='duration (default 60)')
    p.add_argument('--fps', type=float, default=30.0, help='frame rate, Hz (default 30)')
    p.add_argument('--click-period', type=float, default=3.0, help='s between clicks (3)')
    p.add_argument(
        '--size-period',
        type=float,
        default=600.0,
        help='s between frame-size changes (default 600 = 10 min)',
    )
    p.add_argument('--sample-period', type=float, default=10.0, help='s between samples (10)')
    p.add_argument('--domain-id', type=int, default=95, help='ROS domain (default 95)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', type=Path, default=Path('bench-results/soak'))


def _frames(size: tuple[int, int]) -> list[tuple[Any, np.ndarray]]:
    """(Image message without stamp, ground-truth labels) for one frame size."""
    from std_msgs.msg import Header

    from segdip_ros.core.synthetic import moving_object_sequence
    from segdip_ros.ros.convert import rgb_to_image_msg

    w, h = size
    return [
        (rgb_to_image_msg(s.rgb, Header(frame_id='camera')), s.labels)
        for s in moving_object_sequence(frames=30, height=h, width=w)
    ]


def run_soak(args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    session = out / 'session'
    if session.exists():
        raise SystemExit(f'{session} exists: give a fresh --out')
    params = {'session_dir': str(session), 'mode': 'tracking', 'torch_threads': 1}
    node = NodeProcess(params, args.domain_id, out / 'node.log').start()
    client = None
    rng = random.Random(args.seed)
    sets = {size: _frames(size) for size in SIZES}
    samples: list[dict[str, Any]] = []
    sent: list[tuple[float, float, int]] = []
    frames_sent = 0
    try:
        client = NodeClient(args.domain_id)
        if not client.spin_until(client.matched, 60, node.alive):
            raise RuntimeError('the node did not come up:\n' + node.log_text()[-2000:])
        t0 = time.monotonic()
        duration = args.minutes * 60.0
        next_frame = next_click = next_sample = t0
        k = 0
        while True:
            now = time.monotonic()
            el = now - t0
            if el >= duration or not node.alive():
                break
            size = SIZES[int(el // args.size_period) % len(SIZES)]
            if now >= next_frame:
                msg, labels = sets[size][k % len(sets[size])]
                msg.header.stamp.sec, msg.header.stamp.nanosec = (
                    1000 + k // 30,
                    (k % 30) * 33_000_000,
                )
                client.image.publish(msg)
                k += 1
                frames_sent += 1
                next_frame += 1.0 / args.fps
                if now >= next_click:
                    x, y = rng.uniform(0, size[0] - 1), rng.uniform(0, size[1] - 1)
                    cls = int(labels[int(y), int(x)])
                    stamp = {'sec': msg.header.stamp.sec, 'nanosec': msg.header.stamp.nanosec}
                    client.send({'type': 'click', 'x': x, 'y': y, 'class_id': cls, 'stamp': stamp})
                    sent.append((x, y, cls))
                    next_click += args.click_period
            if now >= next_sample:
                d = client.diag
                samples.append(
                    {
                        't': el,
                        'rss_mb': rss_mb(node.pid),
                        'it_s': float(d.get('iterations_per_second', 'nan')),
                        'frames_sent': frames_sent,
                        'frames_received': int(d.get('frames_received', 0)),
                        'frames_dropped': int(d.get('frames_dropped', 0)),
                        'frames_used': int(d.get('frames_used', 0)),
                        'callback_errors': int(d.get('callback_errors', 0)),
                        'annotations_rejected': int(d.get('annotations_rejected', 0)),
                        'size': list(size),
                        'clicks_sent': len(sent),
                    }
                )
                if len(samples) % 30 == 1:
                    log(
                        f'soak {el / 60:5.1f} min: RSS {samples[-1]["rss_mb"]:.0f} MB, '
                        f'{samples[-1]["it_s"]:.0f} it/s, {frames_sent} frames sent, '
                        f'{len(sent)} clicks'
                    )
                next_sample += args.sample_period
                _write(out, samples, None)
            client.executor.spin_once(timeout_sec=max(0.0, min(0.005, next_frame - now)))
        crashed = not node.alive()
        client.spin_for(3.0)  # the last clicks reach the node
        final_diag = dict(client.diag)
    finally:
        code = node.stop()
        if client is not None:
            client.close()
    result = _summary(
        samples, sent, read_log(session), frames_sent, final_diag, crashed, code, args
    )
    _write(out, samples, result)
    plot_soak(samples, out / 'soak.png', result)
    return result


def _summary(
    samples: list[dict[str, Any]],
    sent: list[tuple[float, float, int]],
    records: list[dict[str, Any]],
    frames_sent: int,
    diag: dict[str, str],
    crashed: bool,
    code: int | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    queued = {r['id']: r for r in records if r.get('status') == 'queued'}
    settled = [r['id'] for r in records if r.get('status') in ('applied', 'refused')]
    refused = [r for r in records if r.get('status') == 'refused']
    reasons: dict[str, int] = {}
    for r in refused:  # grouped with the numbers blanked
        key = re.sub(r'[-+]?\d+(\.\d+)?', '#', str(r.get('reason', '')))
        reasons[key] = reasons.get(key, 0) + 1
    logged = {
        (round(r['x'], 6), round(r['y'], 6), r['class_id'])
        for r in queued.values()
        if r.get('type') == 'click'
    }
    missing = [c for c in sent if (round(c[0], 6), round(c[1], 6), c[2]) not in logged]
    warm = [s['rss_mb'] for s in samples if s['t'] >= 60.0]
    its = [s['it_s'] for s in samples if np.isfinite(s['it_s']) and s['it_s'] > 0]
    return {
        'command': f'segdip-bench soak --minutes {args.minutes:g} --fps {args.fps:g} '
        f'--click-period {args.click_period:g} --size-period {args.size_period:g}',
        'minutes_run': samples[-1]['t'] / 60.0 if samples else 0.0,
        'crashed': crashed,
        'exit_code': code,
        'frames_sent': frames_sent,
        'frames_received': int(diag.get('frames_received', 0)),
        'frames_dropped': int(diag.get('frames_dropped', 0)),
        'frames_used': int(diag.get('frames_used', 0)),
        'callback_errors': int(diag.get('callback_errors', 0)),
        'annotations_rejected': int(diag.get('annotations_rejected', 0)),
        'rss_after_1min_mb': warm[0] if warm else float('nan'),
        'rss_end_mb': samples[-1]['rss_mb'] if samples else float('nan'),
        'rss_min_mb': min(warm) if warm else float('nan'),
        'rss_max_mb': max(warm) if warm else float('nan'),
        'rss_spread_pct': 100.0 * (max(warm) / min(warm) - 1.0) if warm else float('nan'),
        'it_s_median': float(np.median(its)) if its else float('nan'),
        'it_s_min': float(min(its)) if its else float('nan'),
        'clicks_sent': len(sent),
        'clicks_in_log': len(sent) - len(missing),
        'accepted': len(queued),
        'settled': len(set(settled)),
        'settled_twice': len(settled) - len(set(settled)),
        'applied': sum(1 for r in records if r.get('status') == 'applied'),
        'refused': len(refused),
        'refused_reasons': reasons,
    }


def _write(out: Path, samples: list[dict[str, Any]], result: dict[str, Any] | None) -> None:
    tmp = out / 'soak.json.tmp'
    tmp.write_text(json.dumps({'result': result, 'samples': samples}, indent=1))
    tmp.replace(out / 'soak.json')


def plot_soak(samples: list[dict[str, Any]], path: Path, result: dict[str, Any]) -> None:
    """RSS (MB) and it/s against minutes, frame-size changes marked."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    t = [s['t'] / 60.0 for s in samples]
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    a.plot(t, [s['rss_mb'] for s in samples], color='tab:blue')
    a.set_ylabel('node RSS (MB)')
    b.plot(t, [s['it_s'] for s in samples], color='tab:red')
    b.set_ylabel('iterations / s')
    b.set_xlabel('minutes')
    for i in range(1, len(samples)):
        if samples[i]['size'] != samples[i - 1]['size']:
            for ax in (a, b):
                ax.axvline(t[i], color='grey', linestyle=':', linewidth=1)
    a.set_title(
        f'segdip_node soak: {result["frames_sent"]} frames at 30 Hz, '
        f'{result["clicks_sent"]} clicks (dotted: frame-size change)',
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_cli(args: argparse.Namespace) -> int:
    r = run_soak(args)
    print(json.dumps(r, indent=1))
    ok = (
        not r['crashed']
        and r['clicks_in_log'] == r['clicks_sent']
        and r['settled'] == r['accepted']
        and r['settled_twice'] == 0
        and r['rss_spread_pct'] <= 10.0
    )
    return 0 if ok else 1
