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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segdip_ros.core import (
    Annotation,
    AnnotationError,
    Box,
    Click,
    Mask,
    Stroke,
    annotation_from_dict,
)
from segdip_ros.core.annotations import validate_annotation
from segdip_ros.ros.encodings import ImageConversionError, image_msg_to_numpy_raw

__all__ = [
    'MAX_COORDINATE',
    'MAX_JSON_CHARS',
    'MAX_JSON_DEPTH',
    'MAX_STROKE_POINTS',
    'MAX_WIDTH',
    'Command',
    'InputError',
    'WarningLimiter',
    'check_class',
    'check_fits',
    'command_to_dict',
    'mask_from_image_msg',
    'ns_to_stamp_dict',
    'parse_annotation_json',
    'point_to_click',
    'polygon_to_stroke',
    'roi_to_box',
    'stamp_to_ns',
]

# Limits on one input message: far above anything a person or a labelling tool sends, low
# enough that a hostile message costs the node milliseconds, not seconds or its stack.
MAX_JSON_CHARS = 1_000_000  # one ~/annotations message
MAX_JSON_DEPTH = 8  # the schema nests 3 deep (stroke points)
MAX_STROKE_POINTS = 10_000  # points of one stroke
MAX_COORDINATE = 1e6  # |x|, |y| in pixels, before the image-size check
MAX_WIDTH = 1000.0  # stroke width and click radius, pixels


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
    id: its record id in the annotation log once accepted ('' without a log).
    """

    kind: str
    annotation: Annotation | None = None
    stamp_ns: int = 0
    source: str = ''
    id: str = ''


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time-like (sec, nanosec) -> int nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp_dict(ns: int) -> dict[str, int]:
    """Nanoseconds -> {"sec": S, "nanosec": N} as in the JSON schema."""
    return {'sec': int(ns // 1_000_000_000), 'nanosec': int(ns % 1_000_000_000)}


def command_to_dict(cmd: Command) -> dict[str, Any]:
    """A command in the shared JSON schema (with its frame stamp when it has one)."""
    d: dict[str, Any] = (
        cmd.annotation.to_dict() if cmd.annotation is not None else {'type': cmd.kind}
    )
    if cmd.stamp_ns:
        d['stamp'] = ns_to_stamp_dict(cmd.stamp_ns)
    return d


def check_class(class_id: int, num_classes: int) -> None:
    """InputError unless 0 <= class_id < num_classes."""
    if not 0 <= class_id < num_classes:
        raise InputError(
            'class',
            f'class_id {class_id} is not in [0, {num_classes - 1}] (num_classes={num_classes})',
        )


def _json_stamp(data: dict[str, Any]) -> int:
    st = data.get('stamp')
    if st is None:
        return 0
    try:
        sec, nsec = int(st['sec']), int(st.get('nanosec', 0))
    except (TypeError, KeyError, ValueError) as err:
        raise InputError(
            'json', f'bad "stamp" {st!r}: expected {{"sec": S, "nanosec": N}}'
        ) from err
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise InputError('json', f'bad "stamp" {st!r}: sec >= 0, 0 <= nanosec < 1e9')
    return sec * 1_000_000_000 + nsec


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True when `text` nests arrays/objects deeper than `limit` (strings skipped), checked
    without parsing: json.loads recurses once per level and a few thousand `[` exhaust
    Python's stack (RecursionError)."""
    depth = 0
    for m in _TOKENS.finditer(text):
        c = m.group()
        if c in '[{':
            depth += 1
            if depth > limit:
                return True
        elif c in ']}':
            depth -= 1
    return False


def _no_constant(name: str) -> float:
    raise ValueError(f'{name} is not a number the schema accepts')


