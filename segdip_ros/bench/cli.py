# SPDX-License-Identifier: Apache-2.0
"""`segdip-bench`: interactive-segmentation benchmark of SegDIP against training-free peers.

    segdip-bench binary --dataset DIR --methods segdip,grabcut --max-clicks 20 --out OUT
    segdip-bench multiclass --dataset DIR --classes DIR/classes.json --ignore 11 --out OUT
    segdip-bench list
    segdip-bench soak --minutes 60 | storm --messages 10000 | killtest --kills 50  (need ROS)

No ROS import at module level: the benchmarks run in a plain venv; soak, storm and
killtest import rclpy when they run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import DEFAULT_WORKING_SIZE, MethodSettings
from .datasets import DatasetError, Sample, list_samples, load_classes, load_sample
from .methods import METHODS, make_method
from .report import build_results, method_entry, record_mask_writer, write_all
from .runner import MethodRun, run_method
from .scoring import BINARY_THRESHOLDS, MULTICLASS_THRESHOLDS

__all__ = ['DEFAULT_METHODS', 'build_parser', 'main', 'parse_args', 'run']

DEFAULT_METHODS = {
    'binary': 'segdip,grabcut,grabcut-nearest,randomwalker',
    'multiclass': 'segdip,randomwalker,nearest',
}


def _common(p: argparse.ArgumentParser, task: str) -> None:
    p.add_argument(
        '--dataset',
        required=True,
        type=Path,
        help='folder with images/<name>.<ext> and masks/<name>.png',
    )
    p.add_argument(
        '--methods',
        default=DEFAULT_METHODS[task],
        help=f'comma-separated registry names (default {DEFAULT_METHODS[task]}); '
        '`segdip-bench list` shows them',
    )
    p.add_argument('--max-clicks', type=int, default=20, help='clicks per image (default 20)')
    p.add_argument(
        '--out', type=Path, default=Path(f'bench-results/{task}'), help='output folder (created)'
    )
    p.add_argument('--limit', type=int, default=None, help='only the first N images by name')
    p.add_argument(
        '--working-size',
        type=int,
        default=DEFAULT_WORKING_SIZE,
        help='long side of the working image for every method, px '
        f'(default {DEFAULT_WORKING_SIZE}, never upscaled)',
    )
    p.add_argument(
        '--click-radius',
        type=int,
        default=None,
        help='click disk radius at working size, px (default: each SegDIP preset its '
        'own, 2 for the peers)',
    )
    p.add_argument(
        '--iterations-per-click',
        type=int,
        default=None,
        help='SegDIP training iterations after each click (default: preset)',
    )
    p.add_argument(
        '--seconds-per-click',
        type=float,
        default=None,
        help='train SegDIP for this wall-clock budget per click instead of a count',
    )
    p.add_argument(
        '--warmup-iterations',
        type=int,
        default=None,
        help='SegDIP reconstruction-only iterations per image (default: preset)',
    )
    p.add_argument(
        '--seeds',
        type=int,
        default=1,
        help='repeat learned methods with seeds 0..N-1, report mean and spread',
    )
    p.add_argument('--device', default='auto', help="SegDIP device: 'auto', 'cpu', 'cuda[:N]'")
    p.add_argument('--threads', type=int, default=None, help='limit torch/OpenCV CPU threads')
    p.add_argument('--no-progress', action='store_true', help='no progress bar on stderr')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='segdip-bench', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    _common(sub.add_parser('binary', help='binary interactive segmentation (NoC@85/90)'), 'binary')
    multi = sub.add_parser('multiclass', help='multi-class interactive segmentation (mean IoU)')
    _common(multi, 'multiclass')
    multi.add_argument(
        '--classes',
        type=Path,
        default=None,
        help='classes.json {"id": "name"} (default DATASET/classes.json)',
    )
    multi.add_argument('--ignore', type=int, default=None, help='ignored class id (e.g. 11)')
    multi.add_argument(
        '--clicks-per-class',
        action='store_true',
        help='each step clicks once on every class present that is still wrong, '
        'then predicts: --max-clicks, NoC and mIoU@k count clicks per class',
    )
    from .speed import add_options as add_speed_options

    add_speed_options(sub.add_parser('speed', help='training-step speed, reference vs optimised'))
    from .soak import add_options as add_soak_options

    add_soak_options(
        sub.add_parser(
            'soak',
            help='the node for --minutes at 30 Hz (ROS): RSS, '
            'it/s, dropped frames, log completeness',
        )
    )
    from .storm import add_options as add_storm_options

    add_storm_options(
        sub.add_parser(
            'storm',
            help='hostile messages on every input while a '
            'scene is labelled (ROS): crashes, RSS, warnings, IoU',
        )
    )
    from .killtest import add_options as add_kill_options

    add_kill_options(
        sub.add_parser(
            'killtest',
            help='SIGKILL the node at random moments of '
            'each state (ROS): accepted, lost, duplicated',
        )
    )
    from .keepup import add_options as add_keepup_options

    add_keepup_options(
        sub.add_parser(
            'keepup',
            help='a timed bag replay into the node (ROS): the share of frames that get a mask',
        )
    )
    sub.add_parser('list', help='list the registered methods')
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _check(args: argparse.Namespace) -> str | None:
    """A message for the first invalid option, or None."""
    if args.max_clicks < 1:
        return f'--max-clicks must be >= 1, got {args.max_clicks}'
    if args.seeds < 1:
        return f'--seeds must be >= 1, got {args.seeds}'
    if args.working_size < 16:
        return f'--working-size must be >= 16, got {args.working_size}'
    if args.seconds_per_click is not None and args.seconds_per_click <= 0:
        return f'--seconds-per-click must be > 0, got {args.seconds_per_click}'
    unknown = [m for m in _method_names(args) if m not in METHODS]
    if unknown:
        return f'unknown method(s) {", ".join(unknown)}; known: {", ".join(sorted(METHODS))}'
    return None


def _method_names(args: argparse.Namespace) -> list[str]:
    return [m.strip() for m in args.methods.split(',') if m.strip()]


def _load(args: argparse.Namespace) -> tuple[list[Sample], int, dict[str, Any]]:
    """Samples, number of classes and the dataset part of the settings."""
    task = args.command
    ignore = getattr(args, 'ignore', None)
    paths = list_samples(args.dataset, args.limit)
    samples = [load_sample(p, task, ignore) for p in paths]
    extra: dict[str, Any] = {}
    if task == 'binary':
        return samples, 2, extra
    classes = load_classes(args.classes or args.dataset / 'classes.json', ignore)
    num_classes = max(classes) + 1
    for s in samples:
        bad = set(int(v) for v in set(s.labels[s.valid].ravel().tolist())) - set(classes)
        if bad:
            raise DatasetError(f'{s.name}: labels {sorted(bad)} are neither classes nor --ignore')
    extra.update(classes={str(k): v for k, v in classes.items()}, ignore=ignore)
    return samples, num_classes, extra


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; 0 on success, 1 on a data error, 2 on a usage error."""
    if args.command == 'speed':
        from .speed import run_cli as run_speed

        return run_speed(args)
    if args.command in ('soak', 'storm', 'killtest', 'keepup'):  # these import rclpy (lazily)
        import importlib

        return importlib.import_module(f'.{args.command}', __package__).run_cli(args)
    if args.command == 'list':
        print('\n'.join(sorted(METHODS)))
        return 0
    problem = _check(args)
    if problem:
        print(f'segdip-bench: {problem}', file=sys.stderr)
        return 2
    try:
        samples, num_classes, extra = _load(args)
    except DatasetError as err:
        print(f'segdip-bench: {err}', file=sys.stderr)
        return 1
    task = args.command
    settings = MethodSettings(
        num_classes=num_classes,
        working_size=args.working_size,
        click_radius=args.click_radius,
        iterations_per_click=args.iterations_per_click,
        seconds_per_click=args.seconds_per_click,
        warmup_iterations=args.warmup_iterations,
        device=args.device,
    )
    try:
        methods = [make_method(name, settings) for name in _method_names(args)]
    except ValueError as err:
        print(f'segdip-bench: {err}', file=sys.stderr)
        return 2
    _limit_threads(args.threads, any(m.learned for m in methods))
    thresholds = BINARY_THRESHOLDS if task == 'binary' else MULTICLASS_THRESHOLDS
    per_class = bool(getattr(args, 'clicks_per_class', False))
    run_settings = {
        'images': len(samples),
        'names': [s.name for s in samples],
        'max_clicks': args.max_clicks,
        'working_size': args.working_size,
        'click_radius': args.click_radius,
        'iterations_per_click': args.iterations_per_click,
        'seconds_per_click': args.seconds_per_click,
        'warmup_iterations': args.warmup_iterations,
        'seeds': args.seeds,
        'limit': args.limit,
        'device': args.device,
        'clicks_per_class': per_class,
        'methods': _method_names(args),
        **extra,
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, Any]] = {}
    for method in methods:
        seeds = list(range(args.seeds)) if method.learned else [0]
        multi_seed = len(seeds) > 1
        runs: list[MethodRun] = []
        for seed in seeds:
            writer = record_mask_writer(out, method.name, seed, task, multi_seed)
            runs.append(
                run_method(
                    method,
                    samples,
                    task,
                    args.max_clicks,
                    seed,
                    thresholds[-1],
                    on_image=writer,
                    progress=not args.no_progress,
                    per_class=per_class,
                )
            )
        entries[method.name] = method_entry(
            runs, task, args.max_clicks, thresholds, method.learned, multi_seed
        )
        results = build_results(task, str(args.dataset), run_settings, thresholds, entries)
        write_all(out, results)  # after every method, so a long run leaves partial results
    print((out / 'results.md').read_text())
    return 0


def _limit_threads(threads: int | None, uses_torch: bool) -> None:
    if threads is None:
        return
    import cv2

    cv2.setNumThreads(threads)
    if uses_torch:
        import torch

        torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
