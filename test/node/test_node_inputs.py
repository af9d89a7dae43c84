# SPDX-License-Identifier: Apache-2.0
"""Parsing, rate-limited warnings and parameter validation of the node (no node running),
plus the shipped config, launch and RViz files against the node's names."""

from __future__ import annotations

import ast
import json
import py_compile
import types
from pathlib import Path

import pytest
import yaml
from node_harness import Harness

from segdip_ros.core import PRESETS, Box, Click, Stroke, default_preset, paper_preset
from segdip_ros.node.inputs import (
    Command,
    InputError,
    WarningLimiter,
    command_to_dict,
    parse_annotation_json,
    point_to_click,
    polygon_to_stroke,
    roi_to_box,
)
from segdip_ros.node.params import PARAMS, check_settings, engine_config, parse_color

ROOT = Path(__file__).resolve().parents[2]


def _raw(**kw):
    raw = {k: v.default for k, v in PARAMS.items()}
    raw.update(kw)
    return raw


def test_json_schema_round_trip():
    c = parse_annotation_json(
        '{"type":"click","x":12.5,"y":40.0,"class_id":1,"stamp":{"sec":3,"nanosec":5}}', 2
    )
    assert c == Command('add', Click(12.5, 40.0, 1), 3_000_000_005, 'annotations')
    assert command_to_dict(c) == {
        'type': 'click',
        'x': 12.5,
        'y': 40.0,
        'class_id': 1,
        'stamp': {'sec': 3, 'nanosec': 5},
    }
    s = parse_annotation_json(
        json.dumps({'type': 'stroke', 'points': [[1, 2], [3, 4]], 'class_id': 0, 'width': 3.0}), 2
    )
    assert s.annotation == Stroke(((1.0, 2.0), (3.0, 4.0)), 0, 3.0) and s.stamp_ns == 0
    b = parse_annotation_json('{"type":"box","x0":1,"y0":2,"x1":5,"y1":6,"class_id":1}', 2)
    assert b.annotation == Box(1, 2, 5, 6, 1)
    assert parse_annotation_json('{"type":"undo"}', 2).kind == 'undo'
    assert (
        parse_annotation_json('{"type":"clear","stamp":{"sec":1,"nanosec":0}}', 2).stamp_ns
        == 1_000_000_000
    )


@pytest.mark.parametrize(
    'text,key',
    [
        ('not json', 'json'),
        ('[1, 2]', 'json'),
        ('{"type":"click","x":1,"y":2}', 'json'),
        ('{"type":"blob","class_id":1}', 'json'),
        ('{"type":"click","x":1,"y":2,"class_id":2}', 'class'),
        ('{"type":"click","x":1,"y":2,"class_id":1,"stamp":{"sec":-1}}', 'json'),
    ],
)
def test_bad_json_is_refused_with_reason(text, key):
    with pytest.raises(InputError) as err:
        parse_annotation_json(text, 2)
    assert err.value.key == key and str(err.value)


def test_pixel_clicks_clamp_and_refuse():
    assert point_to_click(160.0, 120.0, 1, (120, 160)) == Click(159.0, 119.0, 1)  # rqt rounding
    with pytest.raises(InputError, match='outside the 160x120 image'):
        point_to_click(400, 10, 1, (120, 160))
    with pytest.raises(InputError, match='not finite'):
        point_to_click(float('nan'), 1, 1, None)
    pts = [types.SimpleNamespace(x=1.0, y=2.0, z=0.0), types.SimpleNamespace(x=5.0, y=2.0, z=0.0)]
    assert polygon_to_stroke(pts, 1, 2.0) == Stroke(((1.0, 2.0), (5.0, 2.0)), 1, 2.0)
    roi = types.SimpleNamespace(x_offset=10, y_offset=20, width=5, height=4)
    assert roi_to_box(roi, 0) == Box(10, 20, 14, 23, 0)
    with pytest.raises(InputError):
        roi_to_box(types.SimpleNamespace(x_offset=0, y_offset=0, width=0, height=4), 0)


def test_warning_limiter_once_per_reason_then_summary():
    logged, now = [], [0.0]
    lim = WarningLimiter(logged.append, period=10.0, clock=lambda: now[0])
    for i in range(5):
        lim.report('image', f'data has {100 + i} bytes, needs 200')
    lim.report('json', 'bad')
    assert len(logged) == 2 and lim.emitted == 2 and lim.total('image') == 5
    now[0] = 11.0
    lim.report('image', 'data has 7 bytes, needs 200')
    assert logged[-1].endswith('(4 more since the last report)')


