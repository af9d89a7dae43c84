# SPDX-License-Identifier: Apache-2.0
"""ament_python package setup: colcon builds it on a ROS install, pip installs it in a venv."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'segdip_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    # the labelling console's page, read next to segdip_ros/web/server.py
    package_data={'segdip_ros.web': ['static/*.html', 'static/*.js', 'static/*.css']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml')),
        ('share/' + PACKAGE + '/rviz', glob('rviz/*.rviz')),
    ],
    install_requires=[
        'setuptools',
        'numpy',
        'scipy',
        'opencv-python-headless',
        'pyyaml',
        'PyMaxflow',
        'aiohttp',
    ],
    zip_safe=False,
    maintainer='segdip_ros developers',
    maintainer_email='dev@segdip-ros.invalid',
    description='Online interactive semantic segmentation (SegDIP) as a ROS 2 node',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'segdip_node = segdip_ros.segdip_node:main',
            'segdip_demo = segdip_ros.tools.demo:main',
            'segdip-bench = segdip_ros.bench.cli:main',
            'segdip_make_bag = segdip_ros.tools.make_bag:main',
            'segdip_eval_bag = segdip_ros.tools.eval_bag:main',
            'segdip_replay_bag = segdip_ros.tools.replay_bag:main',
            'segdip_rviz_config = segdip_ros.tools.rviz_config:main',
            'segdip_web = segdip_ros.web.bridge:main',
            'segdip_export = segdip_ros.tools.export:main',
        ],
    },
)
