# SPDX-License-Identifier: Apache-2.0
"""Tracking evaluation: J/F scoring, the frame-switch rule, and eval_bag end to end."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from segdip_ros.core import FrameDriver
from segdip_ros.core.metrics import boundary_map
from segdip_ros.offline.bagio import BagAnnotation, BagReader
from segdip_ros.offline.tracking_eval import (
    assign_annotations,
    score_sequence,
    write_dataset_report,
)
from segdip_ros.tools import eval_bag, make_bag

DATA = Path(
    os.environ.get('SEGDIP_DATA') or Path(__file__).resolve().parents[2].parent / 'shared' / 'data'
)


def rect(h: int, w: int, y0: int, x0: int, rh: int, rw: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0 : y0 + rh, x0 : x0 + rw] = 255
    return m


def brute_force_f(pred: np.ndarray, gt: np.ndarray, radius: float) -> float:
    """Boundary F with explicit Euclidean distances between boundary pixels."""
    pb = np.argwhere(boundary_map(pred > 0))
    gb = np.argwhere(boundary_map(gt > 0))
    d = np.sqrt(((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1))
    precision = (d.min(1) <= radius).mean()
    recall = (d.min(0) <= radius).mean()
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def test_ground_truth_as_prediction_scores_one() -> None:
    gts = [rect(60, 80, 10, 10 + k, 30, 40) for k in range(4)]
    labels = [(g > 0).astype(np.uint8) for g in gts]
    per, j, f = score_sequence(labels, gts)
    assert j == 1.0 and f == 1.0 and per[0] == (1.0, 1.0)


def test_shifted_prediction_scores_known_values() -> None:
    h, w, rh, rw = 100, 100, 30, 40
    gts = [rect(h, w, 20, 20, rh, rw)] * 3
    # frame 0 is perfect (excluded anyway), frame 1 shifted by 4 px, frame 2 by 1 px
    preds = [
        (gts[0] > 0).astype(np.uint8),
        (rect(h, w, 20, 24, rh, rw) > 0).astype(np.uint8),
        (rect(h, w, 20, 21, rh, rw) > 0).astype(np.uint8),
    ]
    per, j, f = score_sequence(preds, gts)
    radius = np.ceil(0.008 * np.hypot(h, w))  # DAVIS tolerance: 2 px here
    j1, j2 = (rw - 4) / (rw + 4), (rw - 1) / (rw + 1)
    f1 = brute_force_f(preds[1], gts[1], radius)
    assert per[1][0] == pytest.approx(j1) and per[2][0] == pytest.approx(j2)
    assert per[1][1] == pytest.approx(f1) and 0.3 < f1 < 0.9
    assert per[2][1] == pytest.approx(1.0)  # 1 px is within the tolerance
    assert j == pytest.approx((j1 + j2) / 2) and f == pytest.approx((f1 + 1.0) / 2)
    # 255 (unlabelled) is not object; frames without ground truth are not scored
    per, j, f = score_sequence([preds[0], np.full((h, w), 255, np.uint8)], [gts[0], None])
    assert per[1] is None and np.isnan(j)


def test_assign_annotations_by_stamp_and_by_arrival() -> None:
    frames = [SimpleNamespace(stamp_ns=100 * k, recv_ns=100 * k + 5) for k in range(3)]
    anns = [
        BagAnnotation({'type': 'click', 'n': 'stamped0'}, 0, 6),
        BagAnnotation({'type': 'click', 'n': 'late-stamped1'}, 100, 250),
        BagAnnotation({'type': 'click', 'n': 'unstamped-after1'}, None, 110),
        BagAnnotation({'type': 'click', 'n': 'unstamped-before0'}, None, 1),
    ]
    got = [[a['n'] for a in anns] for _, anns in assign_annotations(frames, anns)]
    assert got == [['unstamped-before0', 'stamped0'], ['unstamped-after1', 'late-stamped1'], []]


@dataclass
class FakeSession:
    """Records the engine calls the tracker makes."""

    calls: list[Any]
    has_image: bool = False
    frame_index: int = 0
    cfg: Any = field(
        default_factory=lambda: SimpleNamespace(
            iterations_per_click=7, iterations_first=300, iterations_per_frame=30
        )
    )

    def set_image(self, rgb: Any) -> None:
        self.calls.append('set_image')
        self.has_image = True

    def warmup(self) -> None:
        self.calls.append('warmup')

    def next_frame(self, rgb: Any) -> None:
        self.calls.append('next_frame')
        self.frame_index += 1
        self.added = 0

    @property
    def annotations(self) -> tuple[Any, ...]:
        return (None,) * getattr(self, 'added', 0)

    def add_annotation(self, a: Any) -> int:
        from segdip_ros.core import AnnotationError

        if a.class_id > 1:
            raise AnnotationError(f'class_id {a.class_id} is not in [0, 1]')
        self.calls.append(type(a).__name__)
        self.added = getattr(self, 'added', 0) + 1
        return 0

    def undo(self) -> None:
        self.calls.append('undo')

    def clear(self) -> None:
        self.calls.append('clear')

    def step(self, n: int) -> None:
        self.calls.append(('step', n))

    def refine(self) -> str:
        self.calls.append('refine')
        return 'prediction'


def test_frame_driver_follows_the_frame_switch_rule() -> None:
    s = FakeSession([])
    tr = FrameDriver(s)  # type: ignore[arg-type]
    click = {'type': 'click', 'x': 1, 'y': 2, 'class_id': 1, 'stamp': {'sec': 0, 'nanosec': 0}}
    assert tr.process(None, [click, {'type': 'undo'}, click, {'type': 'clear'}]) == 'prediction'
    tr.process(None, [])
    tr.process(None, [click, {**click, 'class_id': 5}, {'type': 'paint'}])
    # annotated frames train, then refine; a tracked frame is refined first, then trains
    assert s.calls == [
        'set_image',
        'warmup',
        'Click',
        'undo',
        'Click',
        'clear',
        ('step', 314),
        'refine',
        'next_frame',
        'refine',
        ('step', 30),
        'next_frame',
        'Click',
        ('step', 30 + 7),
        'refine',
    ]
    assert len(tr.errors) == 2 and 'class_id 5' in tr.errors[0] and 'paint' in tr.errors[1]
    s2 = FakeSession([])
    FrameDriver(s2, warmup=False).process(None, [click])  # type: ignore[arg-type]
    assert s2.calls == ['set_image', 'Click', ('step', 307), 'refine']


def _tiny_args(tmp: Path) -> list[str]:
    return [
        '--out',
        str(tmp / 'eval'),
        '--iterations-first',
        '20',
        '--iterations-per-frame',
        '4',
        '--warmup',
        '10',
        '--working-size',
        '48',
        '--width',
        '8',
        '--device',
        'cpu',
        '--threads',
        '1',
        '--quiet',
    ]


@pytest.mark.skipif(not (DATA / 'davis_dev' / 'images').is_dir(), reason='shared data absent')
def test_eval_bag_end_to_end_on_davis(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip('segdip_ros.core.session')
    bag = tmp_path / 'bag'
    assert (
        make_bag.main(
            [
                str(DATA / 'davis_dev'),
                '--sequence',
                'blackswan',
                '--out',
                str(bag),
                '--max-frames',
                '4',
                '--clicks',
                '3',
            ]
        )
        == 0
    )
    assert eval_bag.main([str(bag), *_tiny_args(tmp_path)]) == 0
    out = tmp_path / 'eval'
    res = json.loads((out / 'results.json').read_text())
    assert len(res['frames']) == 4 and res['frames'][0]['annotations'] == 3
    assert 0.0 <= res['j_mean'] <= 1.0 and 0.0 <= res['f_mean'] <= 1.0
    for name in ('results.md', 'j_over_frames.png', 'overlay.mp4', 'masks/00003.png'):
        assert (out / name).stat().st_size > 0, name
    masks = BagReader(
        out / 'mask_bag', image_topic='/segdip/mask', annotation_topic=None, gt_topic=None
    )
    images = BagReader(bag)
    assert [f.stamp_ns for f in masks.frames()] == [f.stamp_ns for f in images.frames()]
    print(
        f'\nblackswan, 4 frames, tiny config: J={res["j_mean"]:.3f} F={res["f_mean"]:.3f} '
        f'{res["seconds_per_frame"]:.2f} s/frame',
        file=__import__('sys').stderr,
    )


def test_eval_bag_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from test_bag_io import make_frames_dir

    make_frames_dir(tmp_path / 'data', n=2)
    bag = tmp_path / 'bag'
    make_bag.write_sequence_bag(bag, make_bag.load_sequence(tmp_path / 'data', 'toy'), [])
    cases = [
        ([str(bag), '--image-topic', '/nope'], 'image topic /nope not in bag'),
        ([str(tmp_path / 'missing')], 'does not exist'),
        ([], 'give either a bag or --dataset'),
    ]
    (f,) = bag.glob('*.db3')
    for argv, msg in cases:
        capsys.readouterr()
        assert eval_bag.main([*argv, *_tiny_args(tmp_path)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
    os.truncate(f, f.stat().st_size // 3)
    assert eval_bag.main([str(bag), *_tiny_args(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'bag' in err[0]


def test_dataset_report_means_over_sequences(tmp_path: Path) -> None:
    from segdip_ros.offline.tracking_eval import FrameScore, SequenceResult

    a = SequenceResult('a', [FrameScore(0, 0, 1.0, 1.0, 1.0), FrameScore(1, 1, 0.5, 0.25, 0.1)])
    b = SequenceResult(
        'b',
        [
            FrameScore(0, 0, 1.0, 1.0, 1.0),
            FrameScore(1, 1, 0.7, 0.75, 0.3),
            FrameScore(2, 2, 0.9, 0.75, 0.5),
        ],
    )
    summary = write_dataset_report([a.finish(), b.finish()], tmp_path)
    assert b.j_mean == pytest.approx(0.8) and b.seconds_per_frame == pytest.approx(0.4)
    assert summary['mean']['J'] == pytest.approx(0.65)
    assert summary['mean']['F'] == pytest.approx(0.5)
    assert '**0.650**' in (tmp_path / 'results.md').read_text()


def _moving_sequence_dir(root: Path, frames: int = 6) -> None:
    """A DAVIS-layout folder of a synthetic moving object, 64x48."""
    import cv2

    from segdip_ros.core.synthetic import moving_object_sequence

    (root / 'images' / 'toy').mkdir(parents=True)
    (root / 'masks' / 'toy').mkdir(parents=True)
    for k, s in enumerate(
        moving_object_sequence(frames=frames, height=48, width=64, seed=0, speed=2.0)
    ):
        cv2.imwrite(
            str(root / 'images' / 'toy' / f'{k:05d}.jpg'),
            cv2.cvtColor(s.rgb, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 95],
        )
        cv2.imwrite(
            str(root / 'masks' / 'toy' / f'{k:05d}.png'), (s.labels > 0).astype(np.uint8) * 255
        )


def test_every_method_in_one_run_from_the_first_frame_mask(tmp_path: Path) -> None:
    """The DAVIS protocol (the whole first-frame mask) with the engine and both peers in one
    run: one comparison table; the identity floor scores frame 0 perfectly and the moving
    frames worse than the flow-cut peer that follows the motion."""
    _moving_sequence_dir(tmp_path / 'data')
    out = tmp_path / 'eval'
    args = [
        '--dataset',
        str(tmp_path / 'data'),
        '--out',
        str(out),
        '--first-frame',
        'mask',
        '--methods',
        'segdip,segdip-nonet,flow-cut,identity',
        '--working-size',
        '64',
        '--threads',
        '1',
        '--no-video',
        '--quiet',
        '--engine',
        'width=8',
        '--engine',
        'warmup_iterations=20',
        '--engine',
        'iterations_first=20',
        '--engine',
        'iterations_per_frame=5',
    ]
    assert eval_bag.main(args) == 0
    table = json.loads((out / 'results.json').read_text())
    assert set(table) == {'segdip', 'segdip-nonet', 'flow-cut', 'identity'}
    for method in table:
        per = json.loads((out / method / 'toy' / 'results.json').read_text())
        assert per['frames'][0]['annotations'] == 1  # the mask
        assert per['frames'][0]['j'] > 0.95, method  # frame 0 is the given mask
    assert table['flow-cut']['mean_J'] > table['identity']['mean_J'] + 0.05
    assert '| identity |' in (out / 'results.md').read_text()
    assert eval_bag.main([*args[:-2], '--methods', 'segdip,magic']) == 1