def test_warning_limiter_stays_bounded_when_every_message_is_different():
    # the sender's own text is quoted in the reasons: 10,000 different non-JSON strings must
    # not give 10,000 warnings, nor 10,000 entries in the limiter's tables
    logged = []
    lim = WarningLimiter(logged.append, period=10.0, clock=lambda: 0.0, max_keys=8)
    for i in range(10_000):
        text = ''.join(chr(ord('a') + int(d)) for d in str(i))  # no digits: all distinct keys
        with pytest.raises(InputError) as err:
            parse_annotation_json(text, 2)
        lim.report(err.value.key, str(err.value))
    lim.report('image', 'another category is still reported on its own')
    assert lim.total('json') == 10_000 and lim.total() == 10_001
    assert len(lim.counts) == 8 + 1 + 1 and len(logged) == lim.emitted == 8 + 1 + 1
    assert logged[-1].startswith('another category')


def test_settings_validation_reasons():
    s = check_settings(_raw())
    assert s.class_names == ('background', 'object') and s.active_class == 1
    assert engine_config(s) == default_preset(2)
    cfg = engine_config(check_settings(_raw(working_size=96, preset='paper', num_classes=3)))
    assert cfg == paper_preset(3, working_size=96)
    assert check_settings(_raw(num_classes=4)).class_names[3] == 'class_3'
    for bad, match in [
        ({'active_class': 2}, 'active_class'),
        ({'mode': 'fast'}, 'mode'),
        ({'device': 'tpu'}, 'device'),
        ({'class_colors': ['red']}, 'colour'),
        ({'class_names': ['a', 'A']}, 'topic token'),
        ({'working_size': 8}, 'working_size'),
        ({'working_size': -1}, 'working_size'),
        ({'preset': 'fast'}, 'preset'),
        ({'image_transport': 'theora'}, 'image_transport'),
        ({'publish_rate': 0.0}, 'publish_rate'),
        ({'torch_threads': -2}, 'torch_threads'),
        ({'dataset_keyframes': 'often'}, 'dataset_keyframes'),
        ({'dataset_keyframes': '0s'}, 'dataset_keyframes'),
        ({'num_classes': 1}, 'num_classes'),
        ({'num_classes': 2, 'class_names': ['a', 'b', 'c']}, 'class_names'),
        ({'num_classes': 2, 'class_colors': ['#000000'] * 3}, 'class_colors'),
    ]:
        with pytest.raises(ValueError, match=match):
            check_settings(_raw(**bad))
    assert parse_color('#ff0080') == (255, 0, 128)


def test_the_parameter_table_is_small_and_says_the_presets_values():
    assert len(PARAMS) <= 16  # half of the 33 the node had
    for name, spec in PARAMS.items():
        assert spec.description.strip(), name
    desc = PARAMS['working_size'].description
    for name, make in PRESETS.items():  # generated from the presets
        assert f'{name} {make().working_size}' in desc


def test_config_file_loads_as_node_parameters():
    path = ROOT / 'config' / 'segdip.yaml'
    data = yaml.safe_load(path.read_text())
    params = data['/**']['ros__parameters']
    # every parameter is in the file; an empty list can only be given as a comment there
    assert set(params) == set(PARAMS) - {'engine_overrides'}, set(params) ^ set(PARAMS)
    assert '# engine_overrides: [' in path.read_text()
    h = Harness(
        12,
        None,
        args=[
            '--ros-args',
            '--params-file',
            str(path),
            '-p',
            'torch_threads:=1',
            '-p',
            'mode:=still',
        ],
    )
    try:
        node = h.node
        for name, value in params.items():
            if name not in ('mode', 'torch_threads'):
                assert node.get_parameter(name).value == value, name
        assert node.settings.mode == 'still'
    finally:
        h.close()


def _launch_calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, 'id', getattr(n.func, 'attr', None)) == name
    ]


def _kwarg(call: ast.Call, name: str) -> ast.AST:
    return next(k.value for k in call.keywords if k.arg == name)


