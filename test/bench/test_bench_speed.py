# SPDX-License-Identifier: Apache-2.0
"""segdip-bench speed: tiny grid, FLOP counting, device/AMP plan, fast step equivalence,
CLI, and one short latency smoke run through the real node (domain 61)."""
from __future__ import annotations

import json
import math
import os
import time

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'OFF')

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from segdip_ros.bench import cli  # noqa: E402
from segdip_ros.bench.speed import (SpeedSettings, make_session, markdown, run_speed,  # noqa: E402
                                    step_flops, time_interleaved)
from segdip_ros.core import ModelConfig, default_preset, paper_preset  # noqa: E402
from segdip_ros.core.fast import (REFERENCE_PLAN, FastStepper, Plan, choose_plan,  # noqa: E402
                                  conv2d_flops, model_conv_flops, pin_for)
from segdip_ros.core.model import SegDipNet  # noqa: E402

TINY = SpeedSettings(sizes=(32,), widths=(8,), iterations=2, warmup=1, rounds=2, peak_size=128,
                     candidates=('channels_last', 'inference_mode'), candidate_cells=((32, 8),))


def test_tiny_grid_gives_finite_rates_and_ratio():
    res = run_speed(TINY, log=lambda m: None)
    (cell,) = res.cells
    assert set(cell["its"]) == {"reference", "fullres", "optimised", "optimised_bf16"}
    for side in cell["its"]:
        assert math.isfinite(cell['its'][side]) and cell['its'][side] > 0
        assert cell['flops_per_it'][side] > 0
    its = cell['its']
    assert cell['ratio_opt_ref'] == pytest.approx(its['optimised'] / its['reference'])
    # the optimised side runs the network at half the working size, the reference at all of it
    assert (cell['net_h'], cell['net_w']) == (16, 16)
    assert (cell['work_h'], cell['work_w']) == (24, 32)
    assert cell['flops_per_it']['optimised'] < 0.5 * cell['flops_per_it']['fullres']
    assert 0 < res.machine['peak_flops'] < 1e15
    assert [c['name'] for c in res.candidates] == ['channels_last', 'inference_mode']
    assert all(math.isfinite(c['ratio']) and c['ratio'] > 0 for c in res.candidates)
    table = markdown(res)
    assert '| 32 (24x32) | 16x16 | 8 |' in table and 'channels_last' in table


def test_conv_flops_match_a_hand_count():
    # one 3 -> 4 conv, 3x3, output 8 x 10: 2 * 3 * 4 * 9 * 80
    assert conv2d_flops(3, 4, 3, 8, 10) == 17280
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)          # 16x16 in -> 8x8 out
    assert model_conv_flops(conv, torch.zeros(1, 3, 16, 16)) == 2 * 3 * 4 * 9 * 64
    # a 2-layer encoder, 1 decoder, width 4, 2-channel input, 8x8 working size:
    # enc0 2->4 at 8x8, enc1 4->4 at 4x4, dec 4->4 at 8x8, rgb 1x1 4->3, seg 1x1 4->2
    net = SegDipNet(ModelConfig(width=4, encoder_layers=2, decoder_layers=1), in_channels=2)
    hand = (2 * 2 * 4 * 9 * 64 + 2 * 4 * 4 * 9 * 16 + 2 * 4 * 4 * 9 * 64
            + 2 * 4 * 3 * 64 + 2 * 4 * 2 * 64)
    assert model_conv_flops(net, torch.zeros(1, 2, 8, 8)) == hand == 34816


def test_step_flops_is_three_forwards_and_grows_with_width():
    small = make_session(paper_preset, 32, 8, 'cpu', clicks=False)
    wide = make_session(paper_preset, 32, 16, 'cpu', clicks=False)
    assert step_flops(small) == 3 * model_conv_flops(small._model, small._code)
    assert step_flops(wide) > 3 * step_flops(small)    # 3x3 convs scale with width^2


