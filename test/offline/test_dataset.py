# SPDX-License-Identifier: Apache-2.0
"""DatasetWriter / load_dataset: layout, read-back checks, replacement, crash safety."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from segdip_ros.core.synthetic import three_class_scene, two_class_scene
from segdip_ros.offline import dataset as dsmod
from segdip_ros.offline.dataset import DatasetError, DatasetWriter, load_dataset

NAMES = ['background', 'blob', 'box']
COLORS = [(60, 100, 255), (255, 60, 60), (50, 200, 50)]


def _mask(scene, unlabelled_rows: int = 10) -> np.ndarray:
    m = scene.labels.copy()
    m[:unlabelled_rows] = 255
    return m


def test_write_and_load_back(tmp_path):
    w = DatasetWriter(tmp_path / 'ds', NAMES, COLORS)
    s3, s2 = three_class_scene(seed=1), two_class_scene(seed=2)
    clicks = [{'type': 'click', 'x': 40.0, 'y': 50.0, 'class_id': 1}]
    r1 = w.add(s3.rgb, _mask(s3), clicks, 12_000_000_005, 'cam/left', overlay=s3.rgb)
    r2 = w.add(s2.rgb, s2.labels, [], 13_000_000_000, '', source='keyframe')
    assert r1['name'] == '12_000000005_cam_left' and r2['name'] == '13_000000000'
    root = tmp_path / 'ds'
    assert sorted(p.name for p in (root / 'images').iterdir()) == [
        '12_000000005_cam_left.png',
        '13_000000000.png',
    ]
    assert not list(root.rglob('*.tmp'))
    classes = json.loads((root / 'classes.json').read_text())
    assert [c['name'] for c in classes['classes']] == NAMES
    assert classes['classes'][2]['color_hex'] == '#32c832' and classes['unlabelled_id'] == 255

    ds = load_dataset(root)
    assert ds.class_names == NAMES and [s.name for s in ds.samples] == [r1['name'], r2['name']]
    a, b = ds.samples
    assert np.array_equal(a.read_image(), s3.rgb) and np.array_equal(a.read_mask(), _mask(s3))
    assert a.stamp_ns == 12_000_000_005 and a.frame_id == 'cam/left'
    assert (a.width, a.height) == (160, 120) and list(a.annotations) == clicks
    assert b.source == 'keyframe' and np.array_equal(b.read_mask(), s2.labels)
    rec = json.loads((root / 'manifest.jsonl').read_text().splitlines()[0])
    assert rec['stamp'] == {'sec': 12, 'nanosec': 5} and rec['overlay'].startswith('overlays/')

    # a new writer on the same folder appends; the same frame again replaces its sample
    w2 = DatasetWriter(root, NAMES, COLORS)
    assert len(w2) == 2
    more = clicks + [{'type': 'undo'}]
    r3 = w2.add(s3.rgb, s3.labels, more, 12_000_000_005, 'cam/left')
    assert r3['name'] == r1['name'] and len(w2) == 2
    assert list(load_dataset(root).samples[0].annotations) == more
    # frames without a stamp never replace each other
    assert w2.add(s2.rgb, s2.labels, [], 0, '')['name'] == '0_000000000'
    assert w2.add(s2.rgb, s2.labels, [], 0, '')['name'] == '0_000000000_1'
    assert len(load_dataset(root).samples) == 4


def test_bad_samples_and_class_lists_are_refused(tmp_path):
    w = DatasetWriter(tmp_path, NAMES, COLORS)
    s = three_class_scene()
    with pytest.raises(DatasetError, match=r'ids outside 0..2 and 255: \[7\]'):
        w.add(s.rgb, np.full((120, 160), 7, np.uint8), [], 1, '')
    with pytest.raises(DatasetError, match='does not match image'):
        w.add(s.rgb, s.labels[:10], [], 1, '')
    with pytest.raises(DatasetError, match=r'image must be \(H, W, 3\) uint8'):
        w.add(s.rgb.astype(np.float32), s.labels, [], 1, '')
    assert len(w) == 0 and not (tmp_path / 'manifest.jsonl').exists()
    with pytest.raises(DatasetError, match='holds classes .* use another folder'):
        DatasetWriter(tmp_path, ['a', 'b'], COLORS[:2])
    with pytest.raises(DatasetError, match='not a dataset'):
        load_dataset(tmp_path / 'nothing')


def test_load_checks_catch_damage(tmp_path):
    w = DatasetWriter(tmp_path, NAMES, COLORS)
    s = three_class_scene()
    rec = w.add(s.rgb, s.labels, [], 5_000_000_000, 'cam')
    mask_path = tmp_path / rec['mask']
    cv2.imwrite(str(mask_path), np.full((120, 160), 9, np.uint8))
    with pytest.raises(DatasetError, match=r'mask ids \[9\] outside 0..2'):
        load_dataset(tmp_path)
    assert len(load_dataset(tmp_path, check=False).samples) == 1
    cv2.imwrite(str(mask_path), np.zeros((10, 10), np.uint8))
    with pytest.raises(DatasetError, match='do not match the manifest size'):
        load_dataset(tmp_path)
    os.remove(mask_path)
    with pytest.raises(DatasetError, match='cannot read mask'):
        load_dataset(tmp_path)
    (tmp_path / 'manifest.jsonl').write_text(json.dumps(dict(rec, mask='../../etc/x.png')))
    with pytest.raises(DatasetError, match='must be relative'):
        load_dataset(tmp_path)


def test_a_crash_while_writing_leaves_no_half_sample(tmp_path, monkeypatch):
    """The manifest is replaced last: a failure before it leaves the dataset as it was."""
    w = DatasetWriter(tmp_path, NAMES, COLORS)
    s = three_class_scene()
    w.add(s.rgb, s.labels, [], 1_000_000_000, 'cam')
    before = (tmp_path / 'manifest.jsonl').read_bytes()
    real = os.replace

    def failing(src, dst):
        if str(dst).endswith('manifest.jsonl'):
            raise OSError('disk full (simulated)')
        real(src, dst)

    monkeypatch.setattr(dsmod.os, 'replace', failing)
    with pytest.raises(OSError, match='disk full'):
        w.add(s.rgb, s.labels, [], 2_000_000_000, 'cam')
    monkeypatch.setattr(dsmod.os, 'replace', real)
    assert (tmp_path / 'manifest.jsonl').read_bytes() == before
    assert not list(tmp_path.rglob('*.tmp'))  # the temp file was removed
    ds = load_dataset(tmp_path)  # the orphan image is not listed
    assert [x.stamp_ns for x in ds.samples] == [1_000_000_000]
    # the writer still works, and a new writer picks up only complete samples
    assert (
        DatasetWriter(tmp_path, NAMES, COLORS).add(s.rgb, s.labels, [], 2_000_000_000, 'cam')[
            'name'
        ]
        == '2_000000000_cam'
    )
    assert len(load_dataset(tmp_path).samples) == 2
