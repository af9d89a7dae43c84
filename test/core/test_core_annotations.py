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
    labels = rasterise([Stroke(((0, 5), (19, 5)), class_id=2, width=1.0),
                        Box(2, 10, 4, 12, class_id=1)], (20, 20), (20, 20))
    assert (labels[5] == 2).all()
    assert (labels[10:13, 2:5] == 1).all() and (labels == 1).sum() == 9


@pytest.mark.parametrize('ann, match', [
    (Click(200, 5, 0), 'outside'),
    (Click(-3, 5, 0), 'outside'),
    (Click(float('nan'), 5, 0), 'outside'),
    (Click(5, 5, 7), 'class_id 7'),
    (Stroke(((1, 1),), 0), 'at least 2 points'),
    (Stroke(((1, 1), (2, 2)), 0, width=0), 'width'),
    (Box(10, 10, 5, 12, 1), 'x1 < x0'),
    (Box(0, 0, 120, 5, 1), 'outside'),
])
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
