# SPDX-License-Identifier: Apache-2.0
"""segdip-bench speed: tiny grid, FLOP counting, interleaved timing, CLI, and one short
latency smoke run through the real node (domain 61)."""

from __future__ import annotations

import json
import math
import os
import time

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'OFF')

import pytest
import torch
from torch import nn

from segdip_ros.bench import cli
from segdip_ros.bench.speed import (
    SpeedSettings,
    make_session,
    markdown,
    model_conv_flops,
    run_speed,
    step_flops,
    time_interleaved,
)
from segdip_ros.core import paper_preset
from segdip_ros.core.model import SegDipNet

TINY = SpeedSettings(sizes=(32,), widths=(8,), iterations=2, warmup=1, rounds=2, peak_size=128)


def test_tiny_grid_gives_finite_rates_and_ratio():
    res = run_speed(TINY, log=lambda m: None)
    (cell,) = res.cells
    assert set(cell['its']) == {'reference', 'fullres', 'optimised'}
    for side in cell['its']:
        assert math.isfinite(cell['its'][side]) and cell['its'][side] > 0
        assert cell['flops_per_it'][side] > 0
    its = cell['its']
    assert cell['ratio_opt_ref'] == pytest.approx(its['optimised'] / its['reference'])
    # the optimised side runs the network at half the working size, the reference at all of it
    assert (cell['net_h'], cell['net_w']) == (16, 16)
    assert (cell['work_h'], cell['work_w']) == (24, 32)
    assert cell['flops_per_it']['optimised'] < 0.5 * cell['flops_per_it']['fullres']
    assert 0 < res.machine['peak_flops'] < 1e15
    assert '| 32 (24x32) | 16x16 | 8 |' in markdown(res)


def test_conv_flops_match_a_hand_count():
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)  # 16x16 in -> 8x8 out
    assert model_conv_flops(conv, torch.zeros(1, 3, 16, 16)) == 2 * 3 * 4 * 9 * 64
    # the paper's 4 + 3 layers, width 4, xy input (2 channels), 16x16: encoder 2->4 at 16x16,
    # then 4->4 at 8x8, 4x4, 2x2; decoder 4->4 at 4x4, 8x8, 16x16; 1x1 heads 4->3 and 4->2
    net = SegDipNet(paper_preset(2, width=4))
    conv3 = 2 * 4 * 4 * 9
    hand = (
        2 * 2 * 4 * 9 * 256
        + conv3 * (64 + 16 + 4)
        + conv3 * (16 + 64 + 256)
        + 2 * 4 * 3 * 256
        + 2 * 4 * 2 * 256
    )
    assert model_conv_flops(net, torch.zeros(1, 2, 16, 16)) == hand == 168064


def test_step_flops_is_three_forwards_and_grows_with_width():
    small = make_session(paper_preset, 32, 8, 'cpu', clicks=False)
    wide = make_session(paper_preset, 32, 16, 'cpu', clicks=False)
    assert step_flops(small) == 3 * model_conv_flops(small._model, small._frame.code)
    assert step_flops(wide) > 3 * step_flops(small)  # 3x3 convs scale with width^2


def test_interleaved_timing_orders_sides():
    rates = time_interleaved(
        {'fast': lambda n: time.sleep(0.002 * n), 'slow': lambda n: time.sleep(0.006 * n)},
        iterations=6,
        rounds=3,
        warmup=1,
        device=torch.device('cpu'),
    )
    assert rates['fast'] > 1.5 * rates['slow'] > 0


def test_cli_speed_writes_json_and_rejects_bad_sizes(tmp_path, capsys):
    args = [
        'speed',
        '--sizes',
        '32',
        '--widths',
        '8',
        '--iterations',
        '2',
        '--rounds',
        '1',
        '--peak-size',
        '128',
        '--out',
        str(tmp_path),
    ]
    assert cli.main(args) == 0
    data = json.loads((tmp_path / 'speed.json').read_text())
    assert data['cells'][0]['its']['optimised'] > 0
    assert '| 32 (24x32) | 16x16 | 8 |' in (tmp_path / 'speed.md').read_text()
    assert cli.main(['speed', '--sizes', '8']) == 2
    assert 'sizes >= 16' in capsys.readouterr().err


def test_latency_smoke_through_the_node():
    from segdip_ros.bench.latency import TINY_PARAMS, LatencySettings, run_latency

    with pytest.raises(ValueError, match='60..69'):
        run_latency(LatencySettings(domain_id=12))
    res = run_latency(
        LatencySettings(
            clicks=3,
            domain_id=61,
            spacing=0.2,
            timeout=10.0,
            ready_timeout=30.0,
            params=dict(TINY_PARAMS),
        ),
        log=lambda m: None,
    )
    assert res.clicks_sent == 3 and len(res.latencies) + res.missed == 3
    assert len(res.latencies) >= 2
    assert all(0 < t < 10.0 for t in res.latencies)
