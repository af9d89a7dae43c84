# SPDX-License-Identifier: Apache-2.0
"""Tests for segdip_ros.ros.convert: every encoding decoded from hand-built bytes.

The encoder side (Bayer mosaics, YUV packing, padding, byte swapping) is
written here by hand, independently of the module, so a wrong OpenCV code or a
wrong byte order in the module shows up as wrong pixels.
"""

from __future__ import annotations

import array
import sys
import warnings

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from segdip_ros.ros import convert as rc
from segdip_ros.ros.convert import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    compressed_msg_to_rgb,
    float_to_32fc1_msg,
    image_msg_to_numpy_raw,
    image_msg_to_rgb,
    labels_to_mono8_msg,
    rgb_to_image_msg,
)

H, W = 6, 8
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, size=(H, W), dtype=np.uint16)


def _header() -> Header:
    return Header(stamp=Time(sec=1234, nanosec=567890), frame_id='cam_optical')


def _msg(payload: np.ndarray, encoding: str, *, pad: int = 0, bigendian: bool = False) -> Image:
    """Image from a HxW[xC] array; 16-bit samples written in the stated byte order."""
    h, w = payload.shape[:2]
    if payload.dtype == np.uint16:
        payload = payload.astype('>u2' if bigendian else '<u2')
    rows = np.ascontiguousarray(payload).view(np.uint8).reshape(h, -1)
    padded = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    return Image(
        header=_header(),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=padded.shape[1],
        data=array.array('B', padded.tobytes()),
    )


# --- lossless colour and mono encodings --------------------------------------
@pytest.mark.parametrize(
    ('encoding', 'payload'),
    [
        ('rgb8', RGB),
        ('bgr8', RGB[..., ::-1]),
        ('8UC3', RGB[..., ::-1]),
        ('rgba8', np.dstack([RGB, np.full((H, W), 7, np.uint8)])),
        ('bgra8', np.dstack([RGB[..., ::-1], np.full((H, W), 7, np.uint8)])),
        ('8UC4', np.dstack([RGB[..., ::-1], np.full((H, W), 7, np.uint8)])),
        ('rgb16', RGB.astype(np.uint16) * 256 + 99),
        ('bgr16', RGB[..., ::-1].astype(np.uint16) * 256 + 99),
    ],
)
@pytest.mark.parametrize('pad', [0, 5])
def test_colour_encodings_exact(encoding: str, payload: np.ndarray, pad: int) -> None:
    out = image_msg_to_rgb(_msg(payload, encoding, pad=pad))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
def test_mono8(encoding: str) -> None:
    gray = RGB[..., 0]
    out = image_msg_to_rgb(_msg(gray, encoding, pad=3))
    np.testing.assert_array_equal(out, np.dstack([gray] * 3))


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
@pytest.mark.parametrize('bigendian', [False, True])
@pytest.mark.parametrize('pad', [0, 3])  # odd padding: rows not 2-byte aligned
def test_mono16_scaled_by_shift(encoding: str, bigendian: bool, pad: int) -> None:
    out = image_msg_to_rgb(_msg(GRAY16, encoding, pad=pad, bigendian=bigendian))
    expected = (GRAY16 >> 8).astype(np.uint8)
    np.testing.assert_array_equal(out, np.dstack([expected] * 3))


def test_raw_big_endian_values_are_native() -> None:
    raw = image_msg_to_numpy_raw(_msg(GRAY16, 'mono16', bigendian=True, pad=2))
    assert raw.dtype == np.uint16 and raw.dtype.isnative
    np.testing.assert_array_equal(raw, GRAY16)


def test_raw_does_not_alias_message_data() -> None:
    msg = _msg(RGB, 'rgb8')
    out = image_msg_to_rgb(msg, use_cv_bridge=False)
    msg.data[0] = (int(msg.data[0]) + 1) % 256
    np.testing.assert_array_equal(out, RGB)


