# SPDX-License-Identifier: Apache-2.0
"""End-to-end runs of segdip-bench on the shared dev data (skipped when it is absent)."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from segdip_ros.bench.cli import main


def data_root() -> Path:
    env = os.environ.get('SEGDIP_DATA')
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / 'shared' / 'data'


def dataset(name: str) -> Path:
    path = data_root() / name
    if not (path / 'images').is_dir():
        pytest.skip(f'dev data {path} is absent (set SEGDIP_DATA or place ../shared/data)')
    return path


def test_binary_run_writes_every_output(tmp_path, capsys):
    coco = dataset('coco_dev')
    out = tmp_path / 'out'
    methods = ['segdip', 'grabcut', 'grabcut-nearest', 'randomwalker']
    code = main(
        [
            'binary',
            '--dataset',
            str(coco),
            '--methods',
            ','.join(methods),
            '--limit',
            '3',
            '--max-clicks',
            '3',
            '--working-size',
            '64',
            '--iterations-per-click',
            '3',
            '--warmup-iterations',
            '2',
            '--out',
            str(out),
            '--threads',
            '1',
        ]
    )
    assert code == 0
    cap = capsys.readouterr()
    assert 'NoC@90' in cap.err  # progress bar with the running NoC
    assert '| grabcut |' in cap.out
    for f in ('results.json', 'results.md', 'iou_vs_clicks.png'):
        assert (out / f).stat().st_size > 0
    res = json.loads((out / 'results.json').read_text())
    assert res['schema'] == 'segdip-bench/1' and res['task'] == 'binary'
    assert list(res['methods']) == methods
    names = sorted(p.stem for p in (coco / 'images').iterdir())[:3]
    assert res['settings']['names'] == names
    for name in methods:
        m = res['methods'][name]
        assert 1 <= m['summary']['noc@90'] <= 3
        assert len(m['mean_curve']) == 3
        for img in m['runs'][0]['images']:
            assert len(img['iou']) == 3 and all(0 <= v <= 1 for v in img['iou'])
            assert img['clicks'][0][2] == 1  # the first click is always positive
            mask = cv2.imread(str(out / img['mask']), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (img['height'], img['width'])
            assert set(np.unique(mask)) <= {0, 255}
    gt = cv2.imread(str(coco / 'masks' / f'{names[0]}.png'), cv2.IMREAD_GRAYSCALE)
    first = res['methods']['grabcut']['runs'][0]['images'][0]['clicks'][0]
    assert gt[first[1], first[0]] == 255  # clicked inside the object


def test_multiclass_run_on_camvid(tmp_path):
    camvid = dataset('camvid_dev')
    out = tmp_path / 'mc'
    code = main(
        [
            'multiclass',
            '--dataset',
            str(camvid),
            '--classes',
            str(camvid / 'classes.json'),
            '--ignore',
            '11',
            '--methods',
            'randomwalker,nearest',
            '--limit',
            '2',
            '--max-clicks',
            '4',
            '--out',
            str(out),
            '--no-progress',
        ]
    )
    assert code == 0
    res = json.loads((out / 'results.json').read_text())
    assert res['score'] == 'miou' and res['thresholds'] == [0.8, 0.85]
    assert '11' not in res['settings']['classes']
    rw = res['methods']['randomwalker']
    assert {'noc@80', 'noc@85', 'miou@1', 'miou@3'} <= set(rw['summary'])
    img = rw['runs'][0]['images'][0]
    gt = cv2.imread(str(camvid / 'masks' / f'{img["name"]}.png'), cv2.IMREAD_UNCHANGED)
    for x, y, label in img['clicks']:
        assert gt[y, x] == label != 11  # labelled with the true class
    mask = cv2.imread(str(out / img['mask']), cv2.IMREAD_UNCHANGED)
    assert mask.max() <= 10
    assert img['iou'][-1] > img['iou'][0]  # more clicks, more classes found
