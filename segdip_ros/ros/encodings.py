# SPDX-License-Identifier: Apache-2.0
"""Encoding table and the numpy/OpenCV decoder for ``sensor_msgs/Image``.

Why a numpy path at all: cv_bridge is not on PyPI and its wheels built
against numpy 1 break under numpy 2, so the node must decode camera images
without it.  This module needs only numpy and OpenCV and imports no ROS
package; it takes any object with the ``sensor_msgs/Image`` fields
(``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``).

Bayer codes: a ROS pattern such as ``bayer_rggb8`` names the top-left 2x2
block (row 0 = R G, row 1 = G B).  OpenCV's legacy ``COLOR_Bayer??2RGB``
names are taken from the second row's 2nd and 3rd pixels instead, so ROS
``rggb`` is OpenCV ``BG``.  The table below is checked against synthetic
mosaics in ``test/ros/test_ros_convert.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    'ENCODINGS',
    'SUPPORTED_ENCODINGS',
    'EncodingInfo',
    'ImageConversionError',
    'image_msg_to_numpy_raw',
    'lookup_encoding',
    'raw_to_rgb',
]


class ImageConversionError(ValueError):
    """An image message cannot be turned into pixels (or pixels into one).

    A ValueError so callers that already catch bad input keep working; the
    message always names the offending value.
    """


@dataclass(frozen=True)
class EncodingInfo:
    """How one ROS encoding is laid out and turned into RGB.

    Attributes:
        name: canonical ROS encoding string.
        channels: samples per pixel in the raw array (packed YUV 4:2:2 is 2).
        dtype: numpy dtype of one sample (uint8 or uint16).
        kind: conversion recipe, one of 'rgb', 'bgr', 'rgba', 'bgra',
            'mono', 'bayer', 'yuv'.
        cv_code: OpenCV cvtColor code for 'bayer' and 'yuv' kinds, else None.
    """

    name: str
    channels: int
    dtype: type
    kind: str
    cv_code: int | None = None

    @property
    def bytes_per_pixel(self) -> int:
        """Bytes one pixel occupies in a row (without padding)."""
        return self.channels * np.dtype(self.dtype).itemsize


def _table() -> dict[str, EncodingInfo]:
    u8, u16 = np.uint8, np.uint16
    entries = [
        EncodingInfo('rgb8', 3, u8, 'rgb'),
        EncodingInfo('bgr8', 3, u8, 'bgr'),
        EncodingInfo('8UC3', 3, u8, 'bgr'),  # OpenCV's default order
        EncodingInfo('rgba8', 4, u8, 'rgba'),
        EncodingInfo('bgra8', 4, u8, 'bgra'),
        EncodingInfo('8UC4', 4, u8, 'bgra'),
        EncodingInfo('mono8', 1, u8, 'mono'),
        EncodingInfo('8UC1', 1, u8, 'mono'),
        EncodingInfo('mono16', 1, u16, 'mono'),
        EncodingInfo('16UC1', 1, u16, 'mono'),
        EncodingInfo('rgb16', 3, u16, 'rgb'),
        EncodingInfo('bgr16', 3, u16, 'bgr'),
        EncodingInfo('rgba16', 4, u16, 'rgba'),
        EncodingInfo('bgra16', 4, u16, 'bgra'),
    ]
    # ROS top-left 2x2 pattern -> OpenCV legacy code (see module docstring).
    bayer = {
        'rggb': cv2.COLOR_BayerBG2RGB,
        'bggr': cv2.COLOR_BayerRG2RGB,
        'gbrg': cv2.COLOR_BayerGR2RGB,
        'grbg': cv2.COLOR_BayerGB2RGB,
    }
    for pattern, code in bayer.items():
        entries.append(EncodingInfo(f'bayer_{pattern}8', 1, u8, 'bayer', code))
        entries.append(EncodingInfo(f'bayer_{pattern}16', 1, u16, 'bayer', code))
    # ROS 'yuv422' is UYVY byte order; 'yuv422_yuy2' is YUYV.
    for name in ('yuv422', 'uyvy', 'UYVY'):
        entries.append(EncodingInfo(name, 2, u8, 'yuv', cv2.COLOR_YUV2RGB_UYVY))
    for name in ('yuv422_yuy2', 'yuyv', 'YUYV'):
        entries.append(EncodingInfo(name, 2, u8, 'yuv', cv2.COLOR_YUV2RGB_YUYV))
    return {e.name: e for e in entries}


ENCODINGS: dict[str, EncodingInfo] = _table()
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(ENCODINGS)


def lookup_encoding(encoding: Any) -> EncodingInfo:
    """Return the table entry for ``encoding`` (exact, then case-insensitive).

    Raises:
        ImageConversionError: the encoding is not supported; the message names
            it and lists every supported encoding.
    """
    if isinstance(encoding, str):
        info = ENCODINGS.get(encoding.strip())
        if info is not None:
            return info
        lowered = encoding.strip().lower()
        for name, entry in ENCODINGS.items():
            if name.lower() == lowered:
                return entry
    msg = (
        f'unsupported image encoding {encoding!r}; supported encodings: '
        f'{", ".join(SUPPORTED_ENCODINGS)}'
    )
    raise ImageConversionError(msg)


def _as_uint8_buffer(data: Any) -> np.ndarray:
    """View ``msg.data`` (array.array, bytes, list, ndarray...) as flat uint8."""
    try:
        return np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8)
    except (TypeError, ValueError):
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError) as err:
            msg = f'image data of type {type(data).__name__} is not a byte sequence'
            raise ImageConversionError(msg) from err


def _check_geometry(msg: Any, info: EncodingInfo) -> tuple[int, int, int]:
    """Validate height/width/step against the encoding; return them."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        msg_text = f'image has zero size: width={width}, height={height} (encoding {info.name!r})'
        raise ImageConversionError(msg_text)
    row_bytes = width * info.bytes_per_pixel
    if step < row_bytes:
        msg_text = (
            f'step {step} is smaller than width*bytes_per_pixel = '
            f'{width}*{info.bytes_per_pixel} = {row_bytes} '
            f'for encoding {info.name!r}'
        )
        raise ImageConversionError(msg_text)
    if info.kind == 'yuv' and width % 2:
        msg_text = f'{info.name!r} is 4:2:2 packed and needs an even width, got {width}'
        raise ImageConversionError(msg_text)
    if info.kind == 'bayer' and (width < 2 or height < 2):
        msg_text = f'Bayer image must be at least 2x2 pixels, got width={width}, height={height}'
        raise ImageConversionError(msg_text)
    return height, width, step


