# SPDX-License-Identifier: Apache-2.0
"""segdip_eval_bag: offline tracking evaluation of SegDIP on a rosbag2, as the node runs live.

Reads the camera topic (Image or CompressedImage), the annotations (std_msgs/String JSON) and,
if present, ground-truth masks; drives a TrainingSession with the node's frame-switch rule
(segdip_ros.core.FrameDriver); writes the predicted class-id masks to a NEW bag
(/segdip/mask, mono8, header copied from the image) and to PNGs; reports per-frame and mean J and
F (first frame excluded) and seconds per frame in results.json / results.md /
j_over_frames.png, plus overlay.mp4.

``--dataset DIR``: DIR holds several bags (one per sub-folder), or frames in DAVIS layout
(images/<seq>/), which are first written as bags with simulated clicks (``--clicks``, default 3)
under OUT/bags/. One table then gives every sequence and the mean over sequences.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segdip_ros.offline.bagio import BagError, BagReader, BagWriter, image_msg
from segdip_ros.offline.tracking_eval import (
    FrameScore,
    SequenceResult,
    assign_annotations,
    track_sequence,
    write_dataset_report,
    write_sequence_report,
)

__all__ = ['build_parser', 'evaluate_bag', 'main', 'run']

_DEFAULT_GT = '/ground_truth/mask'
_DEFAULT_ANN = '/segdip/annotations'
_COLOURS = np.array(
    [
        [0, 0, 0],
        [255, 60, 60],
        [60, 200, 60],
        [60, 120, 255],
        [240, 200, 0],
        [200, 0, 200],
        [0, 200, 200],
        [255, 128, 0],
    ],
    np.uint8,
)


def overlay(rgb: np.ndarray, labels: np.ndarray, gt: np.ndarray | None) -> np.ndarray:
    """RGB frame with the predicted classes blended in and the ground-truth outline in white."""
    out = rgb.copy()
    lab = labels.astype(np.int64)
    sel = (lab != 0) & (lab != 255)
    colours = _COLOURS[np.clip(lab, 0, len(_COLOURS) - 1)]
    out[sel] = (0.5 * out[sel] + 0.5 * colours[sel]).astype(np.uint8)
    if gt is not None:
        contours, _ = cv2.findContours(
            (gt > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    return out


class _Progress:
    """A one-line progress bar on stderr (silent when disabled)."""

    def __init__(self, name: str, total: int, enabled: bool) -> None:
        self.name, self.total, self.enabled = name, max(total, 1), enabled

    def update(self, score: FrameScore) -> None:
        if not self.enabled:
            return
        done = score.index + 1
        bar = '#' * int(20 * done / self.total)
        j = '' if score.j is None else f' J={score.j:.3f}'
        sys.stderr.write(
            f'\r{self.name} [{bar:<20}] {done}/{self.total}{j} {score.seconds:.2f} s/frame '
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write('\n')


def make_session(args: argparse.Namespace, network: bool = True) -> Any:
    """A TrainingSession with the chosen preset and overrides; `network=False`: the same
    pipeline with the network's say removed from every cut (the ablation)."""
    from segdip_ros.core import PRESETS, TrainingSession

    over = {
        k: v
        for k, v in (
            ('working_size', args.working_size),
            ('device', args.device),
            ('seed', args.seed),
            ('warmup_iterations', args.warmup),
            ('network_scale', args.network_scale),
            ('refine', args.refine),
            ('width', args.width),
            ('iterations_first', args.iterations_first),
            ('iterations_per_frame', args.iterations_per_frame),
        )
        if v is not None
    }
    from segdip_ros.core.config import parse_overrides

    try:
        over.update(dict(parse_overrides(args.engine)))
    except ValueError as err:
        raise BagError(str(err)) from err
    cfg = PRESETS[args.preset](num_classes=args.num_classes, **over)
    if network:
        return TrainingSession(cfg)
    from segdip_ros.core import CutSettings
    from segdip_ros.core.tracking import TrackSettings

    return TrainingSession(
        cfg,
        CutSettings(network_weight=0.0, network_weight_first=0.0),
        TrackSettings(network_weight=0.0),
    )


