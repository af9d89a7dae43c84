# SPDX-License-Identifier: Apache-2.0
"""Score a tracking run the DAVIS way and write its reports (no ROS imports).

The methods are those of `segdip_ros.offline.trackers`; the engine's is driven by its one
frame-switch rule (`segdip_ros.core.FrameDriver`), the same rule the node follows live. Scores
follow DAVIS: J = IoU and F = boundary F measure of the object (label != 0 and != 255 in the
prediction, mask > 0 in the ground truth), averaged over frames with the first (annotated)
frame excluded. Bags are read by the caller (segdip_ros.tools.eval_bag).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segdip_ros.core.metrics import boundary_f_measure, iou
from segdip_ros.offline.trackers import Tracker

__all__ = [
    'FrameScore',
    'SequenceResult',
    'assign_annotations',
    'foreground',
    'json_safe',
    'score_frame',
    'score_sequence',
    'track_sequence',
    'write_dataset_report',
    'write_sequence_report',
]


def foreground(labels: np.ndarray) -> np.ndarray:
    """Object pixels of a predicted label image: any class but background (0) and 255."""
    labels = np.asarray(labels)
    return (labels != 0) & (labels != 255)


@dataclass
class FrameScore:
    """Per-frame record: J and F are None where there is no ground truth."""

    index: int
    stamp_ns: int
    j: float | None
    f: float | None
    seconds: float
    annotations: int = 0


def score_frame(pred_labels: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(J, F) of one frame; raises ValueError on a size mismatch."""
    p = foreground(pred_labels)
    g = np.asarray(gt) > 0
    if p.shape != g.shape:
        raise ValueError(
            f'prediction is {p.shape[1]}x{p.shape[0]}, ground truth {g.shape[1]}x{g.shape[0]}'
        )
    return iou(p, g), boundary_f_measure(p, g)


def score_sequence(
    preds: Sequence[np.ndarray], gts: Sequence[np.ndarray | None]
) -> tuple[list[tuple[float, float] | None], float, float]:
    """Per-frame (J, F) (None without ground truth) and the means over frames 1.. (DAVIS:
    the first frame is given, so it is excluded). Means are NaN when nothing is scored."""
    per = [None if g is None else score_frame(p, g) for p, g in zip(preds, gts)]
    scored = [x for x in per[1:] if x is not None]
    if not scored:
        return per, float('nan'), float('nan')
    return per, float(np.mean([j for j, _ in scored])), float(np.mean([f for _, f in scored]))


def assign_annotations(
    frames: Iterable[Any], annotations: Sequence[Any]
) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """Pair each frame (with .stamp_ns and .recv_ns) with the annotations that belong to it.

    A stamped annotation belongs to the first frame whose stamp is >= its stamp (normally the
    equal one); an unstamped one to the last frame recorded before it, as the node ties an
    unstamped click to the newest frame. Uses one frame of look-ahead, so frames can stream.
    """
    pending = sorted(annotations, key=lambda a: a.recv_ns)
    it = iter(frames)
    cur = next(it, None)
    while cur is not None:
        nxt = next(it, None)
        mine, rest = [], []
        for a in pending:
            if a.stamp_ns is not None:
                take = a.stamp_ns <= cur.stamp_ns
            else:
                take = nxt is None or a.recv_ns < nxt.recv_ns
            (mine if take else rest).append(a)
        pending = rest
        yield cur, [a.data for a in mine]
        cur = nxt


@dataclass
class SequenceResult:
    """Scores of one sequence; j_mean / f_mean exclude the first frame."""

    name: str
    frames: list[FrameScore] = field(default_factory=list)
    j_mean: float = float('nan')
    f_mean: float = float('nan')
    seconds_per_frame: float = float('nan')
    first_frame_seconds: float = float('nan')
    errors: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def finish(self) -> SequenceResult:
        """Fill in the means from `frames`."""
        later = self.frames[1:]
        js = [fr.j for fr in later if fr.j is not None]
        fs = [fr.f for fr in later if fr.f is not None]
        self.j_mean = float(np.mean(js)) if js else float('nan')
        self.f_mean = float(np.mean(fs)) if fs else float('nan')
        if self.frames:
            self.first_frame_seconds = self.frames[0].seconds
        if later:
            self.seconds_per_frame = float(np.mean([fr.seconds for fr in later]))
        return self


FrameCallback = Callable[[Any, Any, FrameScore], None]


