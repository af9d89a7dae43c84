# SPDX-License-Identifier: Apache-2.0
"""Validation of the messages a browser sends to segdip_web (no ROS, no aiohttp).

Why a module of its own: every websocket message is untrusted input that ends up on the
node's `~/annotations` topic or calls one of its services. It is checked here as strictly as
the node checks `~/annotations` (size, JSON types, finite numbers, ranges, known class, point
count) and rebuilt field by field, so nothing a browser adds passes through.

Browser -> server messages (one JSON object each; `id`: 1-64 chars of [A-Za-z0-9_.:-],
unique per message, used to drop duplicates)::

    {"id": "k3-7", "op": "annotate", "annotation": {<~/annotations schema>}}
    {"id": "k3-8", "op": "service", "name": "undo" | "clear" | "reset" | "next_frame" | "save"}
    {"id": "k3-9", "op": "view", "view": "overlay" | "image" | "confidence" | "reconstruction"}
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from segdip_ros.node.inputs import InputError, parse_annotation_json

__all__ = [
    'SERVICES',
    'VIEWS',
    'BrowserMessage',
    'Limits',
    'MessageError',
    'parse_browser_message',
]

VIEWS = ('overlay', 'image', 'confidence', 'reconstruction')
SERVICES = ('undo', 'clear', 'reset', 'next_frame', 'save')
_ID = re.compile(r'^[A-Za-z0-9_.:-]{1,64}$')
_OPS = ('annotate', 'service', 'view')
_KINDS = ('click', 'stroke', 'box', 'undo', 'clear')


class MessageError(ValueError):
    """A browser message is refused; the text is shown in the page. `msg_id` when known."""

    def __init__(self, message: str, msg_id: str | None = None) -> None:
        super().__init__(message)
        self.msg_id = msg_id


@dataclass(frozen=True)
class Limits:
    """What a browser message may contain.

    image_size: (height, width) of the frames the node publishes, None before the first one
    (coordinates are then only checked against `max_coordinate`).
    """

    num_classes: int
    image_size: tuple[int, int] | None = None
    max_bytes: int = 65536
    max_points: int = 2000
    max_depth: int = 5
    max_coordinate: float = 65535.0
    min_width: float = 0.5
    max_width: float = 100.0


@dataclass(frozen=True)
class BrowserMessage:
    """A validated message. annotation_json: the exact text for `~/annotations` (op annotate);
    name: the service (op service) or the view (op view)."""

    msg_id: str
    op: str
    annotation_json: str = ''
    name: str = ''
    summary: str = ''


def _depth(value: Any, limit: int, level: int = 0) -> int:
    """Nesting depth of lists/objects ({} is 1), looking no deeper than `limit` + 1."""
    if not isinstance(value, (list, dict)):
        return level
    if level >= limit:
        return level + 1
    items = value.values() if isinstance(value, dict) else value
    return max([level + 1] + [_depth(v, limit, level + 1) for v in items])


def _number(data: dict[str, Any], key: str, lo: float, hi: float, what: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MessageError(f'{what}: "{key}" must be a number, got {type(value).__name__}')
    value = float(value)
    if not math.isfinite(value):
        raise MessageError(f'{what}: "{key}" must be finite, got {value}')
    if not lo <= value <= hi:
        raise MessageError(f'{what}: "{key}" = {value:g} is outside [{lo:g}, {hi:g}]')
    return value


def _coord_range(limits: Limits) -> tuple[tuple[float, float], tuple[float, float]]:
    """Allowed (x range, y range): up to one pixel outside the image is clamped onto it."""
    if limits.image_size is None:
        m = limits.max_coordinate
        return (0.0, m), (0.0, m)
    h, w = limits.image_size
    return (-1.0, float(w)), (-1.0, float(h))


def _clamp(x: float, y: float, limits: Limits) -> tuple[float, float]:
    if limits.image_size is None:
        return x, y
    h, w = limits.image_size
    return min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)


def _class_id(data: dict[str, Any], limits: Limits, what: str) -> int:
    if limits.num_classes < 1:
        raise MessageError(f'{what}: no class list from the node yet (is it running?)')
    value = data.get('class_id')
    if isinstance(value, bool) or not isinstance(value, int):
        raise MessageError(f'{what}: "class_id" must be an integer, got {type(value).__name__}')
    if not 0 <= value < limits.num_classes:
        raise MessageError(
            f'{what}: unknown class {value} (the node has classes 0..{limits.num_classes - 1})'
        )
    return value


def _stamp(data: dict[str, Any]) -> dict[str, int] | None:
    st = data.get('stamp')
    if st is None:
        return None
    if not isinstance(st, dict) or set(st) - {'sec', 'nanosec'}:
        raise MessageError('"stamp" must be {"sec": S, "nanosec": N}')
    sec, nsec = st.get('sec'), st.get('nanosec', 0)
    for v in (sec, nsec):
        if isinstance(v, bool) or not isinstance(v, int):
            raise MessageError('"stamp" sec and nanosec must be integers')
    if not (0 <= sec < 2**31 and 0 <= nsec < 1_000_000_000):
        raise MessageError(f'"stamp" out of range: sec {sec}, nanosec {nsec}')
    return {'sec': sec, 'nanosec': nsec}


def _annotation(data: Any, limits: Limits) -> tuple[dict[str, Any], str]:
    """The annotation rebuilt from validated fields, and a one-line summary."""
    if not isinstance(data, dict):
        raise MessageError(f'"annotation" must be an object, got {type(data).__name__}')
    kind = data.get('type')
    if kind not in _KINDS:
        raise MessageError(
            f'unknown annotation type {kind!r} (expected one of {", ".join(_KINDS)})'
        )
    out: dict[str, Any] = {'type': kind}
    (xlo, xhi), (ylo, yhi) = _coord_range(limits)
    if kind == 'click':
        x = _number(data, 'x', xlo, xhi, 'click')
        y = _number(data, 'y', ylo, yhi, 'click')
        x, y = _clamp(x, y, limits)
        out.update(x=x, y=y, class_id=_class_id(data, limits, 'click'))
        summary = f'click of class {out["class_id"]} at ({x:.0f}, {y:.0f})'
    elif kind == 'stroke':
        pts = data.get('points')
        if not isinstance(pts, list):
            raise MessageError('stroke: "points" must be a list of [x, y]')
        if not 2 <= len(pts) <= limits.max_points:
            raise MessageError(
                f'stroke: {len(pts)} points; a stroke has 2 to {limits.max_points} points'
            )
        clean = []
        for p in pts:
            if not isinstance(p, list) or len(p) != 2:
                raise MessageError('stroke: every point must be [x, y]')
            pt = {'x': p[0], 'y': p[1]}
            clean.append(
                list(
                    _clamp(
                        _number(pt, 'x', xlo, xhi, 'stroke point'),
                        _number(pt, 'y', ylo, yhi, 'stroke point'),
                        limits,
                    )
                )
            )
        width = _number(data, 'width', limits.min_width, limits.max_width, 'stroke')
        out.update(points=clean, class_id=_class_id(data, limits, 'stroke'), width=width)
        summary = f'stroke of class {out["class_id"]}, {len(clean)} points, width {width:g}'
    elif kind == 'box':
        vals = [
            _number(data, k, lo, hi, 'box')
            for k, lo, hi in (
                ('x0', xlo, xhi),
                ('y0', ylo, yhi),
                ('x1', xlo, xhi),
                ('y1', ylo, yhi),
            )
        ]
        x0, y0 = _clamp(vals[0], vals[1], limits)
        x1, y1 = _clamp(vals[2], vals[3], limits)
        if x1 < x0 or y1 < y0:
            raise MessageError(
                f'box: corner ({x1:g}, {y1:g}) is above or left of ({x0:g}, {y0:g})'
            )
        out.update(x0=x0, y0=y0, x1=x1, y1=y1, class_id=_class_id(data, limits, 'box'))
        summary = f'box of class {out["class_id"]} ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f})'
    else:
        summary = kind
    stamp = _stamp(data)
    if stamp is not None:
        out['stamp'] = stamp
    return out, summary


def parse_browser_message(text: str | bytes, limits: Limits) -> BrowserMessage:
    """One websocket text message -> BrowserMessage; MessageError(reason) when refused."""
    if isinstance(text, bytes):
        raise MessageError('binary messages are not accepted; send JSON text')
    if len(text) > limits.max_bytes:
        raise MessageError(
            f'message of {len(text)} characters is over the limit of {limits.max_bytes}'
        )
    try:
        data = json.loads(text)
    except RecursionError as err:
        raise MessageError('message is nested too deeply') from err
    except ValueError as err:
        raise MessageError(f'not JSON: {err}') from err
    if not isinstance(data, dict):
        raise MessageError(f'expected one JSON object, got {type(data).__name__}')
    if _depth(data, limits.max_depth) > limits.max_depth:
        raise MessageError(f'message is nested deeper than {limits.max_depth} levels')
    msg_id = data.get('id')
    if not isinstance(msg_id, str) or not _ID.match(msg_id):
        raise MessageError('"id" must be 1-64 characters of letters, digits and _.:-')
    op = data.get('op')
    try:
        if op == 'annotate':
            ann, summary = _annotation(data.get('annotation'), limits)
            text_out = json.dumps(ann, separators=(',', ':'))
            try:  # the node's own parser must accept what is published
                parse_annotation_json(text_out, limits.num_classes)
            except InputError as err:
                raise MessageError(str(err)) from err
            return BrowserMessage(msg_id, op, annotation_json=text_out, summary=summary)
        if op == 'service':
            name = data.get('name')
            if name not in SERVICES:
                raise MessageError(
                    f'unknown service {name!r} (expected one of {", ".join(SERVICES)})'
                )
            return BrowserMessage(msg_id, op, name=name, summary=name)
        if op == 'view':
            view = data.get('view')
            if view not in VIEWS:
                raise MessageError(f'unknown view {view!r} (expected one of {", ".join(VIEWS)})')
            return BrowserMessage(msg_id, op, name=view, summary=f'view {view}')
    except MessageError as err:
        raise MessageError(str(err), msg_id) from err
    raise MessageError(f'unknown op {op!r} (expected one of {", ".join(_OPS)})', msg_id)
