# SPDX-License-Identifier: Apache-2.0
"""Every topic and service of the segdip node, with its QoS, created at lifecycle configure.

Why a module of its own: this is the node's ROS interface in one place (names, message types,
QoS, which ones take QoS overrides), next to nothing else; docs/node.md lists the same set.
The callbacks stay on the node (segdip_ros.segdip_node), which this module only wires up.
"""

from __future__ import annotations

from copy import copy
from typing import Any

from geometry_msgs.msg import Point, PointStamped, PolygonStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, RegionOfInterest
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from segdip_ros.node.label_info import LabelInfoPublisher
from segdip_ros.node.lifecycle import Entities
from segdip_ros.node.outputs import OutputPublisher
from segdip_ros.node.params import NodeSettings
from segdip_ros.node.rviz import ClickMapper, make_tf_buffer
from segdip_ros.ros.image_plane import ImagePlane, class_topic_names

__all__ = [
    'CLICK_TOPICS',
    'IMAGE_OUTPUTS',
    'IMAGE_QOS',
    'INPUT_QOS',
    'LATCHED_QOS',
    'OUTPUT_QOS',
    'TRIGGER_SERVICES',
    'create_interfaces',
]

# Newest frame only (sensor data, best effort, depth 1): never train on a queue of old frames.
IMAGE_QOS = QoSProfile(
    depth=1,
    reliability=qos_profile_sensor_data.reliability,
    history=qos_profile_sensor_data.history,
)
# Reliable and shallow, so RViz2 (reliable by default) shows the outputs.
OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
INPUT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # never lose clicks
IMAGE_OUTPUTS = ('mask', 'overlay', 'reconstruction', 'confidence')
TRIGGER_SERVICES = ('reset', 'undo', 'clear', 'next_frame', 'save')
# geometry_msgs/Point pixel clicks; rqt_image_view publishes to <viewed topic>_mouse_left,
# so a click on ~/overlay arrives on ~/overlay_mouse_left with no remapping.
CLICK_TOPICS = ('~/click', '~/overlay_mouse_left')


def create_interfaces(
    node: Any, e: Entities, s: NodeSettings, vision: tuple[Any, Any] | None
) -> tuple[OutputPublisher, ClickMapper, LabelInfoPublisher]:
    """Create the node's publishers, subscriptions and services through `e`.

    Returns the image outputs, the RViz click mapper and the class-list publisher. `vision`
    is (LabelInfo, VisionClass) when vision_msgs is installed. Every entity gets its own copy
    of its QoS profile: rclpy writes `qos_overrides.*` parameters into the profile it is given,
    and a shared module constant would carry one node's overrides to every later node.
    """
    qos_opts = QoSOverridingOptions.with_default_policies
    pubs = {
        name: e.publisher(Image, f'~/{name}', copy(OUTPUT_QOS), qos_overriding_options=qos_opts())
        for name in IMAGE_OUTPUTS
    }
    pubs['overlay/compressed'] = e.publisher(
        CompressedImage,
        '~/overlay/compressed',
        copy(OUTPUT_QOS),
        qos_overriding_options=qos_opts(),
    )
    pubs['image_plane'] = e.publisher(
        PointCloud2, '~/image_plane', copy(OUTPUT_QOS), qos_overriding_options=qos_opts()
    )
    outputs = OutputPublisher(pubs, s.class_colors)
    labels = LabelInfoPublisher(
        e.publisher(String, '~/label_info_json', copy(LATCHED_QOS)),
        e.publisher(vision[0], '~/label_info', copy(LATCHED_QOS)) if vision is not None else None,
        vision,
    )
    tf_buffer, tf_listener = make_tf_buffer(node)
    if tf_listener is not None:
        e.keep(tf_listener)
    clicks = ClickMapper(ImagePlane(), tf_buffer=tf_buffer)  # stride set by the node

    if s.image_transport == 'compressed':
        e.subscription(
            CompressedImage,
            'image/compressed',
            node._on_compressed,
            copy(IMAGE_QOS),
            qos_overriding_options=qos_opts(),
        )
    else:
        e.subscription(
            Image, 'image', node._on_image, copy(IMAGE_QOS), qos_overriding_options=qos_opts()
        )
    e.subscription(
        CameraInfo,
        'camera_info',
        node._on_camera_info,
        copy(IMAGE_QOS),
        qos_overriding_options=qos_opts(),
    )
    for topic in CLICK_TOPICS:
        e.subscription(Point, topic, lambda m, t=topic: node._on_click(m, t), copy(INPUT_QOS))
    e.subscription(PointStamped, '~/click_stamped', node._on_click_stamped, copy(INPUT_QOS))
    e.subscription(PolygonStamped, '~/stroke', node._on_stroke, copy(INPUT_QOS))
    e.subscription(RegionOfInterest, '~/box', node._on_box, copy(INPUT_QOS))
    e.subscription(String, '~/annotations', node._on_annotations, copy(INPUT_QOS))
    e.subscription(Image, '~/mask_annotation', node._on_mask_annotation, copy(INPUT_QOS))
    e.subscription(
        PointStamped, '~/clicked_point', lambda m: node._on_rviz_point(m, None), copy(INPUT_QOS)
    )
    for cid, token in enumerate(class_topic_names(s.class_names)):
        e.subscription(
            PointStamped,
            f'~/clicked_point/{token}',
            lambda m, c=cid: node._on_rviz_point(m, c),
            copy(INPUT_QOS),
        )

    group = MutuallyExclusiveCallbackGroup()  # services may wait; inputs keep flowing
    for op in TRIGGER_SERVICES:
        e.service(
            Trigger, f'~/{op}', lambda req, resp, o=op: node._serve(o, resp), callback_group=group
        )
    e.service(SetBool, '~/enable', node._on_enable, callback_group=group)
    return outputs, clicks, labels
