# SPDX-License-Identifier: Apache-2.0
"""The node under a namespace: the '/**' parameter file keeps its values there, and two nodes
in two namespaces on two cameras (one process, one context) keep their classes and outputs
apart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from geometry_msgs.msg import Point
from node_harness import TINY, Harness, header, mask_of
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import String

from segdip_ros.core.synthetic import two_class_scene
from segdip_ros.node.params import PARAMS
from segdip_ros.segdip_node import SegDipNode

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / 'config' / 'segdip.yaml'
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def test_own_params_file_in_the_shipped_form_applies_under_a_namespace(tmp_path):
    values = {
        **TINY,
        'engine_overrides': [*TINY['engine_overrides'], 'iterations_first=7'],
        'active_class': 0,
        'num_classes': 3,
        'class_names': ['floor', 'box', 'wall'],
        'jpeg_quality': 55,
        'mode': 'still',
    }
    changed = ('engine_overrides', 'active_class', 'num_classes', 'jpeg_quality', 'mode')
    assert all(values[k] != PARAMS[k].default for k in changed)
    path = tmp_path / 'mine.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': values}}))
    h = Harness(35, None, args=['--ros-args', '--params-file', str(path), '-r', '__ns:=/r1'])
    try:
        node = h.node
        assert node.get_fully_qualified_name() == '/r1/segdip'
        for name, value in values.items():
            assert node.get_parameter(name).value == value, name
        assert node.settings.class_names == ('floor', 'box', 'wall')
        assert dict(node.settings.engine_overrides)['iterations_first'] == 7
        assert node.trainer.schedule.mode == 'still'
        assert node.resolve_topic_name('~/mask') == '/r1/segdip/mask'
        assert h.tester.count_subscribers('/r1/image') == 1
        assert h.tester.count_subscribers('/r1/segdip/clicked_point/wall') == 1
    finally:
        h.close()


def test_shipped_params_file_loads_under_a_namespace():
    data = yaml.safe_load(SHIPPED.read_text())
    assert list(data) == ['/**'], 'config/segdip.yaml must be keyed /** to survive namespace:='
    params = data['/**']['ros__parameters']
    h = Harness(
        36,
        None,
        args=[
            '--ros-args',
            '--params-file',
            str(SHIPPED),
            '-r',
            '__ns:=/r1',
            '-p',
            'torch_threads:=1',
        ],
    )
    try:
        node = h.node
        assert node.get_namespace() == '/r1' and node.active
        for name, value in params.items():
            if name != 'torch_threads':
                assert node.get_parameter(name).value == value, name
    finally:
        h.close()


def test_two_nodes_in_two_namespaces_do_not_cross_talk():
    scene = two_class_scene()
    h = Harness(37, with_node=False)
    nodes: dict[str, SegDipNode] = {}
    try:
        for ns, names in (('r1', ['ground', 'robot']), ('r2', ['sea', 'boat', 'sky'])):
            overrides = [
                Parameter(k, value=v)
                for k, v in {
                    **TINY,
                    'mode': 'still',
                    'num_classes': len(names),
                    'class_names': names,
                }.items()
            ]
            nodes[ns] = SegDipNode(
                'segdip', namespace=ns, context=h.ctx, parameter_overrides=overrides
            )
            h.executor.add_node(nodes[ns])
        masks = {ns: h.sub(Image, f'/{ns}/segdip/mask') for ns in nodes}
        infos = {ns: h.sub(String, f'/{ns}/segdip/label_info_json', LATCHED) for ns in nodes}
        for ns in nodes:  # each camera on its own topic, remapped by the namespace
            assert h.wait_matched(h.pub(Image, f'/{ns}/image', 5))
            h.send_image(scene.rgb, header(40 if ns == 'r1' else 50), topic=f'/{ns}/image')
        assert h.spin_until(lambda: all(n.trainer.current is not None for n in nodes.values()), 30)
        click = h.pub(Point, '/r1/segdip/overlay_mouse_left', 100)
        assert h.wait_matched(click)
        click.publish(Point(x=88.0, y=60.0, z=0.0))
        assert h.spin_until(lambda: masks['r1'] and 1 in mask_of(masks['r1'][-1]), 60)
        assert h.wait_idle_all(nodes.values(), 60)
        assert h.spin_until(lambda: masks['r2'], 10)
        assert nodes['r1'].trainer.stats.annotations_accepted == 1
        assert nodes['r2'].trainer.stats.annotations_accepted == 0
        assert np.all(mask_of(masks['r2'][-1]) == 255), "r1's click showed up in r2's mask"
        assert masks['r1'][-1].header.stamp.sec == 40 and masks['r2'][-1].header.stamp.sec == 50
        assert h.spin_until(lambda: infos['r1'] and infos['r2'], 5)
        names = {
            ns: [c['name'] for c in json.loads(infos[ns][-1].data)['classes']] for ns in nodes
        }
        assert names == {'r1': ['ground', 'robot'], 'r2': ['sea', 'boat', 'sky']}
    finally:
        for node in nodes.values():
            node.destroy_node()
        h.close()
