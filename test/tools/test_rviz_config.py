# SPDX-License-Identifier: Apache-2.0
"""Tests of segdip_ros.tools.rviz_config and the shipped rviz/segdip.rviz."""

from pathlib import Path

import pytest
import yaml

from segdip_ros.tools.rviz_config import (
    DEFAULT_CLASSES,
    class_names_from_params,
    main,
    make_rviz_config,
    node_topic,
    render_rviz_config,
    write_rviz_config,
)

SHIPPED = Path(__file__).resolve().parents[2] / 'rviz' / 'segdip.rviz'


def _topics(cfg, kind):
    vm = cfg['Visualization Manager']
    items = vm['Displays'] if kind == 'display' else vm['Tools']
    return [(item['Class'], item['Topic']['Value']) for item in items if 'Topic' in item]


def test_generated_file_parses_and_names_expected_topics(tmp_path):
    out = tmp_path / 'x.rviz'
    assert (
        main(
            [
                '--classes',
                'road, Traffic Sign,sky',
                '--node-name',
                'seg',
                '--namespace',
                '/robot1/',
                '--image-topic',
                'camera/image_raw',
                '--out',
                str(out),
            ]
        )
        == 0
    )
    cfg = yaml.safe_load(out.read_text())
    vm = cfg['Visualization Manager']
    assert vm['Global Options']['Fixed Frame'] == 'segdip_image_plane'
    assert _topics(cfg, 'display') == [
        ('rviz_default_plugins/PointCloud2', '/robot1/seg/image_plane'),
        ('rviz_default_plugins/Image', '/robot1/camera/image_raw'),
        ('rviz_default_plugins/Image', '/robot1/seg/overlay'),
        ('rviz_default_plugins/Image', '/robot1/seg/mask'),
    ]
    assert _topics(cfg, 'tool') == [
        ('rviz_default_plugins/PublishPoint', '/robot1/seg/clicked_point'),
        ('rviz_default_plugins/PublishPoint', '/robot1/seg/clicked_point/road'),
        ('rviz_default_plugins/PublishPoint', '/robot1/seg/clicked_point/traffic_sign'),
        ('rviz_default_plugins/PublishPoint', '/robot1/seg/clicked_point/sky'),
    ]
    classes = [t['Class'] for t in vm['Tools']]
    assert classes[:2] == ['rviz_default_plugins/Interact', 'rviz_default_plugins/MoveCamera']
    assert all('Single click' in t for t in vm['Tools'] if t['Class'].endswith('PublishPoint'))
    cloud = vm['Displays'][0]
    assert (cloud['Style'], cloud['Color Transformer']) == ('Flat Squares', 'RGB8')
    assert vm['Views']['Current']['Class'] == 'rviz_default_plugins/TopDownOrtho'


def test_one_point_tool_per_class_and_absolute_image_topic_kept():
    cfg = make_rviz_config(['a'], image_topic='/cam/image', fixed_frame='plane2')
    assert len(_topics(cfg, 'tool')) == 2  # generic + one class
    assert _topics(cfg, 'display')[1][1] == '/cam/image'
    assert cfg['Visualization Manager']['Global Options']['Fixed Frame'] == 'plane2'


def test_view_is_centred_on_the_image_and_squares_cover_the_stride():
    cfg = make_rviz_config(
        ['a'], plane_scale=0.02, plane_stride=3, image_width=100, image_height=50
    )
    view = cfg['Visualization Manager']['Views']['Current']
    assert (view['X'], view['Y'], view['Scale']) == pytest.approx((1.0, -0.5, 50.0))
    assert cfg['Visualization Manager']['Displays'][0]['Size (m)'] == pytest.approx(0.06)


def test_shipped_config_matches_generator():
    expected = render_rviz_config(make_rviz_config(list(DEFAULT_CLASSES)))
    assert SHIPPED.read_text() == expected, (
        'rviz/segdip.rviz is stale: run segdip_rviz_config --out rviz/segdip.rviz'
    )


def test_main_to_stdout(capsys):
    assert main(['--classes', 'x']) == 0
    assert '/segdip/clicked_point/x' in capsys.readouterr().out


@pytest.mark.parametrize(
    'argv, message',
    [
        (['--classes', 'a,A'], 'both map to topic token'),
        (['--classes', ','], 'at least one class'),
        (['--classes', 'a', '--image-size', '640'], 'must look like 640x480'),
        (['--classes', 'a', '--node-name', 'a/b'], 'single non-empty token'),
    ],
)
def test_main_reports_bad_arguments(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_node_topic():
    assert node_topic('segdip', '', 'overlay') == '/segdip/overlay'
    assert node_topic('n', '/a/b/', 'clicked_point/x') == '/a/b/n/clicked_point/x'


def test_config_for_a_namespaced_node_takes_its_classes_from_the_params_file(tmp_path):
    params = tmp_path / 'p.yaml'
    params.write_text(
        yaml.safe_dump(
            {
                '/**': {'ros__parameters': {'class_names': ['floor', 'box']}},
                '/r2/segdip': {
                    'ros__parameters': {'num_classes': 3, 'class_names': ['sea', 'boat']}
                },
            }
        )
    )
    assert class_names_from_params(params, 'segdip', 'r1') == ['floor', 'box']
    assert class_names_from_params(params, 'segdip', '/r2') == ['sea', 'boat', 'class_2']
    out = tmp_path / 'r2.rviz'
    assert main(['--params-file', str(params), '--namespace', 'r2', '--out', str(out)]) == 0
    cfg = yaml.safe_load(out.read_text())
    assert [t for _, t in _topics(cfg, 'tool')] == [
        '/r2/segdip/clicked_point',
        '/r2/segdip/clicked_point/sea',
        '/r2/segdip/clicked_point/boat',
        '/r2/segdip/clicked_point/class_2',
    ]
    assert ('rviz_default_plugins/Image', '/r2/image') in _topics(cfg, 'display')
    shipped = class_names_from_params(
        SHIPPED.parents[1] / 'config' / 'segdip.yaml', 'segdip', 'anything'
    )
    assert shipped == list(DEFAULT_CLASSES)


def test_write_rviz_config_matches_the_renderer_and_bad_params_files_are_refused(tmp_path):
    path = write_rviz_config(tmp_path / 'x.rviz', ['a', 'b'], namespace='/r1/')
    assert open(path).read() == render_rviz_config(make_rviz_config(['a', 'b'], namespace='r1'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('- just\n- a list\n')
    with pytest.raises(ValueError, match='not a ROS 2 parameter file'):
        class_names_from_params(bad)
    assert main(['--params-file', str(tmp_path / 'missing.yaml')]) == 2
