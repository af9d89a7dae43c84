# SPDX-License-Identifier: Apache-2.0
"""Start segdip_node (node name 'segdip') with its config file; optionally RViz2.

    ros2 launch segdip_ros segdip.launch.py image:=/camera/image_raw device:=cuda
    ros2 launch segdip_ros segdip.launch.py config:=/path/my.yaml namespace:=r1 rviz:=true

Arguments: image (topic, remapped onto the node's `image`; `<image>/compressed` is remapped
with it), camera_info (remapped onto the node's `camera_info`), config (parameter file; the
shipped one is keyed '/**', so it applies in any namespace), device (overrides the config
file), namespace, use_sim_time (true when replaying a bag with --clock), rviz (start rviz2
with a config written for this node's namespace, classes and image topic), web (start
segdip_web, the labelling console, on http://127.0.0.1:8765/, in the same namespace).
"""

import os
import tempfile

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = 'segdip_ros'
EXECUTABLE = 'segdip_node'
NODE_NAME = 'segdip'


def _rviz(context, *args, **kwargs):
    """RViz2 with a config for the node as launched (namespace, classes, image topic)."""
    from segdip_ros.tools.rviz_config import class_names_from_params, write_rviz_config

    namespace = LaunchConfiguration('namespace').perform(context)
    config = LaunchConfiguration('config').perform(context)
    image = LaunchConfiguration('image').perform(context)
    classes = class_names_from_params(config, NODE_NAME, namespace)
    folder = tempfile.mkdtemp(prefix='segdip_rviz_')
    path = write_rviz_config(
        os.path.join(folder, 'segdip.rviz'),
        classes,
        node_name=NODE_NAME,
        namespace=namespace,
        image_topic=image,
    )
    return [
        Node(
            package='rviz2',
            executable='rviz2',
            name='rviz2',
            namespace=namespace,
            output='screen',
            arguments=['-d', path],
            parameters=[{'use_sim_time': LaunchConfiguration('use_sim_time')}],
        )
    ]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, the node and the optional RViz2."""
    image = LaunchConfiguration('image')
    share = FindPackageShare(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                'image', default_value='image', description='camera image topic'
            ),
            DeclareLaunchArgument(
                'camera_info',
                default_value='camera_info',
                description='CameraInfo of the camera (3D RViz clicks)',
            ),
            DeclareLaunchArgument(
                'config',
                default_value=PathJoinSubstitution([share, 'config', 'segdip.yaml']),
                description="parameter file ('/**: ros__parameters: ...')",
            ),
            DeclareLaunchArgument(
                'device',
                default_value='auto',
                description='auto | cpu | cuda | cuda:N (overrides config)',
            ),
            DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
            DeclareLaunchArgument(
                'use_sim_time',
                default_value='false',
                description='use /clock (bag replay with --clock)',
            ),
            DeclareLaunchArgument(
                'rviz',
                default_value='false',
                description='start rviz2 with a config for this node',
            ),
            DeclareLaunchArgument(
                'web',
                default_value='false',
                description='start segdip_web (labelling console in the browser)',
            ),
            Node(
                package=PACKAGE,
                executable=EXECUTABLE,
                name=NODE_NAME,
                namespace=LaunchConfiguration('namespace'),
                output='screen',
                emulate_tty=True,
                parameters=[
                    LaunchConfiguration('config'),
                    {
                        'device': LaunchConfiguration('device'),
                        'use_sim_time': LaunchConfiguration('use_sim_time'),
                    },
                ],
                remappings=[
                    ('image', image),
                    ('image/compressed', [image, '/compressed']),
                    ('camera_info', LaunchConfiguration('camera_info')),
                ],
            ),
            Node(
                package=PACKAGE,
                executable='segdip_web',
                name='segdip_web',
                namespace=LaunchConfiguration('namespace'),
                output='screen',
                parameters=[
                    {
                        'node': NODE_NAME,  # relative: the node in the same namespace
                        'use_sim_time': LaunchConfiguration('use_sim_time'),
                    }
                ],
                condition=IfCondition(LaunchConfiguration('web')),
            ),
            OpaqueFunction(function=_rviz, condition=IfCondition(LaunchConfiguration('rviz'))),
        ]
    )
