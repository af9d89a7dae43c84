# SPDX-License-Identifier: Apache-2.0
"""segdip_export: COCO JSON with RLE masks that pycocotools reads back to the saved masks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segdip_ros.core.synthetic import three_class_scene
from segdip_ros.offline.dataset import DatasetWriter
from segdip_ros.tools.export import regions, rle_counts, rle_encode, run

mask_api = pytest.importorskip('pycocotools.mask', reason='pycocotools is not installed')
coco_api = pytest.importorskip('pycocotools.coco', reason='pycocotools is not installed')


def test_rle_matches_pycocotools():
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        m = rng.random((h, w)) < rng.random()
        ref = mask_api.encode(np.asfortranarray(m.astype(np.uint8)))
        mine = rle_encode(m)
        assert mine['counts'] == ref['counts'].decode() and mine['size'] == [h, w]
        assert np.array_equal(mask_api.decode({'size': [h, w], 'counts': mine['counts']}), m)
    assert rle_counts(np.array([[1, 1], [0, 1]], bool)) == [0, 1, 1, 2]  # column-major
    big = np.zeros((300, 400), bool)
    big[10:290, 5:395] = True  # long runs: multi-character counts
    assert (
        rle_encode(big)['counts']
        == mask_api.encode(np.asfortranarray(big.astype(np.uint8)))['counts'].decode()
    )


def test_regions_are_connected_components():
    m = np.full((20, 20), 255, np.uint8)
    m[1:4, 1:4] = 1
    m[10:15, 10:12] = 1
    m[5, 5] = 1
    m[4, 4] = 1  # touches (5, 5) diagonally: one 8-connected region, and (3, 3) too
    found = regions(m, 1)
    assert sorted(a for _, _, a in found) == [10, 11]
    assert [10.0, 10.0, 2.0, 5.0] in [b for _, b, _ in found]
    assert len(regions(m, 1, min_area=11)) == 1 and regions(m, 0) == []


def test_export_loads_in_pycocotools_and_decodes_to_the_masks(tmp_path):
    names = ['background', 'blob', 'box']
    w = DatasetWriter(tmp_path / 'ds', names, [(0, 0, 255), (255, 0, 0), (0, 255, 0)])
    masks = []
    for seed in range(3):
        s = three_class_scene(seed=seed)
        m = s.labels.copy()
        m[:, :20] = 255  # unlabelled columns
        m[100:110, 140:150] = 2  # a second region of class 2
        masks.append(m)
        w.add(s.rgb, m, [], (seed + 1) * 1_000_000_000, 'cam')
    assert run([str(tmp_path / 'ds')]) == 0
    out = tmp_path / 'ds' / 'coco.json'
    coco = coco_api.COCO(str(out))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == ['blob', 'box']
    assert sorted(coco.getCatIds()) == [1, 2]  # category id = class id
    for img in coco.loadImgs(coco.getImgIds()):
        m = masks[img['id'] - 1]
        assert img['file_name'].startswith('images/')
        assert (tmp_path / 'ds' / img['file_name']).is_file()
        assert (img['width'], img['height']) == (160, 120)
        per_class = {1: 0, 2: 0}
        for cid in (1, 2):
            union = np.zeros(m.shape, bool)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img['id']], catIds=[cid])):
                region = coco.annToMask(ann).astype(bool)
                assert not (union & region).any()  # regions do not overlap
                assert ann['area'] == int(region.sum()) and ann['iscrowd'] == 0
                x, y, bw, bh = ann['bbox']
                ys, xs = np.nonzero(region)
                assert (x, y, bw, bh) == (xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1)
                union |= region
                per_class[cid] += 1
            assert np.array_equal(union, m == cid)
        assert per_class[2] >= 2
    # background on request, unlabelled never
    assert (
        run([str(tmp_path / 'ds'), '-o', str(tmp_path / 'bg.json'), '--include-background']) == 0
    )
    data = json.loads((tmp_path / 'bg.json').read_text())
    assert [c['id'] for c in data['categories']] == [0, 1, 2]
    coco = coco_api.COCO(str(tmp_path / 'bg.json'))
    covered = np.zeros((120, 160), bool)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[1])):
        covered |= coco.annToMask(ann).astype(bool)
    assert np.array_equal(covered, masks[0] != 255)


def test_export_refuses_a_broken_dataset(tmp_path, capsys):
    assert run([str(tmp_path)]) == 1
    assert 'not a dataset' in capsys.readouterr().err
