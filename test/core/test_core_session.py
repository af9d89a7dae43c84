# SPDX-License-Identifier: Apache-2.0
"""TrainingSession API: call order, annotations, errors, checkpoints, determinism (tiny nets)."""

import pickle
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from segdip_ros.core import (
    AnnotationError,
    CheckpointError,
    Click,
    CutSettings,
    ImageError,
    Mask,
    TrainingError,
    TrainingSession,
    default_preset,
)
from segdip_ros.core.model import meshgrid
from segdip_ros.core.synthetic import two_class_scene
from segdip_ros.core.tracking import replay_gain, tracked_frame_target

# the network alone (no graph cut): these tests look at what the network itself does
TINY = default_preset(2, working_size=64, warmup_iterations=5, refine='none', width=8)
# the default's whole path (graph cut, self-training, merge) on a tiny network
TINY_CUT = default_preset(2, working_size=64, warmup_iterations=5, width=8)


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


@pytest.mark.parametrize(
    'bad',
    [
        np.zeros((0, 5, 3), np.uint8),
        np.zeros((5, 5), np.uint8),
        np.zeros((5, 5, 3), np.float32),
        'image',
    ],
)
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
    assert np.array_equal(restored.predict().probabilities, session.predict().probabilities)


def _weights(s):
    return [p.detach().clone() for p in s._model.parameters()]


def _labelled_run(scene, reads_between_steps, refine_every=1):
    """Two clicks and a correction on the default's whole path (graph cut, self-training,
    merge); `reads_between_steps` predict() calls after every chunk of 5 iterations."""
    s = TrainingSession(TINY_CUT)
    s.set_image(scene.rgb)
    s.warmup()
    for click in (Click(30, 24, 1), Click(2, 2, 0), Click(50, 40, 0)):
        s.add_annotation(click)
        for _ in range(4):
            s.step(5)
            for _ in range(reads_between_steps):
                s.predict()
        s.refine()
    s.next_frame(scene.rgb)
    s.step(5)
    return s


def test_predict_never_changes_what_the_network_learns(scene):
    runs = [_labelled_run(scene, n) for n in (0, 1, 100)]
    ref = _weights(runs[0])
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(ref, _weights(other)))
    assert runs[0].predict().refined is False  # the new frame has no refinement yet


def test_a_restored_session_trains_exactly_as_one_that_never_stopped(scene, tmp_path):
    """Stop in the middle of a labelled frame (after a refinement: self-training target, merge
    base, corrected switch, TCL base all set), restore, go on: bit-identical weights."""

    def first_part(s):
        s.set_image(scene.rgb)
        s.warmup()
        s.add_annotation(Click(30, 24, 1))
        s.step(10)
        s.refine()
        s.add_annotation(Click(2, 2, 0))  # a correction after a refinement
        s.step(7)

    def second_part(s):
        s.step(8)
        s.refine()
        s.add_annotation(Click(50, 40, 0))
        s.step(10)
        s.refine()
        s.next_frame(scene.rgb)
        s.step(6)
        return s.predict()

    _assert_resumes_exactly(first_part, second_part, tmp_path)


def _assert_resumes_exactly(first_part, second_part, tmp_path, check_restored=None):
    """Run first_part then second_part on one session, and on another saved and loaded in
    between: the same iteration count, weights and prediction, bit for bit."""
    straight = TrainingSession(TINY_CUT)
    first_part(straight)
    stopped = TrainingSession(TINY_CUT)
    first_part(stopped)
    path = str(tmp_path / 'ck.pt')
    stopped.save(path)
    resumed = TrainingSession.load(path)
    if check_restored is not None:
        check_restored(resumed)
    p_straight, p_resumed = second_part(straight), second_part(resumed)
    assert resumed.iteration == straight.iteration
    assert all(torch.equal(a, b) for a, b in zip(_weights(straight), _weights(resumed)))
    assert np.array_equal(p_straight.probabilities, p_resumed.probabilities)


def _labelled_then_moved(s, scene):
    """Frame 0 labelled by two clicks, then the scene moved 3 px right: a tracked frame."""
    s.set_image(scene.rgb)
    s.warmup()
    s.add_annotation(Click(30, 24, 1))
    s.add_annotation(Click(2, 2, 0))
    s.step(10)
    s.refine()
    s.next_frame(np.roll(scene.rgb, 3, axis=1))
    s.refine()


