# SPDX-License-Identifier: Apache-2.0
"""Geometry that turns RViz2 "Publish Point" clicks into image pixels, with no Node.

RViz2 image displays do not publish pixel clicks; its Publish Point tool only sends a
``geometry_msgs/PointStamped`` in the fixed frame. Two ways make such a point a pixel:

1. **Image plane.** The node publishes its overlay as a coloured ``PointCloud2`` lying on the
   z = 0 plane of a dedicated frame (default ``segdip_image_plane``). A click on that cloud maps
   back to a pixel through :class:`ImagePlane`. Mapping, at ``scale`` metres per pixel::

       x = (u + 0.5) * scale        u = column (0 = left)
       y = -(v + 0.5) * scale       v = row    (0 = top)

   Integer ``(u, v)`` name a pixel and its centre sits at ``u + 0.5`` metres-per-pixel units, so
   every pixel covers one ``scale`` x ``scale`` square and the image spans x in [0, W*scale],
   y in [-H*scale, 0]. With RViz's TopDownOrtho view (x right, y up on screen) the image looks
   upright. Pixel coordinates returned here are continuous with integer values at pixel centres
   (OpenCV and engine ``Click`` convention): the point at the centre of pixel (3, 5) gives
   ``(3.0, 5.0)``.
2. **3D scene.** A click on a depth cloud is moved into the camera's optical frame with
   :func:`transform_point_to_frame` and projected with :class:`CameraModel`.

Class names become topic tokens through :func:`class_topic_name`, shared with
``segdip_ros.tools.rviz_config`` so the node and the shipped RViz config agree.
"""

from __future__ import annotations

import array
import copy
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import CameraInfo, PointCloud2, PointField
from std_msgs.msg import Header

__all__ = [
    'DEFAULT_PLANE_FRAME',
    'DEFAULT_PLANE_SCALE',
    'CameraModel',
    'ClickGeometryError',
    'ImagePlane',
    'class_topic_name',
    'class_topic_names',
    'cloud_to_arrays',
    'overlay_to_cloud',
    'transform_point_to_frame',
]

DEFAULT_PLANE_FRAME = 'segdip_image_plane'
DEFAULT_PLANE_SCALE = 0.01  # metres per pixel

# x, y, z and rgb, each a little-endian float32: the layout RViz's RGB8 transformer reads.
_CLOUD_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('rgb', '<f4')])


class ClickGeometryError(ValueError):
    """A clicked point cannot be turned into a pixel; the message says why."""


