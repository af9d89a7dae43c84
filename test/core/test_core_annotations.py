# SPDX-License-Identifier: Apache-2.0
"""Annotations: validation, JSON form and rasterisation at working resolution."""

import numpy as np
import pytest

from segdip_ros.core import AnnotationError, Box, Click, Stroke, annotation_from_dict
from segdip_ros.core.annotations import UNLABELLED, rasterise, validate_annotation


def test_click_maps_to_scaled_pixel():
    labels = rasterise([Click(x=99, y=49, class_id=1)], orig_size=(100, 200), work_size=(50, 100))
    ys, xs = np.nonzero(labels != UNLABELLED)
    assert list(zip(xs, ys)) == [(49, 24)]
    assert labels[24, 49] == 1


def test_click_radius_makes_disk_and_later_annotation_wins():
    labels = rasterise([Click(10, 10, 0, radius=2), Click(11, 10, 1)], (40, 40), (40, 40))
    assert (labels == 0).sum() == 12  # 13-pixel disk minus the later click's pixel
    assert labels[10, 11] == 1


def test_stroke_and_box_cover_their_pixels():
    labels = rasterise(
        [Stroke(((0, 5), (19, 5)), class_id=2, width=1.0), Box(2, 10, 4, 12, class_id=1)],
        (20, 20),
        (20, 20),
    )
    assert (labels[5] == 2).all()
    assert (labels[10:13, 2:5] == 1).all() and (labels == 1).sum() == 9


@pytest.mark.parametrize(
    'ann, match',
    [
        (Click(200, 5, 0), 'outside'),
        (Click(-3, 5, 0), 'outside'),
        (Click(float('nan'), 5, 0), 'outside'),
        (Click(5, 5, 7), 'class_id 7'),
        (Stroke(((1, 1),), 0), 'at least 2 points'),
        (Stroke(((1, 1), (2, 2)), 0, width=0), 'width'),
        (Box(10, 10, 5, 12, 1), 'x1 < x0'),
        (Box(0, 0, 120, 5, 1), 'outside'),
    ],
)
def test_bad_annotations_raise_clear_errors(ann, match):
    with pytest.raises(AnnotationError, match=match):
        validate_annotation(ann, width=100, height=50, num_classes=3)


def test_json_round_trip_and_errors():
    for a in (Click(1.5, 2.0, 1), Stroke(((0, 0), (3, 4)), 2, 2.0), Box(1, 2, 3, 4, 0)):
        assert annotation_from_dict(a.to_dict()) == a
    with pytest.raises(AnnotationError, match='unknown annotation type'):
        annotation_from_dict({'type': 'lasso'})
    with pytest.raises(AnnotationError, match="missing field 'y'"):
        annotation_from_dict({'type': 'click', 'x': 1, 'class_id': 0})
    with pytest.raises(AnnotationError, match='malformed'):
        annotation_from_dict({'type': 'click', 'x': 'left', 'y': 1, 'class_id': 0})


def test_a_mask_annotation_round_trips_and_rasterises_to_its_labels():
    from segdip_ros.core import Mask

    labels = np.full((30, 40), 255, np.uint8)
    labels[5:15, 10:30] = 1
    labels[20:, :] = 0
    m = Mask(labels)
    d = m.to_dict()
    assert d['type'] == 'mask' and isinstance(d['png'], str)
    back = annotation_from_dict(d)
    assert back == m and back.class_ids == (0, 1)
    validate_annotation(m, 40, 30, 2)
    work = rasterise([m], (30, 40), (15, 20))
    assert (work[3:7, 6:14] == 1).all() and (work[11:, :] == 0).all()
    assert (work[0, :] == UNLABELLED).all()
    # a click after the mask overwrites it where they overlap (later wins)
    work = rasterise([m, Click(20, 10, 0)], (30, 40), (15, 20))
    assert work[5, 10] == 0


@pytest.mark.parametrize(
    'labels, match',
    [
        (np.zeros((30, 41), np.uint8), 'mask is 41x30, the image is 40x30'),
        (np.full((30, 40), 2, np.uint8), r'class ids \[2\]'),
        (np.full((30, 40), 255, np.uint8), 'labels no pixel'),
        (np.zeros((30, 40), np.uint16), 'uint8'),
    ],
)
def test_bad_masks_are_refused_with_the_reason(labels, match):
    from segdip_ros.core import Mask

    with pytest.raises(AnnotationError, match=match):
        validate_annotation(Mask(labels), 40, 30, 2)


def test_a_bad_mask_json_is_refused_with_the_reason():
    for data, match in [
        ({'type': 'mask'}, 'needs "png"'),
        ({'type': 'mask', 'png': 'not base64!'}, 'not base64'),
        ({'type': 'mask', 'png': 'aGVsbG8='}, 'does not decode'),
        ({'type': 'mask', 'png': 'A' * (8 * 1024 * 1024 + 4)}, 'over the limit'),
    ]:
        with pytest.raises(AnnotationError, match=match):
            annotation_from_dict(data)
    import base64

    import cv2

    ok, png = cv2.imencode('.png', np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(AnnotationError, match='single-channel'):
        annotation_from_dict({'type': 'mask', 'png': base64.b64encode(png.tobytes()).decode()})