def _finite_fields(data: dict[str, Any]) -> None:
    """InputError unless every coordinate is a finite number within MAX_COORDINATE and the
    sizes are sane (the engine checks the image bounds later)."""
    kind = data.get('type')
    if kind == 'stroke':
        pts = data.get('points')
        if not isinstance(pts, list):
            raise InputError('json', '~/annotations: stroke "points" must be a list')
        if len(pts) > MAX_STROKE_POINTS:
            raise InputError(
                'stroke',
                f'~/annotations: stroke of {len(pts)} points refused '
                f'(at most {MAX_STROKE_POINTS})',
            )
        values = [v for p in pts if isinstance(p, list) for v in p[:2]]
    else:
        values = [data.get(k) for k in ('x', 'y', 'x0', 'y0', 'x1', 'y1') if k in data]
    for k in ('width', 'radius'):
        if data.get(k) is not None:
            w = data[k]
            if (
                not isinstance(w, (int, float))
                or isinstance(w, bool)
                or not (math.isfinite(w) and 0 <= w <= MAX_WIDTH)
            ):
                raise InputError(
                    'json', f'~/annotations: "{k}" {w!r} is not in [0, {MAX_WIDTH:g}]'
                )
    for v in values:
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or abs(v) > MAX_COORDINATE
        ):
            raise InputError(
                'outside',
                f'~/annotations: coordinate {str(v)[:40]} is not a '
                f'finite number within +-{MAX_COORDINATE:g} px',
            )
    if kind == 'box' and all(
        isinstance(data.get(k), (int, float)) for k in ('x0', 'y0', 'x1', 'y1')
    ):
        if data['x1'] < data['x0'] or data['y1'] < data['y0']:
            raise InputError(
                'box',
                f'~/annotations: box ({data["x0"]}, {data["y0"]})-'
                f'({data["x1"]}, {data["y1"]}) has a negative size',
            )


def parse_annotation_json(text: str, num_classes: int) -> Command:
    """One `~/annotations` message -> Command; InputError('json'|'class'|'outside'|'box'|
    'stroke', reason) if bad. Size and nesting are checked before parsing."""
    if not isinstance(text, str):
        raise InputError('json', f'~/annotations: expected text, got {type(text).__name__}')
    if len(text) > MAX_JSON_CHARS:
        raise InputError(
            'json',
            f'~/annotations: message of {len(text)} characters refused (at most {MAX_JSON_CHARS})',
        )
    if json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise InputError(
            'json', f'~/annotations: JSON nested deeper than {MAX_JSON_DEPTH} levels refused'
        )
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, TypeError, RecursionError) as err:
        raise InputError(
            'json', f'~/annotations: not JSON ({str(err)[:80]}): {text[:80]!r}'
        ) from err
    if not isinstance(data, dict):
        raise InputError(
            'json', f'~/annotations: expected one JSON object, got {type(data).__name__}'
        )
    stamp = _json_stamp(data)
    kind = data.get('type')
    if kind in ('undo', 'clear'):
        return Command(kind, None, stamp, 'annotations')
    if 'class_id' not in data and kind in ('click', 'stroke', 'box'):
        raise InputError('json', f'~/annotations: {kind} needs an explicit "class_id"')
    cid = data.get('class_id')
    if isinstance(cid, bool) or not (
        isinstance(cid, int) or (isinstance(cid, float) and cid.is_integer())
    ):
        if kind in ('click', 'stroke', 'box'):
            raise InputError(
                'class', f'~/annotations: class_id {str(data["class_id"])[:40]} is not an integer'
            )
    _finite_fields(data)
    try:
        ann = annotation_from_dict(data)
    except AnnotationError as err:
        raise InputError('json', f'~/annotations: {err}') from err
    check_class(int(ann.class_id), num_classes)
    return Command('add', ann, stamp, 'annotations')


def _finite_xy(x: float, y: float, what: str) -> None:
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InputError('outside', f'{what} ({x}, {y}) is not finite')