@dataclass(frozen=True)
class ImagePlane:
    """The z = 0 plane on which the overlay cloud is drawn (mapping in the module docstring).

    Args:
        scale: metres per image pixel, > 0.
        frame_id: TF frame of the plane; RViz's fixed frame when clicking on it.
    """

    scale: float = DEFAULT_PLANE_SCALE
    frame_id: str = DEFAULT_PLANE_FRAME

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f'ImagePlane scale must be a finite number > 0, got {self.scale!r}')
        if not self.frame_id:
            raise ValueError('ImagePlane frame_id must be a non-empty string')

    def pixel_to_point(self, u: float, v: float) -> tuple[float, float, float]:
        """Return the plane point (x, y, 0) in metres of the centre of pixel (u=col, v=row)."""
        return ((u + 0.5) * self.scale, -(v + 0.5) * self.scale, 0.0)

    def point_to_pixel(
        self, x: float, y: float, width: int, height: int, stride: int = 1
    ) -> tuple[float, float]:
        """Return continuous (u, v) of plane point (x, y); integer values are pixel centres.

        Not clamped. Raises ClickGeometryError when the point lies more than ``stride`` pixels
        beyond the border of a ``width`` x ``height`` image (a click that missed the cloud).
        """
        _check_size(width, height, stride)
        if not (np.isfinite(x) and np.isfinite(y)):
            raise ClickGeometryError(f'clicked point ({x}, {y}) is not finite')
        u = x / self.scale - 0.5
        v = -y / self.scale - 0.5
        # Edges of the image in the same units: pixel centres -0.5 .. size-0.5.
        lo_u, hi_u, lo_v, hi_v = (
            -0.5 - stride,
            width - 0.5 + stride,
            -0.5 - stride,
            height - 0.5 + stride,
        )
        if not (lo_u <= u <= hi_u and lo_v <= v <= hi_v):
            raise ClickGeometryError(
                f'clicked point x={x:.4f} m, y={y:.4f} m in frame {self.frame_id!r} is pixel '
                f'(u={u:.1f}, v={v:.1f}), more than {stride} px outside the {width}x{height} '
                f'image (plane spans x 0..{width * self.scale:.3f} m, '
                f'y {-height * self.scale:.3f}..0 m at {self.scale} m/px)'
            )
        return (float(u), float(v))

    def point_to_pixel_index(
        self, x: float, y: float, width: int, height: int, stride: int = 1
    ) -> tuple[int, int]:
        """Return the integer (col, row) of the pixel under (x, y), clamped into the image.

        Raises ClickGeometryError like :meth:`point_to_pixel` for points far outside.
        """
        u, v = self.point_to_pixel(x, y, width, height, stride)
        col = min(max(int(np.floor(u + 0.5)), 0), width - 1)
        row = min(max(int(np.floor(v + 0.5)), 0), height - 1)
        return (col, row)

    def click_to_pixel_index(
        self, click: PointStamped, width: int, height: int, stride: int = 1
    ) -> tuple[int, int]:
        """Check that ``click`` is in this plane's frame, then map it like point_to_pixel_index.

        An empty frame_id is accepted (hand-written test messages often leave it empty).
        """
        frame = click.header.frame_id
        if frame and frame.lstrip('/') != self.frame_id.lstrip('/'):
            raise ClickGeometryError(
                f'clicked point is in frame {frame!r}, not the image plane frame '
                f'{self.frame_id!r}: set RViz Global Options > Fixed Frame to {self.frame_id!r}'
            )
        return self.point_to_pixel_index(click.point.x, click.point.y, width, height, stride)


def _check_size(width: int, height: int, stride: int) -> None:
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f'image size must be positive, got width={width}, height={height}')
    if int(stride) < 1:
        raise ValueError(f'stride must be an integer >= 1, got {stride!r}')


def overlay_to_cloud(
    rgb: np.ndarray, header: Header, plane: ImagePlane, stride: int = 1
) -> PointCloud2:
    """Return the overlay as an organised coloured cloud on the image plane.

    Args:
        rgb: HxWx3 uint8 RGB overlay, original image size.
        header: source image header; its stamp is kept (never now()), but frame_id is replaced
            by ``plane.frame_id`` because the points live in the plane frame.
        plane: mapping from pixels to metres.
        stride: keep every stride-th row and column, starting at pixel (0, 0).

    Returns:
        PointCloud2 with height = ceil(H/stride), width = ceil(W/stride), fields x, y, z, rgb
        (float32, 16-byte points, little-endian); rgb is 0x00RRGGBB reinterpreted as float32.
    """
    if (
        not isinstance(rgb, np.ndarray)
        or rgb.ndim != 3
        or rgb.shape[2] != 3
        or rgb.dtype != np.uint8
    ):
        desc = (
            f'{rgb.dtype} array of shape {rgb.shape}'
            if isinstance(rgb, np.ndarray)
            else type(rgb).__name__
        )
        raise ValueError(f'overlay must be an HxWx3 uint8 RGB array, got {desc}')
    height, width = rgb.shape[:2]
    _check_size(width, height, stride)
    sub = rgb[::stride, ::stride]
    rows = np.arange(0, height, stride, dtype=np.float64)
    cols = np.arange(0, width, stride, dtype=np.float64)
    h, w = sub.shape[:2]
    points = np.empty((h, w), dtype=_CLOUD_DTYPE)
    points['x'] = ((cols + 0.5) * plane.scale)[None, :]
    points['y'] = (-(rows + 0.5) * plane.scale)[:, None]
    points['z'] = 0.0
    packed = (
        (sub[..., 0].astype(np.uint32) << 16)
        | (sub[..., 1].astype(np.uint32) << 8)
        | sub[..., 2].astype(np.uint32)
    )
    points['rgb'] = packed.astype('<u4').view('<f4')

    msg = PointCloud2()
    msg.header = Header(stamp=header.stamp, frame_id=plane.frame_id)
    msg.height, msg.width = h, w
    msg.fields = [
        PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, name in enumerate(('x', 'y', 'z', 'rgb'))
    ]
    msg.is_bigendian = False
    msg.point_step = _CLOUD_DTYPE.itemsize
    msg.row_step = msg.point_step * w
    msg.is_dense = True
    # array('B', bytes) copies through the buffer protocol; a list would take seconds.
    msg.data = array.array('B', points.tobytes())
    return msg