def test_plan_for_a_cuda_device_without_a_gpu():
    cuda = torch.device('cuda', 0)                       # constructing it needs no GPU
    plan = choose_plan(cuda, bf16_supported=lambda: True)
    assert (plan.graph, plan.amp, plan.memory_format, plan.pin_memory) == \
        ('cuda-graph', torch.bfloat16, 'channels_last', True)
    assert choose_plan(cuda, bf16_supported=lambda: False).amp == torch.float16
    assert choose_plan(cuda, amp='off', bf16_supported=lambda: True).amp is None
    cpu = choose_plan(torch.device('cpu'))
    assert cpu.graph == 'eager' and not cpu.pin_memory and cpu.amp in (None, torch.bfloat16)
    assert choose_plan(torch.device('cpu'), amp='off').amp is None
    with pytest.raises(ValueError, match='fp16 needs a CUDA device'):
        choose_plan(torch.device('cpu'), amp='fp16')
    t = torch.zeros(3)
    assert pin_for(t, torch.device('cpu')) is t
    with pytest.raises(ValueError, match="graph must be one of"):
        Plan(graph='magic').validate()


def test_cuda_graph_plan_on_cpu_falls_back_to_eager_and_still_trains():
    a = make_session(default_preset, 32, 8, 'cpu')
    b = make_session(default_preset, 32, 8, 'cpu')
    stepper = FastStepper(Plan(graph='cuda-graph', memory_format='contiguous'))
    r = stepper.step(b, 3)
    a.step(3)
    assert stepper.plan.graph == 'eager' and 'cuda-graph asked for on cpu' in stepper.fallbacks[0]
    assert r.iterations == 3 and math.isfinite(r.loss) and b.iteration == a.iteration
    assert torch.allclose(a.working_probabilities(), b.working_probabilities(), atol=1e-5)


def test_fast_step_matches_the_session_step():
    for preset in (default_preset, paper_preset):
        a = make_session(preset, 32, 8, 'cpu')
        b = make_session(preset, 32, 8, 'cpu')
        c = make_session(preset, 32, 8, 'cpu')
        ra = a.step(4)
        rb = FastStepper(REFERENCE_PLAN).step(b, 4)
        FastStepper(Plan(memory_format='channels_last', foreach=True)).step(c, 4)
        assert rb.loss == ra.loss and isinstance(rb.loss, float)
        pa = a.working_probabilities()
        assert torch.equal(pa, b.working_probabilities())
        assert torch.allclose(pa, c.working_probabilities(), atol=1e-4)
    # a new scene builds a new model: the stepper converts it again
    stepper = FastStepper(Plan(memory_format='channels_last'))
    stepper.step(c, 1)
    c.set_image(c.image)
    stepper.step(c, 1)
    assert c._model.encoder[1][0].weight.is_contiguous(memory_format=torch.channels_last)


def test_interleaved_timing_orders_sides():
    rates = time_interleaved({'fast': lambda n: time.sleep(0.002 * n),
                              'slow': lambda n: time.sleep(0.006 * n)},
                             iterations=6, rounds=3, warmup=1, device=torch.device('cpu'))
    assert rates['fast'] > 1.5 * rates['slow'] > 0


def test_cli_speed_writes_json_and_rejects_unknown_candidates(tmp_path, capsys):
    args = ['speed', '--sizes', '32', '--widths', '8', '--iterations', '2', '--rounds', '1',
            '--peak-size', '128', '--out', str(tmp_path)]
    assert cli.main(args) == 0
    data = json.loads((tmp_path / 'speed.json').read_text())
    assert data['cells'][0]['its']['optimised'] > 0
    assert '| 32 (24x32) | 16x16 | 8 |' in (tmp_path / 'speed.md').read_text()
    assert cli.main(['speed', '--candidates', 'warp_drive']) == 2
    assert 'unknown candidate' in capsys.readouterr().err


def test_latency_smoke_through_the_node():
    from segdip_ros.bench.latency import TINY_PARAMS, LatencySettings, run_latency
    with pytest.raises(ValueError, match='60..69'):
        run_latency(LatencySettings(domain_id=12))
    res = run_latency(LatencySettings(clicks=3, domain_id=61, spacing=0.2, timeout=10.0,
                                      ready_timeout=30.0, params=dict(TINY_PARAMS)),
                      log=lambda m: None)
    assert res.clicks_sent == 3 and len(res.latencies) + res.missed == 3
    assert len(res.latencies) >= 2
    assert all(0 < t < 10.0 for t in res.latencies)
    assert res.percentile(50) <= res.percentile(95)
