# SPDX-License-Identifier: Apache-2.0
"""Map RViz2 "Publish Point" clicks (PointStamped) to image pixels for the node.

Two routes (geometry in segdip_ros.ros.image_plane, see docs/rviz_clicking.md):
- a point in the image-plane frame (or with an empty frame_id) is a click on ~/image_plane;
- a point in any other frame, once `camera_info` is known, is moved into the camera's optical
  frame (tf2 when it is installed; the camera frame itself needs no tf2) and projected.
Everything else is refused with a ClickGeometryError naming the reason.
"""

from __future__ import annotations

from typing import Any

from segdip_ros.ros.image_plane import (
    CameraModel,
    ClickGeometryError,
    ImagePlane,
    transform_point_to_frame,
)

__all__ = ['ClickMapper', 'make_tf_buffer']


def make_tf_buffer(node: Any) -> tuple[Any, Any]:
    """(tf2_ros.Buffer, TransformListener) for `node`, or (None, None) without tf2_ros."""
    try:
        from tf2_ros import Buffer, TransformListener
    except ImportError:
        return None, None
    buffer = Buffer()
    return buffer, TransformListener(buffer, node, spin_thread=False)


class ClickMapper:
    """Turns PointStamped clicks into (x, y) pixels of a width x height image."""

    def __init__(self, plane: ImagePlane, stride: int = 2, tf_buffer: Any = None) -> None:
        self.plane = plane
        self.stride = stride
        self.tf_buffer = tf_buffer
        self.camera: CameraModel | None = None

    def set_camera_info(self, msg: Any) -> None:
        """Keep the newest camera model; a bad CameraInfo raises ClickGeometryError."""
        self.camera = CameraModel.from_camera_info(msg)

    def to_pixel(self, click: Any, width: int, height: int) -> tuple[float, float]:
        """Pixel (x = column, y = row) of `click` in a width x height image."""
        frame = click.header.frame_id.lstrip('/')
        if not frame or frame == self.plane.frame_id.lstrip('/'):
            col, row = self.plane.click_to_pixel_index(click, width, height, self.stride)
            return float(col), float(row)
        if self.camera is None:
            raise ClickGeometryError(
                f'clicked point is in frame {frame!r}, which is not the image plane frame '
                f'{self.plane.frame_id!r}, and no camera_info has arrived to project it'
            )
        cam = self.camera
        target = cam.frame_id or frame
        p = transform_point_to_frame(click, target, self.tf_buffer)
        u, v = cam.project((p.point.x, p.point.y, p.point.z))
        if (cam.width, cam.height) != (width, height):
            # camera_info of another resolution than the image (e.g. a resized stream)
            u = (u + 0.5) * width / cam.width - 0.5
            v = (v + 0.5) * height / cam.height - 0.5
        return min(max(u, 0.0), width - 1.0), min(max(v, 0.0), height - 1.0)