def cloud_to_arrays(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    """Decode a cloud made by :func:`overlay_to_cloud` into (HxWx3 float32 xyz, HxWx3 uint8 rgb).

    Handy for tests and tools; accepts only the layout overlay_to_cloud writes.
    """
    names = [(f.name, f.offset, f.datatype) for f in msg.fields]
    expected = [(n, 4 * i, PointField.FLOAT32) for i, n in enumerate(('x', 'y', 'z', 'rgb'))]
    if names != expected or msg.point_step != 16 or msg.is_bigendian:
        raise ValueError(f'not an overlay cloud: fields {names}, point_step {msg.point_step}')
    flat = np.frombuffer(bytes(msg.data), dtype=_CLOUD_DTYPE).reshape(msg.height, msg.width)
    xyz = np.stack([flat['x'], flat['y'], flat['z']], axis=-1)
    packed = flat['rgb'].view('<u4')
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(
        np.uint8
    )
    return xyz, rgb


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera from a CameraInfo. Distortion (D) is ignored on purpose.

    Ignoring D keeps this dependency-free (no OpenCV call per click); the error it causes is
    largest near the image corners of wide-angle lenses. For rectified images use
    ``use_projection=True`` (matrix P), the correct model for ``image_rect``.

    Attributes:
        projection: 3x4 matrix mapping optical-frame points (x right, y down, z forward, metres)
            to full-resolution homogeneous pixels.
        width, height: size of the image the node actually receives (after ROI and binning).
        frame_id: optical frame of the camera.
    """

    projection: np.ndarray
    width: int
    height: int
    frame_id: str = ''
    offset_x: int = 0
    offset_y: int = 0
    binning_x: int = 1
    binning_y: int = 1

    @classmethod
    def from_camera_info(cls, msg: CameraInfo, use_projection: bool = False) -> CameraModel:
        """Build from K (default, raw image) or P (``use_projection`` or when K is all zero).

        ROI offsets and binning are honoured so pixels match the image the camera published.
        """
        k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        p = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
        if use_projection or not k.any():
            matrix, source = p, 'P'
        else:
            matrix, source = np.hstack([k, np.zeros((3, 1))]), 'K'
        if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
            raise ClickGeometryError(
                f'CameraInfo of frame {msg.header.frame_id!r} has no usable {source} matrix '
                f'(fx={matrix[0, 0]}, fy={matrix[1, 1]}): is the camera calibrated?'
            )
        bx, by = max(int(msg.binning_x), 1), max(int(msg.binning_y), 1)
        roi = msg.roi
        full_w, full_h = (
            (roi.width, roi.height) if roi.width and roi.height else (msg.width, msg.height)
        )
        if full_w < 1 or full_h < 1:
            raise ClickGeometryError(
                f'CameraInfo of frame {msg.header.frame_id!r} has no image size '
                f'(width={msg.width}, height={msg.height})'
            )
        return cls(
            projection=matrix,
            width=int(full_w) // bx,
            height=int(full_h) // by,
            frame_id=msg.header.frame_id,
            offset_x=int(roi.x_offset),
            offset_y=int(roi.y_offset),
            binning_x=bx,
            binning_y=by,
        )

    def project(self, point_xyz: Sequence[float]) -> tuple[float, float]:
        """Return continuous (u, v) of an optical-frame point; integer values are pixel centres.

        Raises ClickGeometryError for a point at or behind the camera (z <= 0) or one that
        projects outside the image.
        """
        xyz = np.asarray(point_xyz, dtype=np.float64).reshape(-1)
        if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
            raise ClickGeometryError(f'point must be 3 finite numbers, got {point_xyz!r}')
        if xyz[2] <= 0:
            raise ClickGeometryError(
                f'point {tuple(round(c, 4) for c in xyz)} is behind the camera '
                f'{self.frame_id!r} (z = {xyz[2]:.4f} m <= 0 in the optical frame)'
            )
        hom = self.projection @ np.append(xyz, 1.0)
        u = (hom[0] / hom[2] - self.offset_x) / self.binning_x
        v = (hom[1] / hom[2] - self.offset_y) / self.binning_y
        if not (-0.5 <= u < self.width - 0.5 and -0.5 <= v < self.height - 0.5):
            raise ClickGeometryError(
                f'point {tuple(round(c, 4) for c in xyz)} projects to pixel '
                f'(u={u:.1f}, v={v:.1f}), outside the {self.width}x{self.height} image of '
                f'camera {self.frame_id!r}'
            )
        return (float(u), float(v))


def _load_tf2() -> tuple[Any, Any] | None:
    """Return (do_transform_point, TransformException) or None when tf2 is not installed."""
    try:
        from tf2_geometry_msgs import do_transform_point
        from tf2_ros import TransformException
    except ImportError:
        return None
    return do_transform_point, TransformException


def transform_point_to_frame(
    point_stamped: PointStamped, target_frame: str, tf_buffer: Any = None, timeout_sec: float = 0.1
) -> PointStamped:
    """Return ``point_stamped`` expressed in ``target_frame``.

    Same frame (or an empty frame_id): returned as a copy with target_frame set. Otherwise
    tf2_ros and tf2_geometry_msgs must be importable and ``tf_buffer`` (a tf2_ros.Buffer)
    given; the latest transform is used, because RViz stamps clicks with its own now().

    Raises:
        ClickGeometryError: no tf2, no buffer, or the lookup failed; the message names frames.
    """
    source = point_stamped.header.frame_id
    if not source or source.lstrip('/') == target_frame.lstrip('/'):
        out = copy.deepcopy(point_stamped)
        out.header.frame_id = target_frame
        return out
    tf2 = _load_tf2()
    if tf2 is None or tf_buffer is None:
        why = (
            'tf2_ros/tf2_geometry_msgs are not available'
            if tf2 is None
            else 'no tf2 buffer was given'
        )
        raise ClickGeometryError(
            f'{why}, so points in frame {source!r} cannot be used with camera frame '
            f'{target_frame!r}: set the RViz fixed frame to {target_frame!r} or install tf2'
        )
    do_transform_point, transform_exception = tf2
    from rclpy.duration import Duration
    from rclpy.time import Time

    try:
        transform = tf_buffer.lookup_transform(
            target_frame, source, Time(), timeout=Duration(seconds=timeout_sec)
        )
    except transform_exception as err:
        raise ClickGeometryError(
            f'no transform from {source!r} to {target_frame!r}: {err}'
        ) from err
    return do_transform_point(point_stamped, transform)


_INVALID = re.compile(r'[^a-z0-9_]+')


def class_topic_name(name: str) -> str:
    """Return the ROS topic token for a class name.

    Rule: accents dropped (NFKD, then ASCII only); lower-case; every run of characters other
    than ``a-z``, ``0-9`` and ``_`` becomes one ``_``; repeated ``_`` collapse; leading and
    trailing ``_`` are dropped; a token starting with a digit gets the prefix ``class_``.
    ``'Traffic Sign'`` -> ``'traffic_sign'``, ``'3D-box'`` -> ``'class_3d_box'``.
    Raises ValueError when nothing usable is left.
    """
    if not isinstance(name, str):
        raise ValueError(f'class name must be a string, got {type(name).__name__}')
    ascii_name = unicodedata.normalize('NFKD', name).encode('ascii', 'ignore').decode('ascii')
    token = re.sub(r'_+', '_', _INVALID.sub('_', ascii_name.lower())).strip('_')
    if not token:
        raise ValueError(f'class name {name!r} has no letters or digits to build a topic from')
    if token[0].isdigit():
        token = 'class_' + token
    return token


def class_topic_names(names: Iterable[str]) -> list[str]:
    """Apply :func:`class_topic_name` to each name; ValueError if two names give one token."""
    tokens: list[str] = []
    seen: dict = {}
    for name in names:
        token = class_topic_name(name)
        if token in seen:
            raise ValueError(
                f'class names {seen[token]!r} and {name!r} both map to topic '
                f'token {token!r}; rename one of them'
            )
        seen[token] = name
        tokens.append(token)
    return tokens
