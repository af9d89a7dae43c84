# SPDX-License-Identifier: Apache-2.0
"""Benchmark outputs: results.json, results.md, iou_vs_clicks.png and the final masks.

results.json (schema "segdip-bench/1"), documented in docs/benchmark.md:
    {"schema", "task", "dataset", "created", "settings": {...}, "thresholds": [...],
     "score": "iou" | "miou",
     "methods": {name: {"learned", "seeds", "summary": {figure: mean over seeds},
                        "spread": {figure: std over seeds}, "mean_curve": [score after click k],
                        "runs": [{"seed", "summary", "mean_curve",
                                  "images": [{"name", "height", "width", "clicks", "iou",
                                              "seconds", "reset_seconds", "mask"}]}]}}}
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .runner import ImageRecord, MethodRun
from .scoring import aggregate_seeds, mean_curve, summarize

__all__ = [
    'SCHEMA',
    'build_results',
    'mask_path',
    'method_entry',
    'plot_curves',
    'record_mask_writer',
    'save_mask',
    'write_all',
    'write_json',
    'write_markdown',
]

SCHEMA = 'segdip-bench/1'


def mask_path(method: str, seed: int, name: str, multi_seed: bool) -> str:
    """Relative path of a final mask inside OUT."""
    sub = f'{method}/seed{seed}' if multi_seed else method
    return f'masks/{sub}/{name}.png'


def save_mask(out: Path, rel: str, labels: np.ndarray, task: str) -> None:
    """Binary masks as 0/255, multi-class as class ids (8-bit PNG)."""
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    img = (labels == 1).astype(np.uint8) * 255 if task == 'binary' else labels.astype(np.uint8)
    if not cv2.imwrite(str(path), img):
        raise OSError(f'cannot write {path}')


def method_entry(
    runs: list[MethodRun],
    task: str,
    max_clicks: int,
    thresholds: tuple[float, ...],
    learned: bool,
    multi_seed: bool,
) -> dict[str, Any]:
    """Summary (mean over seeds), spread and per-image records of one method."""
    prefix = 'iou' if task == 'binary' else 'miou'
    run_entries = []
    summaries = []
    for run in runs:
        curves = [r.iou for r in run.images]
        seconds = [s for r in run.images for s in r.seconds]
        summ = summarize(curves, seconds, max_clicks, thresholds, prefix)
        summ['reset_seconds'] = float(np.mean([r.reset_seconds for r in run.images]))
        summaries.append(summ)
        images = []
        for r in run.images:
            d = r.to_json()
            d['mask'] = mask_path(run.method, run.seed, r.name, multi_seed)
            images.append(d)
        run_entries.append(
            {'seed': run.seed, 'summary': summ, 'mean_curve': mean_curve(curves), 'images': images}
        )
    mean, spread = aggregate_seeds(summaries)
    curve = np.mean([e['mean_curve'] for e in run_entries], axis=0).tolist()
    return {
        'learned': learned,
        'seeds': [r.seed for r in runs],
        'summary': mean,
        'spread': spread,
        'mean_curve': curve,
        'runs': run_entries,
    }


def build_results(
    task: str,
    dataset: str,
    settings: dict[str, Any],
    thresholds: tuple[float, ...],
    methods: dict[str, dict[str, Any]],
) -> dict:
    return {
        'schema': SCHEMA,
        'task': task,
        'dataset': dataset,
        'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        'settings': settings,
        'thresholds': list(thresholds),
        'score': 'iou' if task == 'binary' else 'miou',
        'methods': methods,
    }


def write_json(out: Path, results: dict) -> Path:
    path = out / 'results.json'
    path.write_text(json.dumps(results, indent=1))
    return path


def _columns(results: dict) -> list[tuple[str, str, str]]:
    """(key, header, format) of the table columns present in the summaries."""
    p = results['score']
    name = 'IoU' if p == 'iou' else 'mIoU'
    cols = [
        (f'noc@{round(t * 100)}', f'NoC@{round(t * 100)}', '.2f') for t in results['thresholds']
    ]
    first = next(iter(results['methods'].values()))['summary']
    cols += [(f'{p}@{k}', f'{name}@{k}', '.3f') for k in (1, 3, 5, 10, 20) if f'{p}@{k}' in first]
    cols += [
        ('auc', f'{name} AuC', '.3f'),
        ('stability', 'Stability', '.3f'),
        ('seconds_per_click', 's/click', '.3f'),
        ('reset_seconds', 's/reset', '.2f'),
    ]
    return cols


def _unit(settings: dict[str, Any]) -> str:
    """What the click axis counts: clicks, or rounds of one click per class present."""
    return 'clicks per class present' if settings.get('clicks_per_class') else 'clicks'


def write_markdown(out: Path, results: dict) -> Path:
    """One row per method; learned methods run with several seeds show mean ± std."""
    cols = _columns(results)
    s = results['settings']
    lines = [
        f'# segdip-bench {results["task"]}: {results["dataset"]}',
        '',
        f'{s["images"]} images, {s["max_clicks"]} {_unit(s)}, '
        f'working size {s["working_size"]}, '
        f'seeds {s["seeds"]}; created {results["created"]}.',
        '',
        '| Method | ' + ' | '.join(c[1] for c in cols) + ' |',
        '|---|' + '---:|' * len(cols),
    ]
    for name, m in results['methods'].items():
        cells = []
        for key, _, fmt in cols:
            v = m['summary'].get(key, float('nan'))
            cell = format(v, fmt)
            if len(m['seeds']) > 1:
                cell += ' ± ' + format(m['spread'].get(key, 0.0), fmt)
            cells.append(cell)
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines += [
        '',
        'NoC counts max clicks when the threshold is never reached; stability is the '
        'share of click steps where the score drops by more than 0.05.',
        '',
    ]
    path = out / 'results.md'
    path.write_text('\n'.join(lines))
    return path


def plot_curves(out: Path, results: dict) -> Path:
    """Mean score after each click, one curve per method (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, m in results['methods'].items():
        curve = m['mean_curve']
        ax.plot(range(1, len(curve) + 1), curve, marker='.', label=name)
    for t in results['thresholds']:
        ax.axhline(t, color='grey', lw=0.6, ls='--')
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel(_unit(results['settings']))
    ax.set_ylabel('mean IoU' if results['score'] == 'iou' else 'mean class IoU')
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f'{results["task"]}: {Path(results["dataset"]).name}')
    fig.tight_layout()
    path = out / 'iou_vs_clicks.png'
    fig.savefig(path)
    plt.close(fig)
    return path


def write_all(out: Path, results: dict) -> list[Path]:
    """results.json, results.md and iou_vs_clicks.png (masks are saved during the run)."""
    out.mkdir(parents=True, exist_ok=True)
    return [write_json(out, results), write_markdown(out, results), plot_curves(out, results)]


def record_mask_writer(out: Path, method: str, seed: int, task: str, multi_seed: bool):
    """Callback for run_method that saves each image's final mask as soon as it is done."""

    def write(rec: ImageRecord) -> None:
        if rec.final_mask is not None:
            save_mask(out, mask_path(method, seed, rec.name, multi_seed), rec.final_mask, task)

    return write
