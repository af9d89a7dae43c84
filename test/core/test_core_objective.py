# SPDX-License-Identifier: Apache-2.0
"""The training objective (core/objective.py): properties that hold on any machine.

The Temporal Consistency Loss is checked by what it is, not by a tracking score whose margin
moves with a machine's rounding: its target, its weights and the direction of its gradient.
"""

import pytest
import torch

from segdip_ros.core.objective import Targets, binary_cross_entropy_map, objective, tcl_target


def _targets(previous=None, labels=None, lam=0.001, refined=None, teach=0.0, segment=True):
    if labels is None:
        labels = torch.full((4, 5), -1, dtype=torch.long)
        labels[1, 1] = 1
    return Targets(
        rgb=torch.full((1, 3, 4, 5), 0.5),
        labels=labels,
        label_norm=float((labels >= 0).sum()),
        previous=previous,
        refined=refined,
        teach=teach,
        tcl_lambda=lam,
        segment=segment,
    )


def _probs(p1):
    """Two-class probabilities with P(class 1) = p1 everywhere, as a leaf tensor."""
    p = torch.full((1, 1, 4, 5), float(p1))
    return torch.cat([1 - p, p], dim=1).requires_grad_(True)


def test_the_target_is_the_user_label_where_annotated_and_the_previous_prediction_elsewhere():
    labels = torch.full((4, 5), -1, dtype=torch.long)
    labels[2, 3] = 0
    prev = torch.rand(1, 3, 4, 5)
    t = tcl_target(prev, labels, 3)
    assert torch.equal(t[0, :, 2, 3], torch.tensor([1.0, 0.0, 0.0]))
    mask = labels < 0
    assert torch.equal(t[0][:, mask], prev[0][:, mask])
    assert torch.allclose(tcl_target(None, labels, 3)[0, :, 0, 0], torch.full((3,), 1 / 3))


def test_unannotated_pixels_are_pulled_towards_the_previous_prediction():
    rgb = torch.full((1, 3, 4, 5), 0.5)
    prev = _probs(0.9).detach()
    probs = _probs(0.5)
    objective(rgb, probs, _targets(previous=prev, lam=0.1)).total.backward()
    grad = probs.grad[0, 1]
    # descent raises P(class 1) at an unannotated pixel, towards the previous 0.9
    assert grad[0, 0] < 0
    # with lambda 0 (no TCL) an unannotated pixel gets no gradient at all
    probs0 = _probs(0.5)
    objective(rgb, probs0, _targets(previous=prev, lam=0.0)).total.backward()
    assert probs0.grad[0, 1, 0, 0] == 0 and probs0.grad[0, 1, 1, 1] < 0


def test_an_annotated_pixel_outweighs_an_unannotated_one_by_one_over_lambda():
    rgb = torch.full((1, 3, 4, 5), 0.5)
    probs = _probs(0.5)
    prev = torch.cat([torch.full((1, 1, 4, 5), 0.1), torch.full((1, 1, 4, 5), 0.9)], 1)
    objective(rgb, probs, _targets(previous=prev, lam=0.01)).total.backward()
    g = probs.grad[0, 1]
    assert g[1, 1] / g[0, 0] == pytest.approx(100 * (1 / 0.5) / (0.9 / 0.5 - 0.1 / 0.5), rel=1e-4)


def test_the_loss_is_smallest_at_the_target():
    prev = _probs(0.8).detach()
    labels = torch.full((4, 5), -1, dtype=torch.long)
    labels[1, 1] = 1
    rgb = torch.full((1, 3, 4, 5), 0.5)
    values = {
        p: float(
            objective(rgb, _probs(p), _targets(previous=prev, labels=labels, lam=1.0)).segmentation
        )
        for p in (0.6, 0.8, 0.95)
    }
    # unannotated pixels dominate (19 of 20) and want 0.8; the annotated one wants 1
    assert values[0.8] < values[0.6] and values[0.8] < values[0.95]


def test_before_annotations_only_the_reconstruction_counts():
    rgb = torch.full((1, 3, 4, 5), 0.2)
    terms = objective(rgb, _probs(0.5), _targets(segment=False))
    assert float(terms.segmentation) == 0
    assert float(terms.total) == pytest.approx(0.09)  # (0.5 - 0.2)^2


def test_self_training_adds_its_weighted_mean_bce():
    rgb = torch.full((1, 3, 4, 5), 0.5)
    refined = _probs(1.0).detach()
    probs = _probs(0.7)
    base = objective(rgb, probs, _targets(lam=0.0)).segmentation
    taught = objective(rgb, probs, _targets(lam=0.0, refined=refined, teach=0.5)).segmentation
    bce = binary_cross_entropy_map(probs, refined)[0].mean()
    assert float(taught - base) == pytest.approx(0.5 * float(bce), rel=1e-5)
