# SPDX-License-Identifier: Apache-2.0
"""TrainingSession API: call order, annotations, errors, checkpoints, determinism (tiny nets)."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from segdip_ros.core import (AnnotationError, CheckpointError, Click, ImageError, TrainingError,
                             TrainingSession, default_preset)
from segdip_ros.core.synthetic import two_class_scene

# the network alone (no graph cut): these tests look at what the network itself does
TINY = replace(default_preset(2, working_size=64, warmup_iterations=5, refine='none',
                              refine_teaches=0.0),
               model=replace(default_preset(2).model, width=8))


@pytest.fixture
def scene():
    return two_class_scene(height=48, width=64, seed=3)


@pytest.fixture
def session(scene):
    s = TrainingSession(TINY)
    s.set_image(scene.rgb)
    return s


def test_wrong_call_order_raises():
    s = TrainingSession(TINY)
    with pytest.raises(RuntimeError, match='set_image'):
        s.step(1)
    with pytest.raises(RuntimeError, match='set_image'):
        s.add_annotation(Click(1, 1, 0))


@pytest.mark.parametrize('bad', [np.zeros((0, 5, 3), np.uint8), np.zeros((5, 5), np.uint8),
                                 np.zeros((5, 5, 3), np.float32), 'image'])
def test_bad_images_raise(bad):
    with pytest.raises(ImageError):
        TrainingSession(TINY).set_image(bad)


def test_outputs_have_original_size_and_no_labels_before_clicks(session, scene):
    session.step(2)
    pred = session.predict()
    assert pred.labels.shape == (48, 64) and pred.labels.dtype == np.uint8
    assert (pred.labels == 255).all()
    assert pred.probabilities.shape == (48, 64, 2)
    assert np.allclose(pred.probabilities.sum(axis=2), 1, atol=1e-4)
    assert session.reconstruction().shape == (48, 64, 3)
    session.add_annotation(Click(10, 10, 1))
    session.step(1)
    assert set(np.unique(session.predict().labels)) <= {0, 1}


def test_bad_annotation_leaves_session_unchanged(session):
    session.add_annotation(Click(5, 5, 1))
    session.step(2)
    before = (session.annotations, session.predict().labels.copy(), session.iteration)
    for bad in (Click(64, 5, 0), Click(5, 5, 2), Click(-1, 0, 0)):
        with pytest.raises(AnnotationError):
            session.add_annotation(bad)
    assert session.annotations == before[0]
    assert session.iteration == before[2]
    assert np.array_equal(session.predict().labels, before[1])


def test_undo_clear_and_next_frame(session, scene):
    session.add_annotation(Click(5, 5, 1))
    session.add_annotation(Click(6, 6, 0))
    assert session.undo() == Click(6, 6, 0)
    assert session.annotations == (Click(5, 5, 1),)
    session.step(1)
    session.next_frame(scene.rgb)
    assert session.annotations == () and session.frame_index == 1
    assert session.has_labels  # labels carry over to the next frame (tracking)
    with pytest.raises(ImageError, match='set_image'):
        session.next_frame(scene.rgb[:10])
    session.add_annotation(Click(1, 1, 0))
    assert session.clear() == 1 and session.undo() is None


def test_checkpoint_round_trip_gives_same_prediction(session, tmp_path):
    session.add_annotation(Click(30, 24, 1))
    session.add_annotation(Click(2, 2, 0))
    session.step(5)
    path = str(tmp_path / 'session.pt')
    session.save(path)
    restored = TrainingSession.load(path)
    assert restored.annotations == session.annotations
    assert np.array_equal(restored.predict().labels, session.predict().labels)
    assert np.allclose(restored.predict().probabilities, session.predict().probabilities)
    # training on from both gives the same result too (optimiser state restored)
    session.step(3)
    restored.step(3)
    assert np.allclose(restored.predict().probabilities, session.predict().probabilities, atol=1e-5)


def test_bad_checkpoints_raise(session, tmp_path):
    bad = tmp_path / 'junk.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='cannot read'):
        TrainingSession.load(str(bad))
    state = session.state_dict()
    other = TrainingSession(TINY.with_classes(3))
    with pytest.raises(CheckpointError, match='differ'):
        other.load_state_dict(state)
    # the label map and TCL base are at the network's size: another scale cannot take them
    with pytest.raises(CheckpointError, match='network scale'):
        TrainingSession(replace(TINY, network_scale=0.25)).load_state_dict(state)


def test_same_seed_same_result(scene):
    preds = []
    for _ in range(2):
        s = TrainingSession(TINY)
        s.set_image(scene.rgb)
        s.add_annotation(Click(30, 24, 1))
        s.step(4)
        preds.append(s.predict().probabilities)
    assert np.array_equal(preds[0], preds[1])


def test_nonfinite_loss_skips_update_and_session_recovers(session, monkeypatch):
    import segdip_ros.core.session as mod
    params = [p.detach().clone() for p in session._model.parameters()]
    real = mod.reconstruction_loss
    monkeypatch.setattr(mod, 'reconstruction_loss', lambda a, b: real(a, b) * float('nan'))
    result = session.step(3)
    assert result.nonfinite_iterations == 3 and session.iteration == 0
    assert all(torch.equal(a, b) for a, b in zip(params, session._model.parameters()))
    monkeypatch.setattr(mod, 'reconstruction_loss', real)
    assert session.step(2).nonfinite_iterations == 0 and session.iteration == 2


def test_out_of_memory_is_reported_and_session_stays_usable(session, monkeypatch):
    def boom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2 GiB')
    monkeypatch.setattr(session, '_one_iteration', boom)
    with pytest.raises(TrainingError, match='out of memory'):
        session.step(1)
    monkeypatch.undo()
    assert session.step(1).iterations == 1


def _border_background_share(cfg, scene):
    s = TrainingSession(cfg)
    s.set_image(scene.rgb)
    s.add_annotation(Click(35, 24, 1))          # only a positive click
    s.step(60)
    p0 = s.predict().probabilities[..., 0]
    ring = np.concatenate([p0[0], p0[-1], p0[:, 0], p0[:, -1]])
    return float(ring.mean()), s


def test_border_background_prior_until_a_background_click(scene):
    without, _ = _border_background_share(TINY, scene)
    cfg = replace(TINY, loss=replace(TINY.loss, border_background=1.0))
    share, s = _border_background_share(cfg, scene)
    print(f'border P(background): {share:.2f} with the prior, {without:.2f} without')
    assert share > 0.8 and share > without + 0.15
    assert s._border_active
    s.add_annotation(Click(1, 1, 0))
    assert not s._border_active                   # a real background click replaces the prior


def test_network_runs_at_network_scale_of_the_working_size(scene):
    half = TrainingSession(replace(TINY, network_scale=0.5))
    half.set_image(scene.rgb)
    assert half.work_size == (48, 64) and half.network_size == (24, 32)
    assert tuple(half._code.shape[-2:]) == (24, 32) and tuple(half._target.shape[-2:]) == (24, 32)
    half.add_annotation(Click(32, 24, 1, radius=4))          # radius in working pixels
    assert int((half._labels == 1).sum()) == int((np.hypot(*np.mgrid[-2:3, -2:3]) <= 2).sum())
    half.step(2)
    pred = half.predict()                                     # back at the original size
    assert pred.labels.shape == (48, 64) and pred.probabilities.shape == (48, 64, 2)
    full = TrainingSession(replace(TINY, network_scale=1.0))
    full.set_image(scene.rgb)
    assert full.network_size == full.work_size == (48, 64)
    with pytest.raises(Exception, match='network_scale'):
        replace(TINY, network_scale=0.0).validate()
