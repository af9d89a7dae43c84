# SPDX-License-Identifier: Apache-2.0
"""What segdip_web sends to browsers, built from the node's messages (no rclpy, no aiohttp).

Why a module of its own: JPEG encoding of the four views, the class list from `label_info`
and the status line from `/diagnostics` are plain functions of message fields, testable with
plain objects, and the same for every transport.
"""

from __future__ import annotations

import json
import re
from typing import Any

import cv2
import numpy as np

from segdip_ros.ros.convert import compressed_msg_to_rgb, image_msg_to_rgb

__all__ = [
    'STATUS_KEYS',
    'LabelInfoError',
    'encode_view',
    'frame_meta',
    'parse_label_info',
    'status_from_diagnostics',
]

_HEX = re.compile(r'^#[0-9a-fA-F]{6}$')
STATUS_KEYS = (
    'state',
    'iterations_per_second',
    'frame_index',
    'annotations',
    'device',
    'annotations_accepted',
    'annotations_rejected',
    'iteration',
    'mode',
)


class LabelInfoError(ValueError):
    """The node's label info text is not the expected JSON."""


def frame_meta(header: Any, width: int, height: int) -> dict[str, Any]:
    """The metadata sent with a frame: size and the header of the frame it shows."""
    return {
        'width': int(width),
        'height': int(height),
        'stamp': {'sec': int(header.stamp.sec), 'nanosec': int(header.stamp.nanosec)},
        'frame_id': str(header.frame_id)[:256],
    }


def _float_image(msg: Any) -> np.ndarray:
    """(H, W) float32 of a 32FC1 Image, honouring `step` and `is_bigendian`."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h < 1 or w < 1 or step < 4 * w:
        raise ValueError(f'32FC1 image {w}x{h} with step {step} is malformed')
    buf = np.frombuffer(bytes(msg.data), np.uint8)
    if buf.size < step * h:
        raise ValueError(f'32FC1 image data has {buf.size} bytes, needs {step * h}')
    rows = buf[: step * h].reshape(h, step)[:, : 4 * w].copy()
    return rows.view('>f4' if msg.is_bigendian else '<f4').reshape(h, w).astype(np.float32)


def _confidence_bgr(msg: Any) -> np.ndarray:
    """32FC1 max class probability (0..1) -> a false-colour BGR image (viridis)."""
    raw = _float_image(msg)
    grey = (np.clip(np.nan_to_num(raw, nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS)


def encode_view(view: str, msg: Any, quality: int = 80) -> tuple[dict[str, Any], bytes]:
    """(meta, JPEG bytes) of one message of `view`.

    msg: sensor_msgs/Image (any encoding ros.convert reads; 32FC1 for 'confidence') or
    sensor_msgs/CompressedImage. Raises ImageConversionError / ValueError when it cannot.
    """
    if hasattr(msg, 'format') and not hasattr(msg, 'encoding'):
        bgr = cv2.cvtColor(compressed_msg_to_rgb(msg), cv2.COLOR_RGB2BGR)
    elif view == 'confidence' or str(msg.encoding).upper() == '32FC1':
        bgr = _confidence_bgr(msg)
    else:
        bgr = cv2.cvtColor(image_msg_to_rgb(msg), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f'JPEG encoding of a {bgr.shape[1]}x{bgr.shape[0]} {view} image failed')
    return frame_meta(msg.header, bgr.shape[1], bgr.shape[0]), buf.tobytes()


def parse_label_info(text: str) -> dict[str, Any]:
    """The node's label info JSON -> {"classes": [{"id", "name", "color_hex"}],
    "unlabelled_id"}, checked: ids 0..n-1 in order, names cut to 64 characters, colours
    '#rrggbb' (grey when not). Raises LabelInfoError with the reason."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise LabelInfoError(f'label info is not JSON: {err}') from err
    classes = data.get('classes') if isinstance(data, dict) else None
    if not isinstance(classes, list) or not 1 <= len(classes) <= 254:
        raise LabelInfoError('label info has no "classes" list of 1..254 entries')
    out = []
    for i, c in enumerate(classes):
        if not isinstance(c, dict) or c.get('id') != i:
            raise LabelInfoError(f'label info class {i}: expected an object with "id": {i}')
        color = c.get('color_hex')
        out.append(
            {
                'id': i,
                'name': str(c.get('name', f'class_{i}'))[:64],
                'color_hex': color if isinstance(color, str) and _HEX.match(color) else '#808080',
            }
        )
    unlabelled = data.get('unlabelled_id', 255)
    return {'classes': out, 'unlabelled_id': unlabelled if isinstance(unlabelled, int) else 255}


def status_from_diagnostics(array: Any, node_names: tuple[str, ...]) -> dict[str, Any] | None:
    """The status of the segdip node in one DiagnosticArray, None when it has none.

    A status belongs to the node when its name, before the first ':', is one of `node_names`
    (the node's base name or its fully qualified name)."""
    for st in array.status:
        owner = str(st.name).split(':', 1)[0].strip()
        if owner in node_names:
            level = st.level[0] if isinstance(st.level, (bytes, bytearray)) else int(st.level)
            values = {kv.key: str(kv.value)[:128] for kv in st.values if kv.key in STATUS_KEYS}
            return {'level': int(level), 'message': str(st.message)[:256], 'values': values}
    return None