def test_a_restored_session_trains_exactly_as_one_that_never_stopped_while_tracking(
    scene, tmp_path
):
    """Stop on a tracked frame (its positions carried along the flow, the labelled frame
    replayed at a brightness that depends on the iteration), restore, go on: bit-identical."""

    def first_part(s):
        _labelled_then_moved(s, scene)
        s.step(4)

    def second_part(s):
        s.step(3)
        s.next_frame(np.roll(scene.rgb, 6, axis=1))
        s.refine()
        s.step(5)
        return s.predict()

    def carried(resumed):
        grid = meshgrid(*resumed.network_size)[0].numpy()
        assert np.abs(resumed._frame.positions - grid).max() > 0.02

    _assert_resumes_exactly(first_part, second_part, tmp_path, check_restored=carried)


def test_a_moved_frame_carries_the_positions_and_replays_the_labelled_frame_brighter_or_darker(
    scene,
):
    s = TrainingSession(TINY_CUT)
    _labelled_then_moved(s, scene)
    f, anchor = s._frame, s._anchor
    grid = meshgrid(*s.network_size)[0].numpy()
    # 3 px right at 64 px is 1.5 px at the network's 32: x positions in the labelled frame
    # are that much smaller here
    step = 2.0 / (s.network_size[1] - 1)
    inner = np.s_[:, 4:-4, 4:-4]
    assert np.median(grid[0][inner[1:]] - f.positions[0][inner[1:]]) == pytest.approx(
        1.5 * step, abs=0.75 * step
    )
    assert np.abs(f.positions[1] - grid[1])[inner[1:]].max() < step
    gains = set()
    for _ in range(6):
        code, target = s._replayed(anchor)
        gain = replay_gain(s.cfg.seed, s.iteration, s.track.replay_brightness)
        gains.add(round(gain, 6))
        assert torch.allclose(target, (anchor.target * gain).clamp(0, 1))
        assert torch.equal(code[:, :2], anchor.code[:, :2])  # positions as labelled
        assert torch.allclose(code[:, 2:], target * 2 - 1)
        s.step(1)
    assert len(gains) == 6


def test_a_tracked_frame_leaves_out_a_wider_background_band_after_clicks_than_after_a_mask(
    scene,
):
    """The band follows how much of the labelled frame the user labelled: two clicks are a
    guess of the object's extent, a whole mask is not (TrackSettings.band_for)."""
    clicked = TrainingSession(TINY_CUT)
    _labelled_then_moved(clicked, scene)
    masked = TrainingSession(TINY_CUT)
    masked.set_image(scene.rgb)
    masked.warmup()
    masked.add_annotation(Mask(scene.labels.astype(np.uint8)))
    masked.step(10)
    masked.refine()
    masked.next_frame(np.roll(scene.rgb, 3, axis=1))
    masked.refine()
    assert clicked._anchor.annotated < 0.01 and masked._anchor.annotated == 1.0
    track = clicked.track
    for s, band in ((clicked, track.sparse_background_band), (masked, track.background_band)):
        labels = s._frame.refinement.labels
        nh, nw = s.network_size
        expected = tracked_frame_target(labels, 2, track.target_confidence, band)[1]
        other = track.background_band + track.sparse_background_band - band
        wrong = tracked_frame_target(labels, 2, track.target_confidence, other)[1]
        assert not np.array_equal(expected, wrong)  # the two bands differ on this frame
        got = s._frame.track_weights.cpu().numpy()
        assert np.array_equal(got, cv2.resize(expected, (nw, nh), interpolation=cv2.INTER_AREA))


def test_bad_checkpoints_raise(session, tmp_path):
    bad = tmp_path / 'junk.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='cannot read'):
        TrainingSession.load(str(bad))
    state = session.state_dict()
    other = TrainingSession(TINY.with_classes(3))
    with pytest.raises(CheckpointError, match='num_classes'):
        other.load_state_dict(state)
    # the label map and TCL base are at the network's size: another scale cannot take them
    with pytest.raises(CheckpointError, match='network_scale'):
        TrainingSession(replace(TINY, network_scale=0.25)).load_state_dict(state)
    with pytest.raises(CheckpointError, match='format'):
        session.load_state_dict({**state, 'format': 1})


class _RunsCode:
    """Stands for any pickled object: unpickling it would call os.system."""

    def __reduce__(self):
        import os

        return (os.system, ('echo pwned > /dev/null',))


def test_a_checkpoint_holding_a_pickled_object_is_refused(session, tmp_path):
    path = tmp_path / 'evil.pt'
    state = session.state_dict()
    state['extra'] = _RunsCode()
    torch.save(state, path)
    with pytest.raises(CheckpointError, match='could run code'):
        TrainingSession.load(str(path))
    with open(tmp_path / 'plain.pt', 'wb') as fh:  # a bare pickle, not a torch file
        pickle.dump(_RunsCode(), fh)
    with pytest.raises(CheckpointError):
        TrainingSession.load(str(tmp_path / 'plain.pt'))