# --- Bayer -------------------------------------------------------------------
def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample ``rgb`` with a ROS pattern naming the top-left 2x2 block."""
    index = {'r': 0, 'g': 1, 'b': 2}
    out = np.zeros(rgb.shape[:2], rgb.dtype)
    for k, ch in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, index[ch]]
    return out


FLAT = np.array([200, 120, 30], np.uint8)  # R, G, B all different


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
@pytest.mark.parametrize('bits', [8, 16])
def test_bayer_flat_colour(pattern: str, bits: int) -> None:
    flat = np.broadcast_to(FLAT, (8, 10, 3)).copy()
    if bits == 16:
        flat = flat.astype(np.uint16) * 256 + 77
    mosaic = _mosaic(flat, pattern)
    out = image_msg_to_rgb(_msg(mosaic, f'bayer_{pattern}{bits}', pad=2, bigendian=bits == 16))
    assert out.shape == (8, 10, 3)
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.broadcast_to(FLAT, (4, 6, 3)))


def test_bayer_smooth_image_close_to_truth() -> None:
    """A smooth gradient catches a pattern that is right only for flat colour."""
    yy, xx = np.mgrid[0:16, 0:16]
    rgb = np.dstack([40 + 8 * xx, 60 + 6 * yy, 200 - 5 * xx]).astype(np.uint8)
    out = image_msg_to_rgb(_msg(_mosaic(rgb, 'grbg'), 'bayer_grbg8'))
    err = np.abs(out[2:-2, 2:-2].astype(int) - rgb[2:-2, 2:-2])
    assert err.max() <= 4


# --- YUV 4:2:2 ---------------------------------------------------------------
def _yuv601(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited-range Y, U, V as floats."""
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return y, u, v


def _pack_422(rgb: np.ndarray, order: str) -> np.ndarray:
    """Pack pixel pairs of equal colour as UYVY or YUYV bytes (HxWx2)."""
    y, u, v = (np.clip(np.round(c), 0, 255).astype(np.uint8) for c in _yuv601(rgb))
    h, w = y.shape
    out = np.zeros((h, w * 2), np.uint8)
    chroma = [u[:, 0::2], y[:, 0::2], v[:, 0::2], y[:, 1::2]]  # U Y0 V Y1
    if order == 'yuyv':
        chroma = [y[:, 0::2], u[:, 0::2], y[:, 1::2], v[:, 0::2]]  # Y0 U Y1 V
    for k, plane in enumerate(chroma):
        out[:, k::4] = plane
    return out.reshape(h, w, 2)


PAIRS = np.repeat(RGB[:, ::2], 2, axis=1)  # each horizontal pair shares a colour


@pytest.mark.parametrize(
    ('encoding', 'order'),
    [
        ('yuv422', 'uyvy'),
        ('uyvy', 'uyvy'),
        ('UYVY', 'uyvy'),
        ('yuv422_yuy2', 'yuyv'),
        ('yuyv', 'yuyv'),
        ('YUYV', 'yuyv'),
    ],
)
def test_yuv422(encoding: str, order: str) -> None:
    out = image_msg_to_rgb(_msg(_pack_422(PAIRS, order), encoding, pad=4))
    assert out.shape == (H, W, 3)
    assert np.abs(out.astype(int) - PAIRS).max() <= 3


def test_every_supported_encoding_is_tested() -> None:
    tested = {
        'rgb8',
        'bgr8',
        '8UC3',
        'rgba8',
        'bgra8',
        '8UC4',
        'rgb16',
        'bgr16',
        'mono8',
        '8UC1',
        'mono16',
        '16UC1',
        'yuv422',
        'uyvy',
        'UYVY',
        'yuv422_yuy2',
        'yuyv',
        'YUYV',
        'rgba16',
        'bgra16',
    }
    tested |= {f'bayer_{p}{b}' for p in ('rggb', 'bggr', 'gbrg', 'grbg') for b in (8, 16)}
    assert set(SUPPORTED_ENCODINGS) == tested


@pytest.mark.parametrize('encoding', ['rgba16', 'bgra16'])
def test_rgba16(encoding: str) -> None:
    colour = RGB if encoding == 'rgba16' else RGB[..., ::-1]
    payload = np.dstack([colour, np.zeros((H, W), np.uint8)]).astype(np.uint16) * 256
    out = image_msg_to_rgb(_msg(payload, encoding, bigendian=True))
    np.testing.assert_array_equal(out, RGB)


# --- errors ------------------------------------------------------------------
def test_unknown_encoding_named_and_supported_listed() -> None:
    msg = _msg(RGB, 'rgb8')
    msg.encoding = '32FC3'
    with pytest.raises(ImageConversionError, match=r"'32FC3'.*supported.*bayer_rggb8"):
        image_msg_to_rgb(msg)


def test_short_data_gives_both_numbers() -> None:
    msg = _msg(RGB, 'rgb8')
    msg.data = msg.data[:-1]
    with pytest.raises(ImageConversionError, match=rf'{H * W * 3 - 1} bytes.*{H * W * 3}'):
        image_msg_to_rgb(msg)


