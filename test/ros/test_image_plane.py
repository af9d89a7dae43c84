# SPDX-License-Identifier: Apache-2.0
"""Tests of segdip_ros.ros.image_plane: image plane both ways, overlay cloud, camera projection."""

import importlib.util
import sys
import types

import numpy as np
import pytest
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import CameraInfo, PointField
from std_msgs.msg import Header

from segdip_ros.ros.image_plane import (
    CameraModel,
    ClickGeometryError,
    ImagePlane,
    class_topic_name,
    class_topic_names,
    cloud_to_arrays,
    overlay_to_cloud,
    transform_point_to_frame,
)

W, H = 7, 4  # non-square on purpose


def _corners_and_centre(w, h):
    return [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, h // 2)]


@pytest.mark.parametrize('scale', [0.01, 0.037, 1.0])
def test_pixel_centres_map_back_exactly(scale):
    plane = ImagePlane(scale=scale)
    for u, v in _corners_and_centre(W, H):
        x, y, z = plane.pixel_to_point(u, v)
        assert z == 0.0
        assert plane.point_to_pixel(x, y, W, H) == pytest.approx((u, v), abs=1e-9)
        assert plane.point_to_pixel_index(x, y, W, H) == (u, v)


def test_axes_make_image_upright_in_top_down_view():
    plane = ImagePlane(scale=0.01)
    x0, y0, _ = plane.pixel_to_point(0, 0)
    x1, y1, _ = plane.pixel_to_point(1, 1)
    assert x0 == pytest.approx(0.005) and y0 == pytest.approx(-0.005)
    assert x1 > x0 and y1 < y0  # columns go +x (right), rows go -y (down on screen)


def test_points_inside_a_pixel_square_give_that_pixel():
    plane = ImagePlane(scale=0.1)
    x, y, _ = plane.pixel_to_point(3, 2)
    for dx, dy in [(0.049, 0.049), (-0.049, -0.049), (0.049, -0.049)]:
        assert plane.point_to_pixel_index(x + dx, y + dy, W, H) == (3, 2)


def test_clamping_and_refusal_beyond_one_stride():
    plane = ImagePlane(scale=0.01)
    # Just past the right/bottom edge (within a stride): clamped into the image.
    assert plane.point_to_pixel_index(W * 0.01 + 0.004, -H * 0.01 - 0.004, W, H) == (W - 1, H - 1)
    assert plane.point_to_pixel_index(-0.009, 0.009, W, H) == (0, 0)
    with pytest.raises(ClickGeometryError, match='outside the 7x4 image'):
        plane.point_to_pixel_index(W * 0.01 + 0.02, -0.01, W, H)
    with pytest.raises(ClickGeometryError, match='outside'):
        plane.point_to_pixel_index(0.01, 0.05, W, H)
    # A larger stride widens the tolerated margin.
    assert plane.point_to_pixel_index(W * 0.01 + 0.02, -0.005, W, H, stride=3) == (W - 1, 0)


def test_click_in_other_frame_is_refused():
    plane = ImagePlane()
    click = PointStamped()
    click.header.frame_id = 'map'
    click.point.x, click.point.y = 0.015, -0.015
    with pytest.raises(ClickGeometryError, match="frame 'map'.*Fixed Frame"):
        plane.click_to_pixel_index(click, W, H)
    click.header.frame_id = 'segdip_image_plane'
    assert plane.click_to_pixel_index(click, W, H) == (1, 1)


def test_bad_plane_rejected():
    with pytest.raises(ValueError, match='scale'):
        ImagePlane(scale=0.0)


def _image(h, w):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize('stride', [1, 2, 3])
def test_cloud_layout_points_and_colours(stride):
    h, w = 5, 8
    img = _image(h, w)
    header = Header(frame_id='camera_optical')
    header.stamp.sec, header.stamp.nanosec = 12, 345
    plane = ImagePlane(scale=0.02)
    msg = overlay_to_cloud(img, header, plane, stride)
    rows, cols = -(-h // stride), -(-w // stride)
    assert (msg.height, msg.width) == (rows, cols)
    assert len(msg.data) == rows * cols * 16 == msg.row_step * msg.height
    assert msg.header.frame_id == 'segdip_image_plane'
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ('x', 0, PointField.FLOAT32, 1),
        ('y', 4, PointField.FLOAT32, 1),
        ('z', 8, PointField.FLOAT32, 1),
        ('rgb', 12, PointField.FLOAT32, 1),
    ]
    xyz, rgb = cloud_to_arrays(msg)
    np.testing.assert_array_equal(rgb, img[::stride, ::stride])
    # Independent decoding of one packed colour: 0x00RRGGBB reinterpreted as float32.
    raw = np.frombuffer(bytes(msg.data), dtype='<u4').reshape(-1, 4)
    r, g, b = img[0, stride]
    assert raw[1, 3] == (int(r) << 16) | (int(g) << 8) | int(b)
    # Every point maps back to the original pixel it was sampled from.
    for i in range(rows):
        for j in range(cols):
            x, y, z = xyz[i, j]
            assert z == 0.0
            assert plane.point_to_pixel_index(float(x), float(y), w, h, stride) == (
                j * stride,
                i * stride,
            )


@pytest.mark.parametrize(
    'bad',
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8)],
)
def test_cloud_rejects_bad_overlay(bad):
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        overlay_to_cloud(bad, Header(), ImagePlane())


