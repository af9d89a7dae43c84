# SPDX-License-Identifier: Apache-2.0
"""Turn the node's input messages into engine commands, and report bad input once.

No rclpy here: messages are read by attribute, so the parsing is testable with plain objects.
Coordinates are image pixels (x = column, y = row), the engine's convention.

`~/annotations` JSON schema (shared with the bag tools; keep exactly)::

    {"type": "click", "x": 12.5, "y": 40.0, "class_id": 1, "stamp": {"sec": S, "nanosec": N}}
    {"type": "stroke", "points": [[x, y], ...], "class_id": 1, "width": 3.0}
    {"type": "box", "x0": .., "y0": .., "x1": .., "y1": .., "class_id": 1}
    {"type": "undo"}   {"type": "clear"}            ("stamp" optional everywhere)
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from segdip_ros.core import (Annotation, AnnotationError, Box, Click, Mask, Stroke,
                             annotation_from_dict)
from segdip_ros.ros.encodings import ImageConversionError, image_msg_to_numpy_raw

__all__ = ['Command', 'InputError', 'WarningLimiter', 'stamp_to_ns', 'ns_to_stamp_dict',
           'parse_annotation_json', 'command_to_dict', 'point_to_click', 'polygon_to_stroke',
           'roi_to_box', 'check_class', 'mask_from_image_msg']


class InputError(ValueError):
    """An input message cannot become a command; `key` groups repeats for rate limiting."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Command:
    """An annotation change for the trainer.

    kind: 'add', 'undo' or 'clear'. stamp_ns: frame stamp it belongs to in nanoseconds,
    0 = "the frame the session holds when it is applied" (clicks without a header).
    """

    kind: str
    annotation: Annotation | None = None
    stamp_ns: int = 0
    source: str = ''


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time-like (sec, nanosec) -> int nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp_dict(ns: int) -> dict[str, int]:
    """Nanoseconds -> {"sec": S, "nanosec": N} as in the JSON schema."""
    return {'sec': int(ns // 1_000_000_000), 'nanosec': int(ns % 1_000_000_000)}


def command_to_dict(cmd: Command) -> dict[str, Any]:
    """A command in the shared JSON schema (with its frame stamp when it has one)."""
    d: dict[str, Any] = cmd.annotation.to_dict() if cmd.annotation is not None \
        else {'type': cmd.kind}
    if cmd.stamp_ns:
        d['stamp'] = ns_to_stamp_dict(cmd.stamp_ns)
    return d


def check_class(class_id: int, num_classes: int) -> None:
    """InputError unless 0 <= class_id < num_classes."""
    if not 0 <= class_id < num_classes:
        raise InputError('class', f'class_id {class_id} is not in [0, {num_classes - 1}] '
                         f'(num_classes={num_classes})')


def _json_stamp(data: dict[str, Any]) -> int:
    st = data.get('stamp')
    if st is None:
        return 0
    try:
        sec, nsec = int(st['sec']), int(st.get('nanosec', 0))
    except (TypeError, KeyError, ValueError) as err:
        raise InputError('json', f'bad "stamp" {st!r}: expected {{"sec": S, "nanosec": N}}') \
            from err
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise InputError('json', f'bad "stamp" {st!r}: sec >= 0, 0 <= nanosec < 1e9')
    return sec * 1_000_000_000 + nsec


def parse_annotation_json(text: str, num_classes: int) -> Command:
    """One `~/annotations` message -> Command; InputError('json'|'class', reason) if bad."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as err:
        raise InputError('json', f'~/annotations: not JSON ({err}): {str(text)[:80]!r}') from err
    if not isinstance(data, dict):
        raise InputError('json', f'~/annotations: expected one JSON object, got '
                         f'{type(data).__name__}')
    stamp = _json_stamp(data)
    kind = data.get('type')
    if kind in ('undo', 'clear'):
        return Command(kind, None, stamp, 'annotations')
    if 'class_id' not in data and kind in ('click', 'stroke', 'box'):
        raise InputError('json', f'~/annotations: {kind} needs an explicit "class_id"')
    try:
        ann = annotation_from_dict(data)
    except AnnotationError as err:
        raise InputError('json', f'~/annotations: {err}') from err
    check_class(int(ann.class_id), num_classes)
    return Command('add', ann, stamp, 'annotations')


def _finite_xy(x: float, y: float, what: str) -> None:
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InputError('outside', f'{what} ({x}, {y}) is not finite')


def point_to_click(x: float, y: float, class_id: int, size: tuple[int, int] | None,
                   what: str = 'click') -> Click:
    """A pixel click; clamped onto the image when within one pixel of it (rqt rounding can give
    x = width), refused (InputError 'outside') when farther out. size = (h, w) or None."""
    x, y = float(x), float(y)
    _finite_xy(x, y, what)
    if size is not None:
        h, w = size
        if not (-1.0 <= x <= w and -1.0 <= y <= h):
            raise InputError('outside', f'{what} ({x:.1f}, {y:.1f}) is outside the {w}x{h} image')
        x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    return Click(x, y, int(class_id))


def polygon_to_stroke(points: Any, class_id: int, width: float = 3.0) -> Stroke:
    """geometry_msgs/Polygon points (x, y in pixels; z ignored) -> Stroke."""
    pts = tuple((float(p.x), float(p.y)) for p in points)
    if len(pts) < 2:
        raise InputError('stroke', f'a stroke needs at least 2 points, got {len(pts)}')
    for x, y in pts:
        _finite_xy(x, y, 'stroke point')
    return Stroke(pts, int(class_id), float(width))


def roi_to_box(roi: Any, class_id: int) -> Box:
    """sensor_msgs/RegionOfInterest -> Box with inclusive corners."""
    w, h = int(roi.width), int(roi.height)
    if w < 1 or h < 1:
        raise InputError('box', f'box of size {w}x{h} is empty')
    x0, y0 = float(roi.x_offset), float(roi.y_offset)
    return Box(x0, y0, x0 + w - 1, y0 + h - 1, int(class_id))


def mask_from_image_msg(msg: Any, size: tuple[int, int] | None) -> Mask:
    """~/mask_annotation (mono8 class ids, 255 = unlabelled) -> Mask; InputError('mask', why)
    for another encoding, a size other than the image's (h, w) `size`, or no labelled pixel."""
    if msg.encoding != 'mono8':
        raise InputError('mask', f'~/mask_annotation: encoding {msg.encoding!r}, '
                         'expected mono8 class ids (255 = unlabelled)')
    try:
        labels = image_msg_to_numpy_raw(msg)
    except ImageConversionError as err:
        raise InputError('mask', f'~/mask_annotation: {err}') from err
    if size is not None and labels.shape != tuple(size):
        raise InputError('mask', f'~/mask_annotation: {labels.shape[1]}x{labels.shape[0]} '
                         f'mask for a {size[1]}x{size[0]} image')
    mask = Mask(labels)
    if not mask.class_ids:
        raise InputError('mask', '~/mask_annotation: no pixel is labelled (all 255)')
    return mask


_DIGITS = re.compile(r'\d+(\.\d+)?')


class WarningLimiter:
    """Log each distinct problem once, then at most one summary per `period` seconds.

    The key is the problem's category plus its message with numbers blanked, so a stream of
    frames with the same wrong encoding gives one warning, not thirty per second.
    `counts` (per key) and `emitted` (warnings actually logged) are there for tests and
    diagnostics.
    """

    def __init__(self, log: Callable[[str], None], period: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self._period = period
        self._clock = clock
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.emitted = 0

    def report(self, category: str, message: str) -> bool:
        """Count a problem; log it if new or if `period` has passed. True when logged."""
        key = f'{category}:{_DIGITS.sub("#", message)}'
        self.counts[key] = self.counts.get(key, 0) + 1
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._period:
            self._since[key] = self._since.get(key, 0) + 1
            return False
        repeats = self._since.pop(key, 0)
        self._last[key] = now
        suffix = f' ({repeats} more since the last report)' if repeats else ''
        self.emitted += 1
        self.log(message + suffix)
        return True

    def total(self, category: str | None = None) -> int:
        """Problems counted (of one category, or all)."""
        return sum(v for k, v in self.counts.items()
                   if category is None or k.startswith(category + ':'))
