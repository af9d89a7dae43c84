"""User annotations (click, stroke, box, whole mask) and their rasterisation at working size.

Annotations are given in ORIGINAL image pixels (x = column, y = row, pixel centres at
integer + 0.5 are not assumed: (0, 0) is the top-left pixel, (w-1, h-1) the bottom-right one)
and validated against the image before anything in a session changes.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import asdict, dataclass
from typing import Any, Union

import cv2
import numpy as np

from .errors import AnnotationError

__all__ = [
    'MASK_UNLABELLED',
    'MAX_MASK_BYTES',
    'UNLABELLED',
    'Annotation',
    'Box',
    'Click',
    'Mask',
    'Stroke',
    'annotation_from_dict',
    'rasterise',
    'validate_annotation',
]

UNLABELLED = -1  # value of unannotated pixels in a rasterised label map
MASK_UNLABELLED = 255  # value of unlabelled pixels in a Mask (as in the node's ~/mask)
MAX_MASK_BYTES = 8 * 1024 * 1024  # largest base64 PNG accepted in a mask annotation


def _finite(*values: float) -> bool:
    return all(math.isfinite(float(v)) for v in values)


@dataclass(frozen=True)
class Click:
    """One pixel (or a disk of `radius` working-resolution pixels) of class `class_id`."""

    x: float
    y: float
    class_id: int
    radius: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {
            'type': 'click',
            'x': float(self.x),
            'y': float(self.y),
            'class_id': int(self.class_id),
        }
        if self.radius is not None:
            d['radius'] = int(self.radius)
        return d


@dataclass(frozen=True)
class Stroke:
    """A polyline of `width` original pixels; every pixel it covers is labelled."""

    points: tuple[tuple[float, float], ...]
    class_id: int
    width: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            'type': 'stroke',
            'points': [[float(x), float(y)] for x, y in self.points],
            'class_id': int(self.class_id),
            'width': float(self.width),
        }


@dataclass(frozen=True)
class Box:
    """All pixels inside the axis-aligned box (x0, y0)-(x1, y1), corners included."""

    x0: float
    y0: float
    x1: float
    y1: float
    class_id: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d['type'] = 'box'
        return d


@dataclass(frozen=True, eq=False)
class Mask:
    """A whole label image: (H, W) uint8 class ids at the image's original size, 255 where
    unlabelled. From a program, a detector, or the DAVIS protocol's first-frame mask; every
    labelled pixel is a hard label, as a stroke's pixels are.

    JSON form: {"type": "mask", "png": "<base64 of a single-channel 8-bit PNG>"}."""

    labels: np.ndarray

    @property
    def class_ids(self) -> tuple[int, ...]:
        """The classes the mask labels (255 excluded)."""
        ids = np.unique(self.labels)
        return tuple(int(c) for c in ids if c != MASK_UNLABELLED)

    @property
    def class_id(self) -> int:
        """The largest class id it labels (what a class check has to accept)."""
        ids = self.class_ids
        return max(ids) if ids else 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mask) and np.array_equal(self.labels, other.labels)

    def __hash__(self) -> int:
        return hash((self.labels.shape, self.labels.tobytes()))

    def to_dict(self) -> dict[str, Any]:
        ok, png = cv2.imencode('.png', np.ascontiguousarray(self.labels, np.uint8))
        if not ok:
            raise AnnotationError('mask cannot be encoded as PNG')
        return {'type': 'mask', 'png': base64.b64encode(png.tobytes()).decode('ascii')}


def _mask_from_dict(data: dict[str, Any]) -> Mask:
    text = data.get('png')
    if not isinstance(text, str):
        raise AnnotationError('mask annotation needs "png": a base64 string of a mono8 PNG')
    if len(text) > MAX_MASK_BYTES:
        raise AnnotationError(
            f'mask annotation of {len(text)} bytes is over the limit of {MAX_MASK_BYTES}'
        )
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise AnnotationError(f'mask annotation: "png" is not base64 ({err})') from err
    labels = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise AnnotationError('mask annotation: "png" does not decode as an image')
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise AnnotationError(
            f'mask annotation must be a single-channel 8-bit image, got '
            f'shape {labels.shape} {labels.dtype}'
        )
    return Mask(labels)


Annotation = Union[Click, Stroke, Box, Mask]


def annotation_from_dict(data: dict[str, Any]) -> Annotation:
    """Parse {'type': 'click'|'stroke'|'box', ...} (the JSON schema of ~/annotations)."""
    if not isinstance(data, dict):
        raise AnnotationError(f'annotation must be a JSON object, got {type(data).__name__}')
    kind = data.get('type')
    try:
        if kind == 'click':
            radius = data.get('radius')
            return Click(
                float(data['x']),
                float(data['y']),
                int(data['class_id']),
                None if radius is None else int(radius),
            )
        if kind == 'stroke':
            pts = tuple((float(p[0]), float(p[1])) for p in data['points'])
            return Stroke(pts, int(data['class_id']), float(data.get('width', 1.0)))
        if kind == 'box':
            return Box(
                float(data['x0']),
                float(data['y0']),
                float(data['x1']),
                float(data['y1']),
                int(data['class_id']),
            )
        if kind == 'mask':
            return _mask_from_dict(data)
    except KeyError as err:
        raise AnnotationError(f'{kind} annotation is missing field {err.args[0]!r}') from err
    except (TypeError, ValueError, IndexError) as err:
        raise AnnotationError(f'malformed {kind} annotation {data!r}: {err}') from err
    raise AnnotationError(
        f"unknown annotation type {kind!r} (expected 'click', 'stroke', 'box' or 'mask')"
    )


def validate_annotation(a: Annotation, width: int, height: int, num_classes: int) -> None:
    """Raise AnnotationError unless `a` lies inside a width x height image with a known class."""
    if isinstance(a, Mask):
        _validate_mask(a, width, height, num_classes)
        return
    if not isinstance(a, (Click, Stroke, Box)):
        raise AnnotationError(f'not an annotation: {a!r}')
    if not 0 <= int(a.class_id) < num_classes:
        raise AnnotationError(f'class_id {a.class_id} is not in [0, {num_classes - 1}]')

    def inside(x: float, y: float) -> bool:
        return _finite(x, y) and -0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5

    if isinstance(a, Click):
        if not inside(a.x, a.y):
            raise AnnotationError(f'click ({a.x}, {a.y}) is outside the {width}x{height} image')
        if a.radius is not None and a.radius < 0:
            raise AnnotationError(f'click radius must be >= 0, got {a.radius}')
    elif isinstance(a, Stroke):
        if len(a.points) < 2:
            raise AnnotationError(f'a stroke needs at least 2 points, got {len(a.points)}')
        if not (_finite(a.width) and a.width > 0):
            raise AnnotationError(f'stroke width must be > 0, got {a.width}')
        for x, y in a.points:
            if not inside(x, y):
                raise AnnotationError(
                    f'stroke point ({x}, {y}) is outside the {width}x{height} image'
                )
    else:
        for x, y in ((a.x0, a.y0), (a.x1, a.y1)):
            if not inside(x, y):
                raise AnnotationError(
                    f'box corner ({x}, {y}) is outside the {width}x{height} image'
                )
        if a.x1 < a.x0 or a.y1 < a.y0:
            raise AnnotationError(f'box ({a.x0}, {a.y0})-({a.x1}, {a.y1}) has x1 < x0 or y1 < y0')


def _validate_mask(a: Mask, width: int, height: int, num_classes: int) -> None:
    labels = a.labels
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype != np.uint8:
        raise AnnotationError(
            'a mask must be an (H, W) uint8 array of class ids, got '
            f'{getattr(labels, "shape", None)} {getattr(labels, "dtype", None)}'
        )
    if labels.shape != (height, width):
        raise AnnotationError(
            f'mask is {labels.shape[1]}x{labels.shape[0]}, the image is {width}x{height}'
        )
    bad = [c for c in a.class_ids if c >= num_classes]
    if bad:
        raise AnnotationError(
            f'mask holds class ids {bad} not in [0, {num_classes - 1}] (255 = unlabelled)'
        )
    if not a.class_ids:
        raise AnnotationError('mask labels no pixel (all 255)')


def rasterise(
    annotations: list[Annotation] | tuple[Annotation, ...],
    orig_size: tuple[int, int],
    work_size: tuple[int, int],
    click_radius: int = 0,
    radius_scale: float = 1.0,
) -> np.ndarray:
    """Label map (h, w) int64 at working resolution, UNLABELLED where nothing is annotated.

    Click radii are in working pixels; `radius_scale` converts them when the label map is
    smaller than the working resolution (a network running at `network_scale`).

    Later annotations overwrite earlier ones where they overlap, as a user correcting would expect.
    """
    oh, ow = orig_size
    h, w = work_size
    sx, sy = w / ow, h / oh
    labels = np.full((h, w), UNLABELLED, dtype=np.int64)

    def to_work(x: float, y: float) -> tuple[int, int]:
        return (min(w - 1, max(0, int((x + 0.5) * sx))), min(h - 1, max(0, int((y + 0.5) * sy))))

    for a in annotations:
        if isinstance(a, Mask):
            small = cv2.resize(a.labels, (w, h), interpolation=cv2.INTER_NEAREST)
            labels[small != MASK_UNLABELLED] = small[small != MASK_UNLABELLED]
            continue
        canvas = np.zeros((h, w), np.uint8)
        if isinstance(a, Click):
            r = int(round((click_radius if a.radius is None else a.radius) * radius_scale))
            cx, cy = to_work(a.x, a.y)
            if r <= 0:
                canvas[cy, cx] = 1
            else:
                cv2.circle(canvas, (cx, cy), r, 1, thickness=-1)
        elif isinstance(a, Stroke):
            pts = np.array([to_work(x, y) for x, y in a.points], np.int32).reshape(-1, 1, 2)
            thick = max(1, int(round(a.width * max(sx, sy))))
            cv2.polylines(canvas, [pts], False, 1, thickness=thick)
        else:
            x0, y0 = to_work(a.x0, a.y0)
            x1, y1 = to_work(a.x1, a.y1)
            canvas[y0 : y1 + 1, x0 : x1 + 1] = 1
        labels[canvas > 0] = int(a.class_id)
    return labels
