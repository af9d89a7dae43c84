# SPDX-License-Identifier: Apache-2.0
"""Configuration: validation, presets and the dict form stored in checkpoints."""
from dataclasses import replace

import pytest
import torch

from segdip_ros.core import (ConfigError, config_from_dict, config_to_dict, default_preset,
                             paper_preset, resolve_amp_dtype, resolve_device)
from segdip_ros.core.config import still_preset


def test_presets_validate_and_round_trip():
    for cfg in (default_preset(3), paper_preset(2), still_preset(2)):
        cfg.validate()
        assert config_from_dict(config_to_dict(cfg)) == cfg
    assert paper_preset().model.width == 128 and paper_preset().loss.tcl_lambda == 0.001
    # 'still' is the default with the paper's xy-only code, nothing else
    assert still_preset().model.input_code == 'meshgrid'
    assert replace(still_preset(), model=default_preset().model) == default_preset()


@pytest.mark.parametrize('change, match', [
    (dict(working_size=4), 'working_size'),
    (dict(learning_rate=0), 'learning_rate'),
    (dict(amp='fp8'), 'amp'),
    (dict(refine_click_edge_cost=-0.1), 'refine_click_edge_cost'),
])
def test_bad_session_values_raise(change, match):
    with pytest.raises(ConfigError, match=match):
        replace(default_preset(), **change).validate()


def test_bad_model_and_dict_values_raise():
    cfg = default_preset()
    with pytest.raises(ConfigError, match='num_classes'):
        cfg.with_classes(1).validate()
    with pytest.raises(ConfigError, match='bad configuration'):
        config_from_dict({'model': {}, 'loss': {}, 'colour': 'red'})


def test_device_selection_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert resolve_device('auto').type == 'cpu'
    with pytest.raises(ConfigError, match='CUDA is not available'):
        resolve_device('cuda:0')
    with pytest.raises(ConfigError, match='unknown device'):
        resolve_device('gpu please')
    assert resolve_amp_dtype('auto', torch.device('cpu')) is None
    assert resolve_amp_dtype('bf16', torch.device('cpu')) is torch.bfloat16
    with pytest.raises(ConfigError, match='fp16 needs a CUDA'):
        resolve_amp_dtype('fp16', torch.device('cpu'))


def test_device_selection_with_cuda_present(monkeypatch):
    """The CUDA path up to the point of device use: auto picks cuda:0, AMP picks bf16/fp16."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    assert resolve_device('auto') == torch.device('cuda:0')
    with pytest.raises(ConfigError, match='only 1 CUDA'):
        resolve_device('cuda:3')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: False)
    assert resolve_amp_dtype('auto', torch.device('cuda:0')) is torch.float16
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: True)
    assert resolve_amp_dtype('auto', torch.device('cuda:0')) is torch.bfloat16