def image_msg_to_numpy_raw(msg: Any) -> np.ndarray:
    """Unpack an Image message into its raw samples, padding removed.

    Args:
        msg: a ``sensor_msgs/Image`` (or any object with its fields).

    Returns:
        A new C-contiguous array in native byte order: HxW for one-channel
        encodings (mono, Bayer), HxWxC otherwise (HxWx2 uint8 for packed
        YUV 4:2:2, the layout ``cv2.cvtColor`` expects).  It owns its memory,
        so later changes to ``msg.data`` do not alter it.

    Raises:
        ImageConversionError: unknown encoding, zero size, ``step`` too small
            or ``data`` shorter than ``step * height``.
    """
    info = lookup_encoding(msg.encoding)
    height, width, step = _check_geometry(msg, info)
    buf = _as_uint8_buffer(msg.data)
    need = step * height
    if buf.size < need:
        msg_text = (
            f'image data has {buf.size} bytes, shorter than step*height = '
            f'{step}*{height} = {need} (encoding {info.name!r})'
        )
        raise ImageConversionError(msg_text)
    rows = buf[:need].reshape(height, step)[:, : width * info.bytes_per_pixel]
    if info.dtype is np.uint8:
        raw = np.array(rows, dtype=np.uint8, copy=True)
    else:
        order = '>' if msg.is_bigendian else '<'
        wide = np.ascontiguousarray(rows).view(np.dtype(info.dtype).newbyteorder(order))
        raw = wide.astype(info.dtype, copy=True)  # native byte order
    shape = (height, width) if info.channels == 1 else (height, width, info.channels)
    return raw.reshape(shape)


def raw_to_rgb(raw: np.ndarray, info: EncodingInfo) -> np.ndarray:
    """Convert raw samples from :func:`image_msg_to_numpy_raw` to RGB.

    16-bit samples are reduced to 8 bit by ``>> 8`` (keep the high byte), the
    same on every install, instead of cv_bridge's rounding scale.

    Returns:
        HxWx3 uint8 RGB, C-contiguous.
    """
    if raw.dtype == np.uint16:
        raw = (raw >> 8).astype(np.uint8)
    try:
        if info.kind == 'rgb':
            out = raw
        elif info.kind == 'bgr':  # cvtColor: ~10x faster than a ::-1 copy
            out = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
        elif info.kind == 'rgba':
            out = cv2.cvtColor(raw, cv2.COLOR_RGBA2RGB)
        elif info.kind == 'bgra':
            out = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB)
        elif info.kind == 'mono':
            out = cv2.cvtColor(raw, cv2.COLOR_GRAY2RGB)
        elif info.kind in ('bayer', 'yuv'):
            out = cv2.cvtColor(raw, info.cv_code)
        else:  # pragma: no cover - table and recipes are defined together
            msg = f'no conversion recipe {info.kind!r} for encoding {info.name!r}'
            raise ImageConversionError(msg)
    except cv2.error as err:
        msg = f'OpenCV could not convert {info.name!r} image of shape {raw.shape}: {err}'
        raise ImageConversionError(msg) from err
    return np.ascontiguousarray(out, dtype=np.uint8)