@pytest.mark.parametrize(('height', 'width'), [(0, W), (H, 0)])
def test_zero_size(height: int, width: int) -> None:
    msg = Image(height=height, width=width, encoding='rgb8', step=width * 3)
    with pytest.raises(ImageConversionError, match='zero size'):
        image_msg_to_rgb(msg)


def test_step_smaller_than_row() -> None:
    msg = _msg(RGB, 'rgb8')
    msg.step = W * 3 - 1
    with pytest.raises(ImageConversionError, match=rf'step {W * 3 - 1} .*{W * 3}'):
        image_msg_to_rgb(msg)


def test_yuv_odd_width_rejected() -> None:
    msg = Image(height=2, width=3, encoding='yuv422', step=6, data=bytes(12))
    with pytest.raises(ImageConversionError, match='even width, got 3'):
        image_msg_to_rgb(msg)


def test_error_is_value_error() -> None:
    assert issubclass(ImageConversionError, ValueError)


# --- cv_bridge preference and fallback ----------------------------------------
class _FakeBridge:
    def __init__(self, result: object = None, fail: bool = False) -> None:
        self.result, self.fail, self.calls = result, fail, 0

    def imgmsg_to_cv2(self, msg: Image, desired_encoding: str) -> object:
        self.calls += 1
        assert desired_encoding == 'rgb8'
        if self.fail:
            raise TypeError('numpy ABI mismatch')
        return self.result


def test_cv_bridge_used_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    marker = np.full((H, W, 3), 42, np.uint8)
    fake = _FakeBridge(result=marker)
    monkeypatch.setattr(rc, '_get_bridge', lambda: fake)
    np.testing.assert_array_equal(image_msg_to_rgb(_msg(RGB, 'bgr8')), marker)
    assert fake.calls == 1
    # 16-bit data skips cv_bridge so the >>8 scaling is the same everywhere.
    image_msg_to_rgb(_msg(GRAY16, 'mono16'))
    assert fake.calls == 1


@pytest.mark.parametrize(
    'fake', [_FakeBridge(fail=True), _FakeBridge(result=np.zeros((2, 2, 3), np.uint8))]
)
def test_cv_bridge_failure_falls_back(monkeypatch: pytest.MonkeyPatch, fake: _FakeBridge) -> None:
    monkeypatch.setattr(rc, '_get_bridge', lambda: fake)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        out = image_msg_to_rgb(_msg(RGB[..., ::-1], 'bgr8'))
    np.testing.assert_array_equal(out, RGB)
    assert fake.calls == 1


def test_validation_precedes_cv_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeBridge(result=np.zeros((H, W, 3), np.uint8))
    monkeypatch.setattr(rc, '_get_bridge', lambda: fake)
    msg = _msg(RGB, 'rgb8')
    msg.step = 3
    with pytest.raises(ImageConversionError, match='step 3'):
        image_msg_to_rgb(msg)
    assert fake.calls == 0


# --- compressed ----------------------------------------------------------------
def _compressed(img_bgr: np.ndarray, ext: str, fmt: str) -> CompressedImage:
    ok, buf = cv2.imencode(ext, img_bgr)
    assert ok
    return CompressedImage(header=_header(), format=fmt, data=array.array('B', buf.tobytes()))


@pytest.mark.parametrize('fmt', ['png', 'bgr8; png compressed bgr8', 'rgb8; png compressed bgr8'])
def test_png_lossless(fmt: str) -> None:
    out = compressed_msg_to_rgb(_compressed(RGB[..., ::-1], '.png', fmt))
    np.testing.assert_array_equal(out, RGB)


def test_compressed_rgb_order_suffix() -> None:
    # Publisher encoded an RGB buffer as is, and says so with "compressed rgb8".
    out = compressed_msg_to_rgb(_compressed(RGB, '.png', 'rgb8; png compressed rgb8'))
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize('fmt', ['jpeg', 'bgr8; jpeg compressed bgr8'])
def test_jpeg_close(fmt: str) -> None:
    flat = np.zeros((32, 48, 3), np.uint8)
    flat[:, :24] = (200, 40, 20)
    flat[:, 24:] = (30, 90, 220)
    out = compressed_msg_to_rgb(_compressed(flat[..., ::-1], '.jpg', fmt))
    assert out.shape == (32, 48, 3)
    assert np.abs(out[4:-4, 4:20].astype(int) - (200, 40, 20)).max() <= 8
    assert np.abs(out[4:-4, 28:-4].astype(int) - (30, 90, 220)).max() <= 8