def track_sequence(
    name: str,
    tracker: Tracker,
    frames_with_annotations: Iterable[tuple[Any, list[dict[str, Any]]]],
    on_frame: FrameCallback | None = None,
) -> SequenceResult:
    """Run a method (`offline.trackers`) over (frame, annotations) pairs; frames need .index,
    .stamp_ns, .image and .gt. `on_frame(frame, labels, score)` lets the caller write outputs
    as it goes."""
    result = SequenceResult(name)
    for frame, anns in frames_with_annotations:
        t = time.perf_counter()
        labels = tracker.process(frame.image, anns)
        dt = time.perf_counter() - t
        j = f = None
        if frame.gt is not None:
            j, f = score_frame(labels, frame.gt)
        score = FrameScore(frame.index, frame.stamp_ns, j, f, dt, len(anns))
        result.frames.append(score)
        if on_frame is not None:
            on_frame(frame, labels, score)
    result.errors = list(tracker.errors)
    return result.finish()


def json_safe(obj: Any) -> Any:
    """NaN (nothing scored) -> null, so results.json is strict JSON for any reader."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _fmt(v: float | None) -> str:
    return '-' if v is None or v != v else f'{v:.3f}'


def write_sequence_report(result: SequenceResult, out_dir: Path) -> None:
    """results.json, results.md and j_over_frames.png for one sequence."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'results.json').write_text(json.dumps(json_safe(asdict(result)), indent=1))
    lines = [
        f'# {result.name}',
        '',
        f'J (mean IoU, frame 0 excluded): {_fmt(result.j_mean)}  ',
        f'F (boundary F measure): {_fmt(result.f_mean)}  ',
        f'seconds per frame: {_fmt(result.seconds_per_frame)} '
        f'(first frame {_fmt(result.first_frame_seconds)})',
        '',
        '| frame | stamp (ns) | J | F | s | annotations |',
        '|---|---|---|---|---|---|',
    ]
    lines += [
        f'| {fr.index} | {fr.stamp_ns} | {_fmt(fr.j)} | {_fmt(fr.f)} | {fr.seconds:.2f} '
        f'| {fr.annotations} |'
        for fr in result.frames
    ]
    if result.errors:
        lines += ['', '## Rejected annotations', ''] + [f'- {e}' for e in result.errors]
    (out_dir / 'results.md').write_text('\n'.join(lines) + '\n')
    plot_j_over_frames([result], out_dir / 'j_over_frames.png')


def plot_j_over_frames(results: Sequence[SequenceResult], path: Path) -> None:
    """J and F against frame index, one line per sequence (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r in results:
        idx = [fr.index for fr in r.frames if fr.j is not None]
        ax.plot(idx, [fr.j for fr in r.frames if fr.j is not None], label=f'{r.name} J')
        ax.plot(idx, [fr.f for fr in r.frames if fr.f is not None], '--', label=f'{r.name} F')
    ax.set_xlabel('frame')
    ax.set_ylabel('score')
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_dataset_report(results: Sequence[SequenceResult], out_dir: Path) -> dict[str, Any]:
    """One table over sequences with the mean over sequences; returns the summary dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def nanmean(vals: list[float]) -> float:
        vals = [v for v in vals if v == v]
        return float(np.mean(vals)) if vals else float('nan')

    summary = {
        'sequences': {
            r.name: {
                'J': r.j_mean,
                'F': r.f_mean,
                'frames': len(r.frames),
                'seconds_per_frame': r.seconds_per_frame,
                'first_frame_seconds': r.first_frame_seconds,
            }
            for r in results
        },
        'mean': {
            'J': nanmean([r.j_mean for r in results]),
            'F': nanmean([r.f_mean for r in results]),
            'J&F': nanmean([(r.j_mean + r.f_mean) / 2 for r in results]),
        },
        'settings': results[0].settings if results else {},
    }
    (out_dir / 'results.json').write_text(json.dumps(json_safe(summary), indent=1))
    lines = [
        '| sequence | frames | J | F | s/frame | first frame s |',
        '|---|---|---|---|---|---|',
    ]
    lines += [
        f'| {r.name} | {len(r.frames)} | {_fmt(r.j_mean)} | {_fmt(r.f_mean)} | '
        f'{_fmt(r.seconds_per_frame)} | {_fmt(r.first_frame_seconds)} |'
        for r in results
    ]
    m = summary['mean']
    lines.append(f'| **mean** | | **{_fmt(m["J"])}** | **{_fmt(m["F"])}** | | |')
    (out_dir / 'results.md').write_text('\n'.join(lines) + '\n')
    plot_j_over_frames(results, out_dir / 'j_over_frames.png')
    return summary
