"""GrabCut refinement of the network's probabilities (binary scenes)."""
import numpy as np

from segdip_ros.core.refine import grabcut_refine
from segdip_ros.core.synthetic import interior_point, two_class_scene


def test_refinement_snaps_a_blurry_guess_to_the_object():
    scene = two_class_scene(seed=2)
    gt = scene.labels == 1
    # a smooth, too-large guess: the object's bounding disk, as the raw network tends to give
    ys, xs = np.nonzero(gt)
    yy, xx = np.mgrid[0:gt.shape[0], 0:gt.shape[1]]
    r = 0.75 * max(np.ptp(xs), np.ptp(ys))
    guess = np.hypot(xx - xs.mean(), yy - ys.mean()) < r
    probs = np.stack([1.0 - guess * 0.8, guess * 0.8]).astype(np.float32)
    labels = np.full(gt.shape, -1)
    x, y = interior_point(gt)
    labels[y, x] = 1
    labels[2, 2] = 0
    refined = grabcut_refine(scene.rgb, probs, labels)
    inter = lambda m: np.count_nonzero(m & gt) / np.count_nonzero(m | gt)  # noqa: E731
    before, after = inter(probs[1] > 0.5), inter(refined[1] > 0.5)
    print(f'IoU of the guess {before:.3f}, after refinement {after:.3f}')
    assert after > before + 0.1 and after > 0.85
    assert refined[1, y, x] > 0.5 and refined[1, 2, 2] < 0.5     # clicks are hard constraints


def test_refinement_leaves_multiclass_and_seedless_input_alone():
    rgb = np.zeros((16, 16, 3), np.uint8)
    three = np.full((3, 16, 16), 1 / 3, np.float32)
    assert grabcut_refine(rgb, three, np.full((16, 16), -1)) is three
    all_fg = np.stack([np.zeros((16, 16)), np.ones((16, 16))]).astype(np.float32)
    assert grabcut_refine(rgb, all_fg, np.full((16, 16), -1)) is all_fg