METHODS = ('segdip', 'segdip-nonet', 'flow-cut', 'identity')


def make_tracker(method: str, args: argparse.Namespace) -> Any:
    """The method `method` (offline.trackers) with the run's engine options."""
    from segdip_ros.offline.trackers import PEER_METHODS, EngineTracker

    if method in ('segdip', 'segdip-nonet'):
        return EngineTracker(
            make_session(args, network=method == 'segdip'), warmup=args.warmup != 0
        )
    if method in PEER_METHODS:
        from segdip_ros.core import PRESETS

        size = args.working_size or PRESETS[args.preset]().working_size
        return PEER_METHODS[method](args.num_classes, size)
    raise BagError(f'unknown method {method!r}; known: {", ".join(METHODS)}')


def evaluate_bag(
    bag: Path,
    out_dir: Path,
    args: argparse.Namespace,
    name: str | None = None,
    method: str = 'segdip',
) -> SequenceResult:
    """Evaluate one method on one bag; writes masks (bag and PNGs), overlay video, reports."""
    reader = BagReader(
        Path(bag),
        image_topic=args.image_topic,
        annotation_topic=args.annotation_topic or None,
        gt_topic=args.gt_topic or None,
        gt_optional=args.gt_topic == _DEFAULT_GT,
        annotation_optional=args.annotation_topic == _DEFAULT_ANN,
    )
    if reader.annotation_topic is None and args.annotation_topic:
        print(f'{bag}: no annotation topic; the network gets no labels', file=sys.stderr)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_bag = Path(args.out_bag) if args.out_bag and name is None else out_dir / 'mask_bag'
    if out_bag.exists():
        raise BagError(f'output bag {out_bag} exists already; remove it or choose --out-bag')
    png_dir = out_dir / 'masks'
    png_dir.mkdir(exist_ok=True)
    total = reader.frame_count()
    if args.max_frames:
        total = min(total, args.max_frames)
    tracker = make_tracker(method, args)
    progress = _Progress(f'{method} {name or Path(bag).name}', total, not args.quiet)
    video: list[Any] = [None]

    with BagWriter(out_bag, args.storage) as writer:

        def on_frame(frame: Any, labels: Any, score: FrameScore) -> None:
            writer.write(
                args.mask_topic,
                image_msg(labels, frame.stamp_ns, frame.frame_id, 'mono8'),
                frame.recv_ns,
            )
            cv2.imwrite(str(png_dir / f'{frame.index:05d}.png'), labels)
            if not args.no_video:
                if video[0] is None:
                    h, w = labels.shape
                    video[0] = cv2.VideoWriter(
                        str(out_dir / 'overlay.mp4'),
                        cv2.VideoWriter_fourcc(*'mp4v'),
                        args.video_fps,
                        (w, h),
                    )
                video[0].write(
                    cv2.cvtColor(overlay(frame.image, labels, frame.gt), cv2.COLOR_RGB2BGR)
                )
            progress.update(score)

        try:
            pairs = assign_annotations(reader.frames(args.max_frames), reader.annotations())
            result = track_sequence(name or Path(bag).name, tracker, pairs, on_frame)
        finally:
            progress.close()
            if video[0] is not None:
                video[0].release()
    from segdip_ros.core.numerics import cpu_kernels

    result.settings = {
        'bag': str(bag),
        'image_topic': reader.image_topic,
        'method': method,
        'cpu_kernels': cpu_kernels(),
    }
    if method.startswith('segdip'):
        result.settings['config'] = _config_dict(tracker.session.cfg)
    write_sequence_report(result, out_dir)
    if reader.gt_topic is None:
        print(f'{result.name}: no ground-truth topic, J and F not computed', file=sys.stderr)
    return result


