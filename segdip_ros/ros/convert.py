# SPDX-License-Identifier: Apache-2.0
"""Convert ROS image messages to and from numpy, without a Node.

Input side: :func:`image_msg_to_rgb` (``sensor_msgs/Image``) and
:func:`compressed_msg_to_rgb` (``sensor_msgs/CompressedImage``) both return
HxWx3 uint8 RGB, the format the SegDIP engine takes.

Fallback rule: cv_bridge is the standard converter on a ROS install, so it is
used when it imports -- but only for 8-bit encodings, so that 16-bit images
get the same ``>> 8`` scaling everywhere.  Any cv_bridge failure (an encoding
it does not know, numpy-2 ABI breakage, a wrong shape) falls back to the
numpy/OpenCV path in :mod:`segdip_ros.ros.encodings`.  The message is
validated first, so bad input gives the same :class:`ImageConversionError` on
every install.

Output side: :func:`rgb_to_image_msg`, :func:`rgb_to_jpeg_msg`, :func:`labels_to_mono8_msg`
and :func:`float_to_32fc1_msg` copy the *input* header (stamp and frame_id), never
``now()``, so bag replay and message synchronizers keep working.
"""

from __future__ import annotations

import array
import sys
import warnings
from typing import Any

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from segdip_ros.ros.encodings import (
    ENCODINGS,
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    image_msg_to_numpy_raw,
    lookup_encoding,
    raw_to_rgb,
)

__all__ = [
    'ENCODINGS',
    'SUPPORTED_ENCODINGS',
    'ImageConversionError',
    'compressed_msg_to_rgb',
    'copy_header',
    'cv_bridge_available',
    'float_to_32fc1_msg',
    'image_msg_to_numpy_raw',
    'image_msg_to_rgb',
    'labels_to_mono8_msg',
    'rgb_to_image_msg',
    'rgb_to_jpeg_msg',
]

_UNSET = object()
_bridge: Any = _UNSET
_warned_encodings: set[str] = set()


def _get_bridge() -> Any:
    """Return a cached ``cv_bridge.CvBridge`` or None when it cannot load.

    Imported lazily and once: cv_bridge may be absent (pip-only installs) or
    broken (built against another numpy), and either must not stop the import
    of this module.
    """
    global _bridge  # noqa: PLW0603 - one process-wide cache
    if _bridge is _UNSET:
        try:
            from cv_bridge import CvBridge

            _bridge = CvBridge()
        except Exception:
            _bridge = None
    return _bridge


def cv_bridge_available() -> bool:
    """True when cv_bridge imported and will be tried for 8-bit images."""
    return _get_bridge() is not None


def _try_cv_bridge(msg: Any, height: int, width: int) -> np.ndarray | None:
    """Convert with cv_bridge; None on any failure or an unexpected result."""
    bridge = _get_bridge()
    if bridge is None:
        return None
    try:
        out = bridge.imgmsg_to_cv2(msg, desired_encoding='rgb8')
    except Exception as err:
        if msg.encoding not in _warned_encodings:  # warn once per encoding
            _warned_encodings.add(msg.encoding)
            warnings.warn(
                f'cv_bridge failed on encoding {msg.encoding!r} ({err}); '
                'using the numpy converter',
                RuntimeWarning,
                stacklevel=3,
            )
        return None
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != (height, width, 3):
        return None
    return np.ascontiguousarray(out)