def point_to_click(
    x: float, y: float, class_id: int, size: tuple[int, int] | None, what: str = 'click'
) -> Click:
    """A pixel click; clamped onto the image when within one pixel of it (rqt rounding can give
    x = width), refused (InputError 'outside') when farther out. size = (h, w) or None."""
    x, y = float(x), float(y)
    _finite_xy(x, y, what)
    if size is not None:
        h, w = size
        if not (-1.0 <= x <= w and -1.0 <= y <= h):
            raise InputError('outside', f'{what} ({x:.6g}, {y:.6g}) is outside the {w}x{h} image')
        x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    return Click(x, y, int(class_id))


def polygon_to_stroke(points: Any, class_id: int, width: float = 3.0) -> Stroke:
    """geometry_msgs/Polygon points (x, y in pixels; z ignored) -> Stroke."""
    if len(points) > MAX_STROKE_POINTS:
        raise InputError(
            'stroke', f'stroke of {len(points)} points refused (at most {MAX_STROKE_POINTS})'
        )
    if not (math.isfinite(width) and 0 < width <= MAX_WIDTH):
        raise InputError('stroke', f'stroke width {width} is not in (0, {MAX_WIDTH:g}]')
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


def check_fits(ann: Any, size: tuple[int, int] | None, num_classes: int) -> None:
    """InputError unless `ann` has a known class and fits the (h, w) image (when known)."""
    check_class(int(ann.class_id), num_classes)
    if size is None:
        return
    try:
        validate_annotation(ann, size[1], size[0], num_classes)
    except AnnotationError as err:
        key = 'mask' if isinstance(ann, Mask) else 'class' if 'class_id' in str(err) else 'outside'
        raise InputError(key, str(err)) from err


def mask_from_image_msg(msg: Any, size: tuple[int, int] | None) -> Mask:
    """~/mask_annotation (mono8 class ids, 255 = unlabelled) -> Mask; InputError('mask', why)
    for another encoding, a size other than the image's (h, w) `size`, or no labelled pixel."""
    if msg.encoding != 'mono8':
        raise InputError(
            'mask',
            f'~/mask_annotation: encoding {msg.encoding!r}, '
            'expected mono8 class ids (255 = unlabelled)',
        )
    try:
        labels = image_msg_to_numpy_raw(msg)
    except ImageConversionError as err:
        raise InputError('mask', f'~/mask_annotation: {err}') from err
    if size is not None and labels.shape != tuple(size):
        raise InputError(
            'mask',
            f'~/mask_annotation: {labels.shape[1]}x{labels.shape[0]} '
            f'mask for a {size[1]}x{size[0]} image',
        )
    mask = Mask(labels)
    if not mask.class_ids:
        raise InputError('mask', '~/mask_annotation: no pixel is labelled (all 255)')
    return mask


_DIGITS = re.compile(r'[-+]?(?:\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|nan|inf)')


class WarningLimiter:
    """Log each distinct problem once, then at most one summary per `period` seconds.

    The key is the problem's category plus its message with numbers blanked, so a stream of
    frames with the same wrong encoding gives one warning, not thirty per second. Messages
    quote the sender's text (an encoding name, the start of a JSON string), so a sender of
    ever-different text would make ever-new keys: one warning per message and tables that
    grow with the message count. Hence at most `max_keys` distinct keys per category; further
    problems of that category share the key `category:*` (one warning, then summaries).
    `counts` (per key) and `emitted` (warnings actually logged) are there for tests and
    diagnostics.
    """

    def __init__(
        self,
        log: Callable[[str], None],
        period: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 32,
    ) -> None:
        self.log = log
        self._period = period
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}
        self._keys_of: dict[str, int] = {}  # distinct keys per category
        self.counts: dict[str, int] = {}
        self.emitted = 0

    def report(self, category: str, message: str) -> bool:
        """Count a problem; log it if new or if `period` has passed. True when logged."""
        key = f'{category}:{_DIGITS.sub("#", message)}'
        if key not in self.counts:
            if self._keys_of.get(category, 0) >= self._max_keys:
                key = f'{category}:*'
            else:
                self._keys_of[category] = self._keys_of.get(category, 0) + 1
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
        return sum(
            v for k, v in self.counts.items() if category is None or k.startswith(category + ':')
        )
