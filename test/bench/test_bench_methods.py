# SPDX-License-Identifier: Apache-2.0
"""Peers on a synthetic two-colour scene, working-size helpers, dataset conversion, CLI errors."""

import numpy as np
import pytest

from segdip_ros.bench.base import MethodSettings, to_original, to_working_xy, working_shape
from segdip_ros.bench.cli import main
from segdip_ros.bench.datasets import (
    BINARY_IGNORE,
    DatasetError,
    Sample,
    binary_labels,
    list_samples,
)
from segdip_ros.bench.methods import METHODS, make_method, register
from segdip_ros.bench.peers import nearest_click_map
from segdip_ros.bench.runner import run_image
from segdip_ros.core.metrics import iou


def scene():
    """A noisy bright disk on a noisy dark background, 120x200, and its mask."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:120, :200]
    mask = (yy - 60) ** 2 + (xx - 90) ** 2 < 35**2
    img = np.where(mask[..., None], [200, 60, 40], [40, 90, 160]).astype(np.float64)
    img += rng.normal(0, 12, img.shape)
    return img.clip(0, 255).astype(np.uint8), mask


@pytest.mark.parametrize(
    'name', ['grabcut', 'grabcut-nearest', 'randomwalker', 'nearest-graphcut']
)
def test_peer_segments_a_clear_object_within_five_simulated_clicks(name):
    img, mask = scene()
    sample = Sample('scene', img, mask.astype(np.uint8), BINARY_IGNORE)
    rec = run_image(make_method(name, MethodSettings(working_size=100)), sample, 'binary', 5)
    assert rec.iou[-1] > 0.9
    assert rec.clicks[0] == [90, 60, 1]  # the disk centre


def test_nearest_click_map_alone_does_not_find_the_object():
    img, mask = scene()
    sample = Sample('scene', img, mask.astype(np.uint8), BINARY_IGNORE)
    rec = run_image(make_method('nearest', MethodSettings(working_size=100)), sample, 'binary', 5)
    assert max(rec.iou) < 0.9  # the peers above use the image


def test_peer_output_is_at_original_size():
    img, mask = scene()
    m = make_method('grabcut-nearest', MethodSettings(working_size=100))
    m.reset(img, seed=0)
    m.add_click(90, 60, 1)
    m.add_click(185, 10, 0)
    pred = m.predict()
    assert pred.shape == mask.shape and pred.dtype == np.uint8
    assert iou(pred == 1, mask) > 0.9


def test_nearest_map_and_border_prior_for_positive_only_clicks():
    img, mask = scene()
    m = make_method('nearest', MethodSettings(working_size=100))
    m.reset(img, seed=0)
    m.add_click(90, 60, 1)
    pred = m.predict()
    assert pred[60, 90] == 1 and pred[0, 0] == 0  # the border stands in for background
    seeds = np.full((3, 5), -1)
    seeds[1, 0], seeds[1, 4] = 0, 1
    near = nearest_click_map(seeds)
    assert near[1, :2].tolist() == [0, 0] and near[1, 3:].tolist() == [1, 1]
    assert (near >= 0).all()


def test_grabcut_refuses_multiclass():
    with pytest.raises(ValueError, match='binary'):
        make_method('grabcut', MethodSettings(num_classes=5))


def test_peer_requires_reset_first():
    with pytest.raises(RuntimeError, match='reset'):
        make_method('randomwalker', MethodSettings()).predict()


def test_working_shape_matches_engine_rule():
    assert working_shape(480, 640, 160) == (120, 160)
    assert working_shape(427, 640, 160) == (104, 160)  # 106.75 snapped to a multiple of 8
    assert working_shape(50, 60, 160) == (48, 64)  # never upscaled beyond snapping
    assert to_working_xy(639, 479, (480, 640), (120, 160)) == (159, 119)
    assert to_working_xy(0, 0, (480, 640), (120, 160)) == (0, 0)
    up = to_original(np.eye(4, dtype=np.uint8), (8, 8))
    assert up.shape == (8, 8) and up[7, 7] == 1 and up[0, 7] == 0
    block = np.zeros((8, 8), np.uint8)
    block[2:6, 2:6] = 3
    big = to_original(block, (32, 32))  # labels kept, square stays a square
    assert set(np.unique(big)) == {0, 3} and (big == 3).sum() == pytest.approx(256, abs=40)


def test_registry_accepts_new_methods_in_one_line():
    register('test-nearest-copy', METHODS['nearest'])
    assert make_method('test-nearest-copy', MethodSettings()).multiclass
    del METHODS['test-nearest-copy']
    with pytest.raises(KeyError, match='unknown method'):
        make_method('nope', MethodSettings())


def test_binary_labels_ignore_band_and_01_masks():
    out = binary_labels(np.array([[0, 128, 255]], np.uint8))
    assert out.tolist() == [[0, 255, 1]]
    assert binary_labels(np.array([[0, 1]], np.uint8)).tolist() == [[0, 1]]


def test_list_samples_pairs_by_name_and_limits(tmp_path):
    import cv2

    (tmp_path / 'images').mkdir()
    (tmp_path / 'masks').mkdir()
    for name in ('b', 'a', 'c'):
        cv2.imwrite(str(tmp_path / 'images' / f'{name}.png'), np.zeros((4, 4, 3), np.uint8))
        if name != 'c':
            cv2.imwrite(str(tmp_path / 'masks' / f'{name}.png'), np.zeros((4, 4), np.uint8))
    assert [p.name for p in list_samples(tmp_path)] == ['a', 'b']  # c has no mask
    assert [p.name for p in list_samples(tmp_path, limit=1)] == ['a']
    with pytest.raises(DatasetError, match='images/ and masks/'):
        list_samples(tmp_path / 'missing')


def test_cli_exit_codes(tmp_path, capsys):
    assert main(['binary', '--dataset', str(tmp_path), '--methods', 'nope']) == 2
    assert 'unknown method' in capsys.readouterr().err
    assert (
        main(
            [
                'binary',
                '--dataset',
                str(tmp_path / 'none'),
                '--methods',
                'grabcut',
                '--out',
                str(tmp_path / 'o'),
            ]
        )
        == 1
    )
    assert 'images/ and masks/' in capsys.readouterr().err
    assert main(['list']) == 0
    assert 'segdip-notcl' in capsys.readouterr().out


def test_segdip_method_imposes_run_settings_on_the_preset():
    m = make_method(
        'segdip-notcl',
        MethodSettings(
            working_size=96, click_radius=0, iterations_per_click=7, warmup_iterations=3
        ),
    )
    cfg = m.config(seed=4)
    assert (cfg.working_size, cfg.click_radius, cfg.seed) == (96, 0, 4)
    assert (cfg.iterations_per_click, cfg.warmup_iterations) == (7, 3)
    assert cfg.tcl_lambda == 0
    paper = make_method('segdip-paper', MethodSettings()).config(seed=0)
    assert paper.width == 128 and paper.tcl_lambda == 0.001


@pytest.fixture
def one_torch_thread():
    """On a shared, oversubscribed CPU, 2 intra-op threads made 5 tiny iterations take 13 s
    instead of 0.1 s; one thread keeps this test fast. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_segdip_trains_for_a_wall_clock_budget_per_click(one_torch_thread):
    import time

    img, mask = scene()
    m = make_method(
        'segdip',
        MethodSettings(working_size=32, warmup_iterations=1, seconds_per_click=0.3, device='cpu'),
    )
    m.reset(img, seed=0)
    before = m._session.iteration
    t0 = time.perf_counter()
    m.add_click(90, 60, 1)
    assert time.perf_counter() - t0 >= 0.3
    done = m._session.iteration - before
    assert done >= 5 and done % 5 == 0  # whole chunks of TIMED_CHUNK
    pred = m.predict()
    assert pred.shape == mask.shape and set(np.unique(pred)) <= {0, 1}


@pytest.mark.parametrize('num_classes', [2, 3, 11])
def test_the_ablation_peer_uses_the_engines_click_prior(num_classes):
    """nearest-graphcut is the engine's cut with the network left out: its click prior (odds,
    straight or along the image) must be the default preset's for that number of classes."""
    from segdip_ros.core import CutSettings

    peer = make_method('nearest-graphcut', MethodSettings(num_classes=num_classes))
    engine = CutSettings()
    assert (peer.confidence, peer.edge_cost) == (engine.click_confidence, engine.click_edge_cost)
    assert peer.edge_cost > 0
