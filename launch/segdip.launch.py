# SPDX-License-Identifier: Apache-2.0
"""Start segdip_node (node name 'segdip') with its config file; optionally RViz2.

    ros2 launch segdip_ros segdip.launch.py image:=/camera/image_raw device:=cuda
    ros2 launch segdip_ros segdip.launch.py config:=/path/my.yaml namespace:=robot1 rviz:=true

Arguments: image (topic, remapped onto the node's `image`; `<image>/compressed` and the
matching `camera_info` are remapped with it), camera_info, config (parameter file),
device (overrides the config file), namespace, rviz (start rviz2 with rviz/segdip.rviz,
which is made for node 'segdip' without namespace).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'segdip_ros'
EXECUTABLE = 'segdip_node'
NODE_NAME = 'segdip'


def generate_launch_description() -> LaunchDescription:
    image = LaunchConfiguration('image')
    camera_info = LaunchConfiguration('camera_info')
    config = LaunchConfiguration('config')
    device = LaunchConfiguration('device')
    namespace = LaunchConfiguration('namespace')
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument('image', default_value='image',
                              description='camera image topic'),
        DeclareLaunchArgument('camera_info', default_value='camera_info',
                              description='CameraInfo of the camera (3D RViz clicks)'),
        DeclareLaunchArgument('config',
                              default_value=PathJoinSubstitution([share, 'config',
                                                                  'segdip.yaml']),
                              description='parameter file (segdip: ros__parameters: ...)'),
        DeclareLaunchArgument('device', default_value='auto',
                              description='auto | cpu | cuda | cuda:N (overrides config)'),
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument('rviz', default_value='false', description='start rviz2 too'),
        Node(
            package=PACKAGE, executable=EXECUTABLE, name=NODE_NAME, namespace=namespace,
            output='screen', emulate_tty=True,
            parameters=[config, {'device': device}],
            remappings=[('image', image),
                        ('image/compressed', [image, '/compressed']),
                        ('camera_info', camera_info)],
        ),
        Node(
            package='rviz2', executable='rviz2', name='rviz2', output='screen',
            arguments=['-d', PathJoinSubstitution([share, 'rviz', 'segdip.rviz'])],
            condition=IfCondition(LaunchConfiguration('rviz')),
        ),
    ])