def test_launch_file_declares_its_arguments_and_wires_them():
    """Read with ast, never imported: launch_ros is not on PyPI."""
    path = ROOT / 'launch' / 'segdip.launch.py'
    py_compile.compile(str(path), doraise=True)
    text = path.read_text()
    tree = ast.parse(text)
    for needle in ("PACKAGE = 'segdip_ros'", "EXECUTABLE = 'segdip_node'", "NODE_NAME = 'segdip'"):
        assert needle in text
    declared = {c.args[0].value for c in _launch_calls(tree, 'DeclareLaunchArgument')}
    assert declared == {
        'image',
        'camera_info',
        'config',
        'device',
        'namespace',
        'use_sim_time',
        'rviz',
        'web',
    }
    used = {c.args[0].value for c in _launch_calls(tree, 'LaunchConfiguration')}
    assert declared <= used, declared - used
    node = next(
        c
        for c in _launch_calls(tree, 'Node')
        if ast.unparse(_kwarg(c, 'executable')) == 'EXECUTABLE'
    )
    assert ast.unparse(_kwarg(node, 'namespace')) == "LaunchConfiguration('namespace')"
    remaps = ast.unparse(_kwarg(node, 'remappings'))
    assert "('camera_info', LaunchConfiguration('camera_info'))" in remaps
    assert (
        "('image', image)" in remaps and "('image/compressed', [image, '/compressed'])" in remaps
    )
    params = ast.unparse(_kwarg(node, 'parameters'))
    assert "'use_sim_time': LaunchConfiguration('use_sim_time')" in params
    assert "LaunchConfiguration('config')" in params
    # rviz:=true writes a config for the launched namespace, classes and image topic
    rviz = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == '_rviz')
    body = ast.unparse(rviz)
    assert 'class_names_from_params(config, NODE_NAME, namespace)' in body
    assert 'namespace=namespace' in body and 'image_topic=image' in body
    opaque = _launch_calls(tree, 'OpaqueFunction')[0]
    assert ast.unparse(_kwarg(opaque, 'function')) == '_rviz'
    assert "IfCondition(LaunchConfiguration('rviz'))" in ast.unparse(_kwarg(opaque, 'condition'))
    setup = (ROOT / 'setup.py').read_text()
    assert 'segdip_node = segdip_ros.segdip_node:main' in setup


def test_rviz_file_names_node_topics():
    text = (ROOT / 'rviz' / 'segdip.rviz').read_text()
    for topic in (
        '/segdip/image_plane',
        '/segdip/overlay',
        '/segdip/mask',
        '/segdip/clicked_point',
        '/segdip/clicked_point/background',
        '/segdip/clicked_point/object',
    ):
        assert f'Value: {topic}\n' in text, topic


def test_engine_overrides_are_typed_and_refused_with_a_reason():
    s = check_settings(
        _raw(
            engine_overrides=[
                'iterations_per_click=30',
                'tcl_lambda=0.01',
                'seg_trains_trunk=true',
                'refine=none',
            ]
        )
    )
    cfg = engine_config(s)
    assert (cfg.iterations_per_click, cfg.tcl_lambda, cfg.seg_trains_trunk, cfg.refine) == (
        30,
        0.01,
        True,
        'none',
    )
    for bad, match in [
        (['width'], "'name=value'"),
        (['colour=red'], "'name=value'"),
        (['working_size=100'], "'name=value'"),
        (['width=wide'], 'width=wide'),
        (['seg_trains_trunk=yes'], 'true or false'),
        (['tcl_lambda=2'], 'tcl_lambda'),
        (['refine=crf'], 'refine'),
        (['num_classes=3'], "'name=value'"),
    ]:
        with pytest.raises(ValueError, match=match):
            check_settings(_raw(engine_overrides=bad))


def test_the_keyframe_policy_is_one_parameter():
    from segdip_ros.node.params import parse_keyframes

    assert parse_keyframes('off') == ('off', 0.0)
    assert parse_keyframes('annotated') == ('annotated', 0.0)
    assert parse_keyframes('10s') == ('off', 10.0)
    assert parse_keyframes('annotated, 2.5s') == ('annotated', 2.5)
    for bad in ('sometimes', 'annotated,xs', '-3s'):
        with pytest.raises(ValueError, match='dataset_keyframes'):
            parse_keyframes(bad)
