# SPDX-License-Identifier: Apache-2.0
"""The graph cut that refines the network's probabilities (core/graphcut.py, core/refine.py)."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from segdip_ros.core import Click, CutSettings, TrainingSession, default_preset
from segdip_ros.core.graphcut import ColourGMM, prior_graph_cut
from segdip_ros.core.refine import (
    click_prior,
    geodesic_click_map,
    graphcut_refine,
    merge_touched_changes,
    nearest_click_map,
)
from segdip_ros.core.synthetic import interior_point, three_class_scene, two_class_scene


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / max(1, np.count_nonzero(a | b))


def test_refinement_snaps_a_blurry_guess_to_the_object():
    scene = two_class_scene(seed=2)
    gt = scene.labels == 1
    # a smooth, too-large guess: the object's bounding disk, as the raw network tends to give
    ys, xs = np.nonzero(gt)
    yy, xx = np.mgrid[0 : gt.shape[0], 0 : gt.shape[1]]
    r = 0.75 * max(np.ptp(xs), np.ptp(ys))
    guess = np.hypot(xx - xs.mean(), yy - ys.mean()) < r
    probs = np.stack([1.0 - guess * 0.8, guess * 0.8]).astype(np.float32)
    seeds = np.full(gt.shape, -1)
    x, y = interior_point(gt)
    seeds[y, x] = 1
    seeds[2, 2] = 0
    refined = graphcut_refine(scene.rgb, probs, seeds)
    before, after = _iou(probs[1] > 0.5, gt), _iou(refined[1] > 0.5, gt)
    print(f'IoU of the guess {before:.3f}, after refinement {after:.3f}')
    assert after > before + 0.1 and after > 0.85
    assert refined[1, y, x] > 0.5 and refined[1, 2, 2] < 0.5  # clicks are hard constraints
    assert np.allclose(refined.sum(axis=0), 1.0, atol=1e-5)


def test_colour_models_do_not_depend_on_opencvs_global_rng():
    """k-means++ draws from OpenCV's RNG: whatever state other code left it in, the same pixels
    must give the same colour models (and so the same cut)."""
    import cv2

    pixels = np.random.default_rng(0).uniform(0, 255, (4000, 3))  # no clear clusters
    means = []
    for state in (1, 2, 3):
        cv2.setRNGSeed(state)
        means.append(np.sort(ColourGMM(pixels).means, axis=0))
    np.testing.assert_array_equal(means[0], means[1])
    np.testing.assert_array_equal(means[0], means[2])


def test_the_geodesic_click_map_stops_at_edges_where_the_straight_one_does_not():
    """Dark left half, bright right half; a class-1 click deep in the dark half, a class-0 click
    just right of the edge. The straight-line midpoint falls inside the dark half; the path
    along the image has to cross the edge, so the whole dark half stays class 1."""
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, 30:] = 200
    seeds = np.full((40, 60), -1)
    seeds[20, 3], seeds[20, 36] = 1, 0
    dark = np.zeros((40, 60), bool)
    dark[:, :30] = True
    straight = nearest_click_map(seeds)
    assert (straight[dark] == 0).any()  # the midpoint (x 19.5) is in the dark half
    along = geodesic_click_map(seeds, rgb, edge_cost=0.3)
    assert (along[dark] == 1).all() and (along[~dark] == 0).all()
    assert (click_prior(seeds, 3, 0.9, rgb, 0.3).argmax(axis=0)[dark] == 1).all()  # no border
    assert (geodesic_click_map(np.full((4, 4), -1), rgb[:4, :4], 0.3) == -1).all()


def test_the_session_passes_its_click_edge_cost_to_the_cut(monkeypatch):
    import segdip_ros.core.session as session_module

    seen = []
    monkeypatch.setattr(
        session_module,
        'graphcut_refine',
        lambda *a, **k: seen.append(k['click_edge_cost']) or graphcut_refine(*a, **k),
    )
    rgb, _, _ = _red_twins()
    s = TrainingSession(
        default_preset(2, warmup_iterations=5, working_size=60), CutSettings(click_edge_cost=0.7)
    )
    s.set_image(rgb)
    s.add_annotation(Click(x=25, y=30, class_id=1))
    s.step(2)
    s.predict()
    assert seen == []  # reading a prediction runs no cut
    s.refine()
    assert seen == [0.7]


def test_the_network_weight_switches_at_the_frames_first_correction(monkeypatch):
    """network_weight_first holds until an annotation is added after a refinement (however
    many annotations came before it), network_weight from then on; a new frame starts over."""
    import segdip_ros.core.session as session_module

    seen = []
    monkeypatch.setattr(
        session_module,
        'graphcut_refine',
        lambda *a, **k: seen.append(a[3]) or graphcut_refine(*a, **k),
    )
    rgb, _, _ = _red_twins()
    s = TrainingSession(
        default_preset(2, warmup_iterations=5, working_size=60),
        CutSettings(network_weight=0.75, network_weight_first=0.25),
    )
    s.set_image(rgb)
    s.add_annotation(Click(x=25, y=30, class_id=1))
    s.add_annotation(Click(x=5, y=5, class_id=0))
    s.step(1)
    s.refine()
    s.step(1)
    s.refine()  # the same annotations: still the first cut
    s.add_annotation(Click(x=50, y=50, class_id=0))
    s.refine()
    s.undo()
    s.refine()  # an undo after a refinement: a correction too
    s.next_frame(rgb)
    s.add_annotation(Click(x=25, y=30, class_id=1))
    s.refine()
    assert seen == [0.25, 0.25, 0.75, 0.75, 0.25]


def test_three_classes_by_alpha_expansion_from_one_click_each():
    scene = three_class_scene(seed=1)
    seeds = np.full(scene.labels.shape, -1)
    for c in range(3):
        x, y = interior_point(scene.labels == c)
        seeds[y, x] = c
    # a weak prior that knows only where the clicks are: 0.5 for the nearest click's class
    near = nearest_click_map(seeds)
    prior = np.where(np.arange(3)[:, None, None] == near[None], 0.5, 0.25)
    labels = prior_graph_cut(scene.rgb, prior, seeds)
    assert _iou(near == 2, scene.labels == 2) < 0.85
    ious = [_iou(labels == c, scene.labels == c) for c in range(3)]
    print('per-class IoU', np.round(ious, 3))
    assert min(ious) > 0.85


def _red_twins() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two identical noisy red squares on blue, 60x120: the image and each square's mask."""
    rng = np.random.default_rng(0)
    rgb = np.zeros((60, 120, 3)) + (40, 60, 200)
    rgb[15:45, 10:40] = (200, 40, 40)
    rgb[15:45, 80:110] = (200, 40, 40)
    rgb = np.clip(rgb + rng.normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
    left = np.zeros((60, 120), bool)
    left[15:45, 10:40] = True
    right = np.zeros((60, 120), bool)
    right[15:45, 80:110] = True
    return rgb, left, right


def test_the_prior_decides_between_regions_of_the_same_colour():
    """Two identical red squares, one clicked: colour alone (prior weight 0) takes the unclicked
    twin as well; a prior that favours the clicked square (the network's job) keeps it out."""
    rgb, left, _ = _red_twins()
    seeds = np.full((60, 120), -1)
    seeds[30, 25] = 1
    seeds[5, 60] = 0
    prior = np.stack([np.where(left, 0.2, 0.8), np.where(left, 0.8, 0.2)])
    with_prior = prior_graph_cut(rgb, prior, seeds, prior_weight=3.0) == 1
    colour_only = prior_graph_cut(rgb, prior, seeds, prior_weight=0.0) == 1
    assert _iou(with_prior, left) > 0.95
    assert colour_only[30, 95] and colour_only[30, 25]


@pytest.mark.parametrize('num_classes', [2, 3, 11])
def test_the_click_prior_has_the_same_odds_whatever_the_number_of_classes(num_classes):
    """0.9 means odds of 9 for the nearest click's class against each other class, as in a
    binary scene; with 11 classes the old split (0.01 each) made the odds 90."""
    seeds = np.full((10, 20), -1)
    seeds[5, 2] = 1
    seeds[5, 17] = num_classes - 1 if num_classes > 2 else 0
    prior = click_prior(seeds, num_classes, 0.9)
    assert np.allclose(prior.sum(axis=0), 1.0)
    left, other = prior[1, 5, 4], np.delete(prior[:, 5, 4], 1)
    assert np.allclose(left / other, 9.0)
    if num_classes == 2:
        assert np.isclose(left, 0.9)


def test_merge_keeps_only_the_changes_an_annotation_touches():
    base = np.zeros((20, 40), int)
    new = base.copy()
    new[2:6, 2:6] = 1  # a change where the user clicked
    new[10:15, 30:35] = 2  # a change far from it
    new[5, 6:9] = 1  # touching the first change: the same region
    touched = np.zeros_like(base, bool)
    touched[3, 3] = True
    merged = merge_touched_changes(base, new, touched)
    assert (merged[2:6, 2:6] == 1).all() and (merged[5, 6:9] == 1).all()
    assert (merged[10:15, 30:35] == 0).all()
    assert (merge_touched_changes(base, new, np.zeros_like(touched)) == base).all()


def test_refinement_with_a_base_changes_only_what_the_new_click_touches():
    """The user saw both red twins as object and clicked on the background far from them: the
    cut alone would now drop the unclicked twin, the merge keeps what was shown; a negative click
    on the twin itself removes it."""
    rgb, left, right = _red_twins()
    seeds = np.full(left.shape, -1)
    seeds[30, 25] = 1
    shown = (left | right).astype(int)
    far = seeds.copy()
    far[55, 60] = 0
    free = graphcut_refine(rgb, None, far, click_confidence=0.9, keep=0.0).argmax(axis=0)
    assert not free[right].any()
    kept = graphcut_refine(
        rgb, None, far, click_confidence=0.9, keep=0.0, base=(shown, seeds)
    ).argmax(axis=0)
    assert (kept == shown).all()
    on_twin = seeds.copy()
    on_twin[30, 95] = 0
    fixed = graphcut_refine(
        rgb, None, on_twin, click_confidence=0.9, keep=0.0, base=(shown, seeds)
    ).argmax(axis=0)
    assert _iou(fixed == 1, left) > 0.95


def test_refinement_needs_two_competing_classes():
    rgb = np.zeros((16, 16, 3), np.uint8)
    all_fg = np.stack([np.zeros((16, 16)), np.ones((16, 16))]).astype(np.float32)
    seeds = np.full((16, 16), -1)
    for _ in range(2):  # no annotation, then one of the class the network already gives
        out = graphcut_refine(rgb, all_fg, seeds, click_confidence=0.0)
        assert (out.argmax(axis=0) == 1).all() and np.allclose(out.sum(axis=0), 1.0)
        seeds[3, 3] = 1
    with pytest.raises(ValueError):
        prior_graph_cut(rgb, all_fg, np.full((15, 16), -1), classes=[0, 1])


@pytest.mark.parametrize('seed', [0, 1])
def test_session_refinement_fixes_an_early_network_guess(seed):
    """Two clicks and 20 iterations: the raw network still paints a blob over half the image;
    refine='graphcut' gives the object (measured: raw IoU 0.40-0.44, refined 1.0)."""
    scene = two_class_scene(seed=seed)
    scores = {}
    for refine in ('none', 'graphcut'):
        s = TrainingSession(replace(default_preset(2), refine=refine))
        s.set_image(scene.rgb)
        s.warmup(100)
        for c in (1, 0):
            x, y = interior_point(scene.labels == c)
            s.add_annotation(Click(x=x, y=y, class_id=c))
        s.step(20)
        scores[refine] = _iou(s.refine().labels == 1, scene.labels == 1)
    print(f'seed {seed}: raw IoU {scores["none"]:.3f}, refined {scores["graphcut"]:.3f}')
    assert scores['graphcut'] > 0.9 and scores['graphcut'] > scores['none'] + 0.2


def test_a_class_missing_from_the_first_labelling_gets_a_colour_model(recwarn):
    """Only a background click so far, the network already paints some object: the click prior
    labels every pixel background, yet the object class competes; its colour model must start
    from the network's pixels (not from no pixel at all: NaN, warnings)."""
    scene = two_class_scene(seed=0)
    seeds = np.full(scene.labels.shape, -1)
    x, y = interior_point(scene.labels == 0)
    seeds[y, x] = 0
    obj = scene.labels == 1
    # a network sure of the object outweighs the click prior there (0.5 x log 999 > log 9)
    probs = np.stack([np.where(obj, 0.001, 0.999), np.where(obj, 0.999, 0.001)]).astype(np.float32)
    refined = graphcut_refine(scene.rgb, probs, seeds, network_weight=0.5, click_confidence=0.9)
    assert np.isfinite(refined).all()
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert np.allclose(refined.sum(axis=0), 1.0, atol=1e-5)
    assert _iou(refined.argmax(axis=0) == 1, obj) > 0.9


def test_the_refined_mask_teaches_the_next_frame_once():
    """Self-training across a frame switch: the refined mask of an annotated frame is the
    target on the next frame (one frame stale, like the TCL's), then dropped."""
    scene = two_class_scene(seed=0)
    s = TrainingSession(replace(default_preset(2, warmup_iterations=5), working_size=64))
    s.set_image(scene.rgb)
    for c in (1, 0):
        x, y = interior_point(scene.labels == c)
        s.add_annotation(Click(x=x, y=y, class_id=c))
    s.step(5)
    assert s._teach_target is None
    s.predict()
    assert s._teach_target is None  # reading teaches nothing
    s.refine()
    first = s._teach_target
    assert first is not None and tuple(first.shape[-2:]) == s.network_size
    s.next_frame(scene.rgb)
    assert s._teach_target is first and s.step(2).annotation_loss > 0
    s.next_frame(scene.rgb)
    assert s._teach_target is None


def test_session_merge_uses_what_the_user_saw_before_the_new_click(monkeypatch):
    """The merge in the session: the base of the cut after the second click is the labelling
    of the last refinement before it (and the seeds it was made with), however often
    predict() ran in between; clear() starts over without a base."""
    import segdip_ros.core.session as session_module

    bases, outputs = [], []

    def recording(*args, **kwargs):
        bases.append(kwargs.get('base'))
        out = graphcut_refine(*args, **kwargs)
        outputs.append(out.argmax(axis=0))
        return out

    monkeypatch.setattr(session_module, 'graphcut_refine', recording)
    rgb, left, _ = _red_twins()
    s = TrainingSession(replace(default_preset(2, warmup_iterations=30), working_size=120))
    assert s.cut.merge
    s.set_image(rgb)
    s.warmup()
    s.add_annotation(Click(x=25, y=30, class_id=1))
    s.step(5)
    s.refine()
    s.step(5)
    s.refine()
    assert bases == [None, None]
    shown = outputs[-1]
    s.add_annotation(Click(x=60, y=55, class_id=0))
    for _ in range(2):
        s.step(5)
        s.predict()
        s.refine()
    labels, seeds = bases[-1]
    assert all(np.array_equal(a, b) for a, b in zip(bases[-2], bases[-1]))  # the same base
    assert (labels == shown).all()
    assert seeds[30, 25] == 1 and seeds[55, 60] == -1
    s.clear()
    s.add_annotation(Click(x=95, y=30, class_id=1))
    s.refine()
    assert bases[-1] is None


def test_the_next_frame_learns_the_refined_mask_pulled_along_the_motion():
    """After an annotated frame, the next frame's target is that frame's refined labels warped
    by the optical flow (the motion-compensated TCL), not the same pixels: an object that moved
    4 px right has its target moved 4 px right."""
    scene = two_class_scene(seed=0)
    s = TrainingSession(default_preset(2, warmup_iterations=5, working_size=160))
    s.set_image(scene.rgb)
    for c in (1, 0):
        x, y = interior_point(scene.labels == c)
        s.add_annotation(Click(x=x, y=y, class_id=c))
    s.step(5)
    first = s.refine().labels.copy()
    shifted = np.roll(scene.rgb, 4, axis=1)
    s.next_frame(shifted)
    f = s._frame
    assert f.motion is not None and f.track_labels is not None
    warped = f.motion.warped.argmax(axis=0)
    moved = np.roll(
        cv2.resize(first, warped.shape[::-1], interpolation=cv2.INTER_NEAREST),
        4 * warped.shape[1] // first.shape[1],
        axis=1,
    )
    inner = (slice(4, -4), slice(8, -8))
    assert (warped[inner] == moved[inner]).mean() > 0.97
    assert s.step(2).annotation_loss > 0
    pred = s.refine()  # the tracking cut: labels on the moved object
    assert pred.refined
    truth = np.roll(scene.labels, 4, axis=1) == 1
    assert _iou(pred.labels == 1, truth) > 0.9