def test_same_seed_same_result(scene):
    preds = []
    for _ in range(2):
        s = TrainingSession(TINY)
        s.set_image(scene.rgb)
        s.add_annotation(Click(30, 24, 1))
        s.step(4)
        preds.append(s.predict().probabilities)
    assert np.array_equal(preds[0], preds[1])


def test_the_one_kernel_optimiser_trains_the_same_weights_as_the_per_tensor_one(scene):
    """The session's Adam runs all parameters in one (foreach) step to save per-op overhead;
    that must not change what the network learns. Compared with a tolerance, not bit for bit:
    the two code paths may round differently on another CPU."""
    weights = []
    for foreach in (True, False):
        s = TrainingSession(TINY)
        s.set_image(scene.rgb)
        assert s._optimizer is not None and s._model is not None
        assert s._optimizer.defaults['foreach'] is True
        if not foreach:
            s._optimizer = torch.optim.Adam(
                s._model.parameters(), lr=TINY.learning_rate, amsgrad=True, foreach=False
            )
        start = [p.detach().clone() for p in s._model.parameters()]
        s.add_annotation(Click(30, 24, 1))
        s.add_annotation(Click(2, 2, 0))
        s.step(6)
        weights.append([p.detach().clone() for p in s._model.parameters()])
        assert not all(torch.equal(a, b) for a, b in zip(start, weights[-1]))  # it trained
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(*weights))


def test_nonfinite_loss_skips_update_and_session_recovers(session, monkeypatch):
    from segdip_ros.core import objective

    params = _weights(session)
    real = objective.F.mse_loss
    monkeypatch.setattr(objective.F, 'mse_loss', lambda a, b: real(a, b) * float('nan'))
    result = session.step(3)
    assert result.nonfinite_iterations == 3 and session.iteration == 0
    assert all(torch.equal(a, b) for a, b in zip(params, session._model.parameters()))
    monkeypatch.undo()
    assert session.step(2).nonfinite_iterations == 0 and session.iteration == 2


def test_out_of_memory_is_reported_and_session_stays_usable(session, monkeypatch):
    def boom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2 GiB')

    monkeypatch.setattr(session, '_one_iteration', boom)
    with pytest.raises(TrainingError, match='out of memory'):
        session.step(1)
    monkeypatch.undo()
    assert session.step(1).iterations == 1


def test_refine_is_explicit_and_tracks_the_annotations(scene):
    s = TrainingSession(TINY_CUT)
    s.set_image(scene.rgb)
    s.add_annotation(Click(30, 24, 1))
    s.step(5)
    assert s.needs_refine and s.predict().refined is False
    pred = s.refine()
    assert pred.refined and not s.needs_refine
    assert pred.labels[24, 30] == 1  # the click is a hard constraint
    s.add_annotation(Click(2, 2, 0))
    assert s.needs_refine and s.predict().refined  # the last refinement until the next
    s.undo()
    assert not s.needs_refine  # back to what was refined
    assert s.clear() == 1 and s.predict().refined is False
    assert TrainingSession(TINY).refine is not None


def test_cut_settings_refuse_bad_values():
    with pytest.raises(ValueError, match='click_confidence'):
        CutSettings(click_confidence=1.0)
    with pytest.raises(ValueError, match='>= 0'):
        CutSettings(teaches=-1.0)


def test_network_runs_at_network_scale_of_the_working_size(scene):
    half = TrainingSession(replace(TINY, network_scale=0.5))
    half.set_image(scene.rgb)
    assert half.work_size == (48, 64) and half.network_size == (24, 32)
    f = half._frame
    assert tuple(f.code.shape[-2:]) == (24, 32) and tuple(f.target.shape[-2:]) == (24, 32)
    half.add_annotation(Click(32, 24, 1, radius=4))  # radius in working pixels
    assert int((f.labels == 1).sum()) == int((np.hypot(*np.mgrid[-2:3, -2:3]) <= 2).sum())
    half.step(2)
    pred = half.predict()  # back at the original size
    assert pred.labels.shape == (48, 64) and pred.probabilities.shape == (48, 64, 2)
    full = TrainingSession(replace(TINY, network_scale=1.0))
    full.set_image(scene.rgb)
    assert full.network_size == full.work_size == (48, 64)
    with pytest.raises(Exception, match='network_scale'):
        replace(TINY, network_scale=0.0).validate()
