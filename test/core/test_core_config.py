# SPDX-License-Identifier: Apache-2.0
"""Configuration: validation, presets and the dict form stored in checkpoints."""

from dataclasses import fields, replace

import pytest
import torch

from segdip_ros.core import (
    PRESETS,
    ConfigError,
    SessionConfig,
    config_from_dict,
    config_to_dict,
    default_preset,
    paper_preset,
    resolve_device,
    still_preset,
)
from segdip_ros.core.device import autocast_dtype


def test_presets_validate_and_round_trip():
    for cfg in (default_preset(3), paper_preset(2), still_preset(2)):
        cfg.validate()
        assert config_from_dict(config_to_dict(cfg)) == cfg
    assert paper_preset().width == 128 and paper_preset().tcl_lambda == 0.001
    # 'still' is the default with the paper's xy-only code and no skips, nothing else
    assert still_preset().input_code == 'meshgrid'
    assert (
        replace(still_preset(), input_code='meshgrid+rgb', skip_connections=True)
        == default_preset()
    )
    assert set(PRESETS) == {'default', 'still', 'paper'}


def test_every_field_is_documented_and_the_public_config_is_small():
    import segdip_ros.core.config as config_module

    source = open(config_module.__file__).read()
    names = [f.name for f in fields(SessionConfig)]
    assert len(names) <= 17
    for name in names:  # each field is followed by its docstring
        assert f'    {name}: ' in source and '"""' in source.split(f'    {name}: ', 1)[1][:200]


@pytest.mark.parametrize(
    'change, match',
    [
        (dict(working_size=4), 'working_size'),
        (dict(learning_rate=0), 'learning_rate'),
        (dict(tcl_lambda=-0.1), 'tcl_lambda'),
        (dict(tcl_lambda=2.0), 'tcl_lambda'),
        (dict(network_scale=0.0), 'network_scale'),
        (dict(input_code='noise'), 'input_code'),
        (dict(refine='crf'), 'refine'),
        (dict(click_radius=-1), 'click_radius'),
        (dict(width=0), 'width'),
        (dict(iterations_per_click=-1), 'iterations_per_click'),
        (dict(warmup_iterations=1.5), 'warmup_iterations'),
        (dict(num_classes=1), 'num_classes'),
        (dict(num_classes=255), 'num_classes'),
    ],
)
def test_bad_session_values_raise(change, match):
    with pytest.raises(ConfigError, match=match):
        replace(default_preset(), **change).validate()
    with pytest.raises(ConfigError, match=match):
        default_preset(**change)  # a preset with a bad override refuses it too


def test_bad_dict_values_raise():
    with pytest.raises(ConfigError, match='colour'):
        config_from_dict({'colour': 'red'})
    with pytest.raises(ConfigError, match='unknown configuration field'):
        default_preset(refine_click_edge_cost=0.3)
    with pytest.raises(ConfigError, match='must be a dict'):
        config_from_dict(['width', 3])


def test_device_selection_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert resolve_device('auto').type == 'cpu'
    with pytest.raises(ConfigError, match='CUDA is not available'):
        resolve_device('cuda:0')
    with pytest.raises(ConfigError, match='unknown device'):
        resolve_device('gpu please')
    assert autocast_dtype(torch.device('cpu')) is None


def test_device_selection_with_cuda_present(monkeypatch):
    """The CUDA path up to the point of device use: auto picks cuda:0, autocast bf16/fp16."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    assert resolve_device('auto') == torch.device('cuda:0')
    with pytest.raises(ConfigError, match='only 1 CUDA'):
        resolve_device('cuda:3')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: False)
    assert autocast_dtype(torch.device('cuda:0')) is torch.float16
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: True)
    assert autocast_dtype(torch.device('cuda:0')) is torch.bfloat16


def test_the_rgb_input_code_carries_no_position():
    """input_code 'rgb': the network sees the colours alone, so a shifted image gives a
    shifted prediction (away from the borders), unlike with the meshgrid."""
    import torch

    from segdip_ros.core.model import SegDipNet, input_channels, make_input_code

    torch.manual_seed(0)
    img = torch.rand(1, 3, 64, 160)
    shifted = torch.roll(img, shifts=16, dims=3)
    for code, equivariant in (('rgb', True), ('meshgrid+rgb', False)):
        cfg = replace(default_preset(), input_code=code, width=8)
        z, zs = make_input_code(cfg, img), make_input_code(cfg, shifted)
        assert z.shape[1] == input_channels(cfg)
        net = SegDipNet(cfg).eval()
        with torch.no_grad():
            a = net(torch.cat([z, zs]))[1]
        diff = (torch.roll(a[:1], shifts=16, dims=3) - a[1:])[..., 24:40, 56:104].abs().max()
        assert (float(diff) < 1e-4) == equivariant, (code, float(diff))