def _config_dict(cfg: Any) -> dict[str, Any]:
    from segdip_ros.core import config_to_dict

    return config_to_dict(cfg)


def _dataset_bags(root: Path, out: Path, args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(name, bag path) per sequence: sub-folder bags, or bags made from DAVIS-layout frames."""
    if (root / 'images').is_dir():
        from segdip_ros.tools.make_bag import (
            list_sequences,
            load_sequence,
            mask_annotation,
            simulate_clicks,
            write_sequence_bag,
        )

        bags = []
        kind = 'mask' if args.first_frame == 'mask' else f'clicks{args.clicks}'
        for seq in list_sequences(root):
            path = out / 'bags' / kind / seq
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                frames = load_sequence(root, seq, args.max_frames)
                if frames[0][1] is None:
                    raise BagError(f'sequence {seq} has no first-frame mask')
                anns = (
                    [mask_annotation(frames[0][1])]
                    if args.first_frame == 'mask'
                    else simulate_clicks(frames[0][1], args.clicks)
                )
                write_sequence_bag(path, frames, anns)
            bags.append((seq, path))
        return bags
    bags = sorted((p.name, p) for p in root.iterdir() if (p / 'metadata.yaml').exists())
    if not bags:
        raise BagError(
            f'{root} holds neither bags (sub-folders with metadata.yaml) nor '
            'frames in DAVIS layout (images/<seq>/)'
        )
    return bags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='segdip_eval_bag', description=__doc__.split('\n')[0])
    p.add_argument('bag', nargs='?', type=Path, help='rosbag2 directory')
    p.add_argument('--dataset', type=Path, help='folder of bags or DAVIS-layout frames')
    p.add_argument('--out', type=Path, default=Path('segdip_eval'), help='output folder')
    p.add_argument('--out-bag', type=Path, help='mask bag (default OUT/mask_bag)')
    p.add_argument(
        '--storage', choices=('sqlite3', 'mcap'), default='sqlite3', help='storage of the mask bag'
    )
    p.add_argument('--image-topic', help="default: the bag's camera topic")
    p.add_argument('--annotation-topic', default=_DEFAULT_ANN, help="'' for none")
    p.add_argument('--gt-topic', default=_DEFAULT_GT, help="'' for none")
    p.add_argument('--mask-topic', default='/segdip/mask')
    p.add_argument('--iterations-first', type=int, help='override the preset (first frame)')
    p.add_argument('--iterations-per-frame', type=int, help='override the preset (later frames)')
    p.add_argument('--preset', choices=('default', 'still', 'paper'), default='default')
    p.add_argument('--num-classes', type=int, default=2)
    p.add_argument('--working-size', type=int, help='override the preset')
    p.add_argument('--width', type=int, help='override the preset network width')
    p.add_argument(
        '--network-scale',
        type=float,
        help='network resolution as a share of the working size (preset: 0.5)',
    )
    p.add_argument(
        '--refine',
        choices=('none', 'graphcut'),
        help="graph cut on the network's probabilities (default: the preset's)",
    )
    p.add_argument('--warmup', type=int, help='warm-up iterations (0 = none; preset default)')
    p.add_argument(
        '--engine',
        action='append',
        default=[],
        metavar='NAME=VALUE',
        help="engine field on top of the preset (the node's engine_overrides), "
        'e.g. --engine iterations_per_click=30; repeatable',
    )
    p.add_argument('--device', help='auto, cpu, cuda, cuda:N')
    p.add_argument('--seed', type=int)
    p.add_argument(
        '--threads',
        type=int,
        help='torch CPU threads (1 is much faster when other jobs share the cores)',
    )
    p.add_argument('--max-frames', type=int)
    p.add_argument(
        '--methods',
        default='segdip',
        help=f'comma-separated, from {",".join(METHODS)} (all in the same run)',
    )
    p.add_argument(
        '--first-frame',
        choices=('clicks', 'mask'),
        default='clicks',
        help='--dataset frames: annotate frame 0 with simulated clicks, or with its '
        'ground-truth mask (the DAVIS semi-supervised protocol)',
    )
    p.add_argument('--clicks', type=int, default=3, help='simulated clicks for --dataset frames')
    p.add_argument('--no-video', action='store_true')
    p.add_argument('--video-fps', type=float, default=10.0)
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p


def run(args: argparse.Namespace) -> int:
    """Evaluate; prints the summary on stdout and returns 0. `--threads` is restored after,
    so calling run() from a test does not change torch for the rest of the process."""
    if (args.bag is None) == (args.dataset is None):
        raise BagError('give either a bag or --dataset DIR')
    if args.threads is not None and args.threads < 1:
        raise BagError(f'--threads must be >= 1, got {args.threads}')
    import torch

    saved = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(saved)


def _run(args: argparse.Namespace) -> int:
    t = time.perf_counter()
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise BagError(f'unknown method(s) {unknown}; known: {", ".join(METHODS)}')
    several = len(methods) > 1
    if args.dataset is not None:
        bags = _dataset_bags(args.dataset, args.out, args)
        table = {}
        for method in methods:
            out = args.out / method if several else args.out
            results = [
                evaluate_bag(bag, out / name, args, name=name, method=method) for name, bag in bags
            ]
            table[method] = write_dataset_report(results, out)
        if several:
            write_comparison(table, args.out)
        print((args.out / 'results.md').read_text())
    else:
        for method in methods:
            out = args.out / method if several else args.out
            r = evaluate_bag(args.bag, out, args, method=method)
            print(
                f'{method} {r.name}: J={r.j_mean:.3f} F={r.f_mean:.3f} '
                f'{r.seconds_per_frame:.2f} s/frame ({len(r.frames)} frames)'
            )
    from segdip_ros.core.numerics import cpu_kernels

    print(
        f'results in {args.out} ({time.perf_counter() - t:.0f} s; CPU kernels {cpu_kernels()})',
        file=sys.stderr,
    )
    return 0


def write_comparison(table: dict[str, dict[str, Any]], out: Path) -> None:
    """OUT/results.md and results.json: J per sequence, mean J and F, s/frame, per method."""
    import json

    seqs = sorted({s for summary in table.values() for s in summary['sequences']})

    def fmt(v: Any) -> str:
        return '-' if v is None or v != v else f'{v:.3f}'

    lines = [
        '| method | ' + ' | '.join(seqs) + ' | mean J | mean F | s/frame |',
        '|---' * (len(seqs) + 4) + '|',
    ]
    for method, summary in table.items():
        per = summary['sequences']
        spf = [per[s]['seconds_per_frame'] for s in seqs if s in per]
        lines.append(
            f'| {method} | '
            + ' | '.join(fmt(per.get(s, {}).get('J')) for s in seqs)
            + f' | **{fmt(summary["mean"]["J"])}** | {fmt(summary["mean"]["F"])} | '
            f'{fmt(float(np.mean(spf)) if spf else None)} |'
        )
    (out / 'results.md').write_text('\n'.join(lines) + '\n')
    from segdip_ros.offline.tracking_eval import json_safe

    (out / 'results.json').write_text(
        json.dumps(
            json_safe(
                {
                    m: {
                        'sequences': {s: v['J'] for s, v in summary['sequences'].items()},
                        'mean_J': summary['mean']['J'],
                        'mean_F': summary['mean']['F'],
                    }
                    for m, summary in table.items()
                }
            ),
            indent=1,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from segdip_ros.core import SegDipError

    try:
        return run(args)
    except (BagError, SegDipError, OSError) as err:
        print(f'segdip_eval_bag: error: {err}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