def image_msg_to_rgb(msg: Image, *, use_cv_bridge: bool = True) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` into RGB pixels.

    Args:
        msg: the image; see ``docs/image_encodings.md`` for the encodings.
            ``step`` row padding and ``is_bigendian`` (16-bit data) are honoured.
        use_cv_bridge: try cv_bridge first for 8-bit encodings when installed.

    Returns:
        HxWx3 uint8 RGB array that owns its memory.

    Raises:
        ImageConversionError: unknown encoding, zero width/height, ``step``
            smaller than a row, or ``data`` shorter than ``step * height``.
    """
    raw = image_msg_to_numpy_raw(msg)  # validates before any backend runs
    info = lookup_encoding(msg.encoding)
    if use_cv_bridge and raw.dtype == np.uint8:
        out = _try_cv_bridge(msg, raw.shape[0], raw.shape[1])
        if out is not None:
            return out
    return raw_to_rgb(raw, info)


def _compressed_is_rgb_order(fmt: str) -> bool:
    """Whether decoded 3/4-channel pixels are already in RGB order.

    Follows compressed_image_transport: ``"<enc>; jpeg compressed bgr8"`` (and
    a bare ``"jpeg"``/``"png"``) hold BGR data, as cv2.imencode writes it;
    ``"... compressed rgb8"`` means an RGB buffer was encoded as is.
    """
    _, sep, tail = fmt.partition(';')
    return bool(sep) and 'compressed rgb' in tail.lower()


def compressed_msg_to_rgb(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg, png, ...) into RGB.

    Args:
        msg: the message; ``format`` like ``'jpeg'``, ``'png'`` or
            ``'rgb8; jpeg compressed bgr8'``.

    Returns:
        HxWx3 uint8 RGB.  16-bit PNGs are reduced by ``>> 8``; alpha is dropped.

    Raises:
        ImageConversionError: empty or undecodable data, or a
            ``compressedDepth`` stream (a depth map, not a picture).
    """
    fmt = str(getattr(msg, 'format', '') or '')
    if 'compresseddepth' in fmt.lower():
        msg_text = (
            f'compressed format {fmt!r} is a compressedDepth depth map, '
            'not a colour image; subscribe to the raw image instead'
        )
        raise ImageConversionError(msg_text)
    try:
        buf = np.frombuffer(memoryview(msg.data).cast('B'), dtype=np.uint8)
    except (TypeError, ValueError):
        buf = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if buf.size == 0:
        msg_text = f'compressed image (format {fmt!r}) has no data'
        raise ImageConversionError(msg_text)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        msg_text = f'could not decode {buf.size} bytes of compressed image data (format {fmt!r})'
        raise ImageConversionError(msg_text)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        msg_text = f'decoded compressed image has unsupported dtype {img.dtype} (format {fmt!r})'
        raise ImageConversionError(msg_text)
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels == 1:
        out = cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2RGB)
    elif channels in (3, 4):
        if _compressed_is_rgb_order(fmt):
            out = img[..., :3]
        else:
            out = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGB)
    else:
        msg_text = f'decoded compressed image has {channels} channels (format {fmt!r})'
        raise ImageConversionError(msg_text)
    return np.ascontiguousarray(out)


def copy_header(header: Header) -> Header:
    """Return a new Header with the same stamp and frame_id (no aliasing)."""
    try:
        stamp = Time(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec))
        return Header(stamp=stamp, frame_id=str(header.frame_id))
    except AttributeError as err:
        msg = f'expected a std_msgs/Header, got {type(header).__name__}'
        raise ImageConversionError(msg) from err


def _bytes_field(arr: np.ndarray) -> array.array:
    """Pack an array's bytes for a uint8[] message field.

    rclpy stores uint8[] as array.array('B'); passing bytes would make its
    setter check every byte in Python, which is slow for images.
    """
    out = array.array('B')
    out.frombytes(np.ascontiguousarray(arr).view(np.uint8).reshape(-1).data)
    return out


def _make_image(arr: np.ndarray, header: Header, encoding: str, bigendian: bool = False) -> Image:
    msg = Image()
    msg.header = copy_header(header)
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(bigendian)
    channels = arr.shape[2] if arr.ndim == 3 else 1
    msg.step = int(arr.shape[1] * channels * arr.itemsize)
    msg.data = _bytes_field(arr)
    return msg


def _check_2d_nonempty(arr: np.ndarray, what: str) -> None:
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        msg = f'{what} must be a non-empty HxW array, got shape {arr.shape}'
        raise ImageConversionError(msg)


def rgb_to_image_msg(rgb: np.ndarray, header: Header, encoding: str = 'rgb8') -> Image:
    """Build an Image from HxWx3 uint8 RGB pixels.

    Args:
        rgb: HxWx3 uint8, RGB order.
        header: source header; stamp and frame_id are copied.
        encoding: 'rgb8' (pixels as given) or 'bgr8' (channels swapped).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        msg = f'rgb must be a non-empty HxWx3 array, got shape {rgb.shape}'
        raise ImageConversionError(msg)
    if rgb.dtype != np.uint8:
        msg = f'rgb must be uint8, got dtype {rgb.dtype}'
        raise ImageConversionError(msg)
    if encoding == 'bgr8':
        rgb = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    elif encoding != 'rgb8':
        msg = f"output encoding must be 'rgb8' or 'bgr8', got {encoding!r}"
        raise ImageConversionError(msg)
    return _make_image(rgb, header, encoding)


def rgb_to_jpeg_msg(rgb: np.ndarray, header: Header, quality: int = 80) -> CompressedImage:
    """Build a JPEG CompressedImage from HxWx3 uint8 RGB pixels.

    ``format`` is ``'rgb8; jpeg compressed bgr8'``, what image_transport's compressed
    publisher writes, so rqt_image_view, RViz and web_video_server decode it.

    Args:
        rgb: HxWx3 uint8, RGB order.
        header: source header; stamp and frame_id are copied.
        quality: JPEG quality, 1..100.
    """
    rgb = np.asarray(rgb)
    if (
        rgb.ndim != 3
        or rgb.shape[2] != 3
        or rgb.shape[0] == 0
        or rgb.shape[1] == 0
        or rgb.dtype != np.uint8
    ):
        msg = f'rgb must be a non-empty HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}'
        raise ImageConversionError(msg)
    if not 1 <= int(quality) <= 100:
        msg = f'JPEG quality must be in [1, 100], got {quality}'
        raise ImageConversionError(msg)
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        msg = f'JPEG encoding of a {rgb.shape[1]}x{rgb.shape[0]} image failed'
        raise ImageConversionError(msg)
    out = CompressedImage()
    out.header = copy_header(header)
    out.format = 'rgb8; jpeg compressed bgr8'
    out.data = _bytes_field(buf)
    return out


def labels_to_mono8_msg(labels: np.ndarray, header: Header) -> Image:
    """Build a mono8 class-id Image (255 = unlabeled) from HxW integer labels.

    Raises:
        ImageConversionError: not 2-D, not an integer/bool dtype, or values
            outside 0..255 (the message gives the offending min/max).
    """
    labels = np.asarray(labels)
    _check_2d_nonempty(labels, 'labels')
    if labels.dtype != np.bool_ and not np.issubdtype(labels.dtype, np.integer):
        msg = f'labels must have an integer dtype, got {labels.dtype}'
        raise ImageConversionError(msg)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi > 255:
        msg = f'labels must lie in 0..255 for mono8, got min {lo}, max {hi}'
        raise ImageConversionError(msg)
    return _make_image(labels.astype(np.uint8, copy=False), header, 'mono8')


def float_to_32fc1_msg(arr: np.ndarray, header: Header) -> Image:
    """Build a 32FC1 Image (e.g. a probability map) from an HxW real array.

    ``is_bigendian`` states this machine's byte order, as ROS expects.
    """
    arr = np.asarray(arr)
    _check_2d_nonempty(arr, 'float image')
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        msg = f'float image must have a real numeric dtype, got {arr.dtype}'
        raise ImageConversionError(msg)
    return _make_image(
        arr.astype(np.float32, copy=False), header, '32FC1', bigendian=sys.byteorder == 'big'
    )