def test_compressed_mono_and_16bit_png() -> None:
    out = compressed_msg_to_rgb(_compressed(GRAY16, '.png', 'mono16; png compressed mono16'))
    np.testing.assert_array_equal(out, np.dstack([(GRAY16 >> 8).astype(np.uint8)] * 3))


@pytest.mark.parametrize(
    ('data', 'fmt', 'pattern'),
    [
        (b'not an image at all', 'jpeg', r'could not decode 19 bytes'),
        (b'', 'png', 'no data'),
        (b'\x00' * 20, '16UC1; compressedDepth png', 'compressedDepth'),
    ],
)
def test_compressed_errors(data: bytes, fmt: str, pattern: str) -> None:
    msg = CompressedImage(format=fmt, data=array.array('B', data))
    with pytest.raises(ImageConversionError, match=pattern):
        compressed_msg_to_rgb(msg)


# --- outputs -----------------------------------------------------------------
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_rgb_round_trip_and_header(encoding: str) -> None:
    header = _header()
    msg = rgb_to_image_msg(RGB[:, ::-1], header, encoding=encoding)  # non-contiguous input
    assert (msg.height, msg.width, msg.step, msg.encoding) == (H, W, W * 3, encoding)
    assert msg.header == header and msg.header is not header
    np.testing.assert_array_equal(image_msg_to_rgb(msg, use_cv_bridge=False), RGB[:, ::-1])


def test_labels_mono8() -> None:
    labels = RNG.integers(0, 4, size=(H, W)).astype(np.int64)
    labels[0, 0] = 255
    msg = labels_to_mono8_msg(labels, _header())
    assert (msg.encoding, msg.step, msg.header) == ('mono8', W, _header())
    np.testing.assert_array_equal(image_msg_to_numpy_raw(msg), labels)


def test_float_32fc1() -> None:
    probs = RNG.random((H, W))
    msg = float_to_32fc1_msg(probs, _header())
    assert (msg.encoding, msg.step, msg.header) == ('32FC1', W * 4, _header())
    assert msg.is_bigendian == (sys.byteorder == 'big')
    back = np.frombuffer(bytes(msg.data), np.float32).reshape(H, W)
    np.testing.assert_array_equal(back, probs.astype(np.float32))


@pytest.mark.parametrize(
    ('func', 'arr', 'pattern'),
    [
        (rgb_to_image_msg, np.zeros((4, 4), np.uint8), r'HxWx3.*\(4, 4\)'),
        (rgb_to_image_msg, np.zeros((4, 4, 3), np.float32), 'uint8, got dtype float32'),
        (labels_to_mono8_msg, np.array([[0, 256]]), 'min 0, max 256'),
        (labels_to_mono8_msg, np.array([[-1, 3]]), 'min -1, max 3'),
        (labels_to_mono8_msg, np.zeros((2, 2), np.float32), 'integer dtype'),
        (float_to_32fc1_msg, np.zeros((2, 2, 2)), r'HxW array.*\(2, 2, 2\)'),
    ],
)
def test_output_errors(func, arr: np.ndarray, pattern: str) -> None:
    with pytest.raises(ImageConversionError, match=pattern):
        func(arr, _header())


def test_bad_output_encoding() -> None:
    with pytest.raises(ImageConversionError, match="'mono8'"):
        rgb_to_image_msg(RGB, _header(), encoding='mono8')


def test_duck_typed_message_with_numpy_or_list_data() -> None:
    """rosbags deserialises uint8[] as numpy arrays; hand-made messages use lists."""
    from types import SimpleNamespace

    base = _msg(RGB[..., ::-1], 'bgr8', pad=1)
    for data in (np.frombuffer(bytes(base.data), np.uint8), list(bytes(base.data))):
        fake = SimpleNamespace(
            height=base.height,
            width=base.width,
            encoding='bgr8',
            is_bigendian=0,
            step=base.step,
            data=data,
        )
        np.testing.assert_array_equal(image_msg_to_rgb(fake, use_cv_bridge=False), RGB)


def test_compressed_png_with_alpha() -> None:
    bgra = np.dstack([RGB[..., ::-1], np.full((H, W), 9, np.uint8)])
    out = compressed_msg_to_rgb(_compressed(bgra, '.png', 'bgra8; png compressed bgra8'))
    np.testing.assert_array_equal(out, RGB)
