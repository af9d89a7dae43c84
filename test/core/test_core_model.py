# SPDX-License-Identifier: Apache-2.0
"""The network: its skip connections."""

from dataclasses import replace

import torch
import torch.nn.functional as F

from segdip_ros.core import config_from_dict, config_to_dict, default_preset, still_preset
from segdip_ros.core.model import SegDipNet, make_input_code

STRIPE = 2  # px: the stripes the image shows and the labels follow


def _net(skips: bool, seed: int = 0) -> SegDipNet:
    torch.manual_seed(seed)
    return SegDipNet(replace(default_preset(), width=8, skip_connections=skips))


def test_skip_connections_add_no_parameters_but_change_the_output():
    """A checkpoint fits either network (the same parameters), and the switch is not a no-op."""
    plain, skipped = _net(False), _net(True)
    a, b = plain.state_dict(), skipped.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    z = make_input_code(default_preset(), torch.rand(1, 3, 32, 48))
    with torch.no_grad():
        diff = (plain(z)[1] - skipped(z)[1]).abs().max()
    assert float(diff) > 1e-2


def test_the_default_has_skip_connections_and_the_still_preset_none():
    assert default_preset().skip_connections and not still_preset().skip_connections
    # a configuration saved before the field existed restores the network it described
    saved = config_to_dict(default_preset())
    del saved['skip_connections']
    assert not config_from_dict(saved).skip_connections


def _fit_stripes(skips: bool, seed: int) -> float:
    """Accuracy on stripes STRIPE px wide, drawn in the image, after 150 steps: detail finer
    than the coarsest features."""
    net = _net(skips, seed)
    torch.manual_seed(seed)
    labels = ((torch.arange(48) // STRIPE) % 2).expand(32, 48)[None]
    rgb = (0.3 + 0.4 * labels.float() + 0.1 * torch.rand(1, 3, 32, 48)).clamp(0, 1)
    z = make_input_code(default_preset(), rgb)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        loss = F.cross_entropy(net(z)[1], labels)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((net(z)[1].argmax(dim=1) == labels).float().mean())


def test_skip_connections_let_the_labels_follow_fine_detail():
    """Without skips every output pixel comes from features at 1/8 of the size; with them the
    network follows stripes two pixels wide in the image, which the plain one cannot."""
    for seed in (0, 1):
        plain, skipped = _fit_stripes(False, seed), _fit_stripes(True, seed)
        assert skipped > plain + 0.1, (seed, plain, skipped)