def test_cloud_rejects_bad_stride():
    with pytest.raises(ValueError, match='stride'):
        overlay_to_cloud(_image(4, 4), Header(), ImagePlane(), 0)


def _info(fx=500.0, fy=400.0, cx=319.5, cy=239.5, w=640, h=480):
    msg = CameraInfo()
    msg.header.frame_id = 'cam_optical'
    msg.width, msg.height = w, h
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def test_projection_hand_computed():
    cam = CameraModel.from_camera_info(_info())
    assert (cam.width, cam.height, cam.frame_id) == (640, 480, 'cam_optical')
    # u = fx*X/Z + cx = 500*0.2/2 + 319.5 = 369.5 ; v = 400*(-0.1)/2 + 239.5 = 219.5
    assert cam.project((0.2, -0.1, 2.0)) == pytest.approx((369.5, 219.5))
    assert cam.project([0.0, 0.0, 1.0]) == pytest.approx((319.5, 239.5))


def test_projection_from_p_and_binning():
    info = _info()
    info.k = [0.0] * 9  # uncalibrated K: fall back to P
    info.p[2] = 300.0
    assert CameraModel.from_camera_info(info).project((0, 0, 1)) == pytest.approx((300.0, 239.5))
    info = _info()
    info.binning_x = info.binning_y = 2
    cam = CameraModel.from_camera_info(info)
    assert (cam.width, cam.height) == (320, 240)
    assert cam.project((0.2, -0.1, 2.0)) == pytest.approx((369.5 / 2, 219.5 / 2))


def test_projection_refuses_behind_and_outside():
    cam = CameraModel.from_camera_info(_info())
    with pytest.raises(ClickGeometryError, match='behind the camera'):
        cam.project((0.1, 0.1, -1.0))
    with pytest.raises(ClickGeometryError, match='behind the camera'):
        cam.project((0.1, 0.1, 0.0))
    with pytest.raises(ClickGeometryError, match='outside the 640x480 image'):
        cam.project((5.0, 0.0, 1.0))  # u = 2819.5


def test_uncalibrated_camera_refused():
    info = _info()
    info.k = [0.0] * 9
    info.p = [0.0] * 12
    with pytest.raises(ClickGeometryError, match='calibrated'):
        CameraModel.from_camera_info(info)


def _stamped(frame, xyz=(1.0, 2.0, 3.0)):
    ps = PointStamped()
    ps.header.frame_id = frame
    ps.point.x, ps.point.y, ps.point.z = xyz
    return ps


def test_same_or_empty_frame_passes_without_tf():
    for frame in ('cam_optical', ''):
        out = transform_point_to_frame(_stamped(frame), 'cam_optical')
        assert out.header.frame_id == 'cam_optical'
        assert (out.point.x, out.point.y, out.point.z) == (1.0, 2.0, 3.0)


def test_other_frame_refused_without_tf2():
    if importlib.util.find_spec('tf2_ros') and importlib.util.find_spec('tf2_geometry_msgs'):
        pytest.skip('tf2 installed: the tf2 path is covered by the fake-tf2 test')
    with pytest.raises(
        ClickGeometryError, match="tf2.*not available.*frame 'map'.*camera frame 'cam_optical'"
    ):
        transform_point_to_frame(_stamped('map'), 'cam_optical', tf_buffer=object())


def test_tf2_path_uses_latest_transform(monkeypatch):
    class FakeTfError(Exception):
        pass

    tf2_ros = types.ModuleType('tf2_ros')
    tf2_ros.TransformException = FakeTfError
    tf2_gm = types.ModuleType('tf2_geometry_msgs')

    def do_transform_point(ps, offset):
        out = _stamped('cam_optical', (ps.point.x + offset, ps.point.y, ps.point.z))
        return out

    tf2_gm.do_transform_point = do_transform_point
    monkeypatch.setitem(sys.modules, 'tf2_ros', tf2_ros)
    monkeypatch.setitem(sys.modules, 'tf2_geometry_msgs', tf2_gm)

    class Buffer:
        def lookup_transform(self, target, source, when, timeout):
            if source == 'nowhere':
                raise FakeTfError('frame does not exist')
            assert (target, source, when.nanoseconds) == ('cam_optical', 'map', 0)
            return 10.0

    out = transform_point_to_frame(_stamped('map'), 'cam_optical', Buffer())
    assert out.point.x == 11.0
    with pytest.raises(ClickGeometryError, match="no transform from 'nowhere'"):
        transform_point_to_frame(_stamped('nowhere'), 'cam_optical', Buffer())
    with pytest.raises(ClickGeometryError, match='no tf2 buffer'):
        transform_point_to_frame(_stamped('map'), 'cam_optical', None)


@pytest.mark.parametrize(
    'name, token',
    [
        ('background', 'background'),
        ('Traffic Sign', 'traffic_sign'),
        ('3D-box', 'class_3d_box'),
        ('  a__b//c ', 'a_b_c'),
        ('Ünïcode car', 'unicode_car'),
        ('Straße', 'strae'),
    ],
)
def test_class_topic_name(name, token):
    assert class_topic_name(name) == token


def test_class_topic_name_errors():
    with pytest.raises(ValueError, match='no letters or digits'):
        class_topic_name('!!!')
    with pytest.raises(ValueError, match="'Car' and 'car'"):
        class_topic_names(['Car', 'car'])
