# SPDX-License-Identifier: Apache-2.0
"""Write an RViz2 config for labelling with SegDIP by clicking (``segdip_rviz_config``).

The layout follows ros2/rviz ``rviz_common/default.rviz``: Panels, a Visualization Manager with
Displays, Global Options, Tools and Views. Topics of node outputs are absolute
(``/<namespace>/<node>/...``) because RViz resolves relative names against its own namespace,
not the node's. RViz saves no name per tool, so every class tool shows as "Publish Point" in
the toolbar, in the order: generic ``/<node>/clicked_point``, then one per class in class order;
the Tool Properties panel (included) shows each tool's Topic.

For a node in a namespace, or with the classes of a parameter file (the launch file's
``rviz:=true`` does this for the node it starts)::

    segdip_rviz_config --namespace r1 --params-file my.yaml --out r1.rviz

Usage::

    segdip_rviz_config --classes background,object --out segdip.rviz
    rviz2 -d segdip.rviz
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from segdip_ros.ros.image_plane import DEFAULT_PLANE_FRAME, DEFAULT_PLANE_SCALE, class_topic_names

__all__ = [
    'DEFAULT_CLASSES',
    'DEFAULT_PLANE_STRIDE',
    'class_names_from_params',
    'main',
    'make_rviz_config',
    'node_topic',
    'render_rviz_config',
    'write_rviz_config',
]

DEFAULT_CLASSES = ('background', 'object')
# Squares are drawn stride*scale wide; a larger stride than the node's only makes them overlap.
DEFAULT_PLANE_STRIDE = 2


def node_topic(node_name: str, namespace: str, suffix: str) -> str:
    """Return the absolute topic ``/<namespace>/<node_name>/<suffix>`` (empty parts skipped)."""
    if not node_name or '/' in node_name:
        raise ValueError(f'node name must be a single non-empty token, got {node_name!r}')
    parts = [p for p in namespace.strip('/').split('/') if p] + [node_name, suffix.strip('/')]
    return '/' + '/'.join(p for p in parts if p)


def _resolve(topic: str, namespace: str) -> str:
    """Resolve a topic the node subscribes to as the node would (relative -> node namespace)."""
    if topic.startswith('/'):
        return topic
    if topic.startswith('~'):
        raise ValueError(f'image topic {topic!r} must not be private (~)')
    ns = namespace.strip('/')
    return '/' + (ns + '/' if ns else '') + topic.strip('/')


def _qos(topic: str, reliability: str = 'Reliable') -> dict[str, Any]:
    return {
        'Depth': 5,
        'Durability Policy': 'Volatile',
        'History Policy': 'Keep Last',
        'Reliability Policy': reliability,
        'Value': topic,
    }


def _image_display(
    name: str, topic: str, reliability: str, enabled: bool = True
) -> dict[str, Any]:
    return {
        'Class': 'rviz_default_plugins/Image',
        'Enabled': enabled,
        'Max Value': 1,
        'Median window': 5,
        'Min Value': 0,
        'Name': name,
        'Normalize Range': True,
        'Topic': _qos(topic, reliability),
        'Value': enabled,
    }


def _point_tool(topic: str) -> dict[str, Any]:
    # PointTool: "Topic" is a StringProperty with QoS children, "Single click" a BoolProperty.
    # Single click off: the class tool stays selected, so an operator can click many times.
    return {
        'Class': 'rviz_default_plugins/PublishPoint',
        'Single click': False,
        'Topic': _qos(topic),
    }


def make_rviz_config(
    class_names: Sequence[str],
    node_name: str = 'segdip',
    namespace: str = '',
    image_topic: str = 'image',
    fixed_frame: str = DEFAULT_PLANE_FRAME,
    *,
    plane_scale: float = DEFAULT_PLANE_SCALE,
    plane_stride: int = DEFAULT_PLANE_STRIDE,
    image_width: int = 640,
    image_height: int = 480,
) -> dict[str, Any]:
    """Return an RViz2 config as a dict (dump it with :func:`render_rviz_config`).

    Args:
        class_names: class names in class-id order; each gets a Publish Point tool on
            ``/<ns>/<node>/clicked_point/<class_topic_name(name)>``.
        node_name: the SegDIP node's name.
        namespace: the SegDIP node's namespace ('' or '/' for none).
        image_topic: the node's input image topic, resolved like the node resolves it.
        fixed_frame: RViz fixed frame; the image-plane frame for clicking on the overlay.
        plane_scale: metres per pixel of the node's image plane cloud.
        plane_stride: point stride of that cloud; with the scale it sets the square size so
            the cloud draws without gaps.
        image_width: expected image width, to centre the top-down view on it.
        image_height: expected image height, likewise.
    """
    names = list(class_names)
    if not names:
        raise ValueError('at least one class name is needed')
    tokens = class_topic_names(names)
    if not fixed_frame:
        raise ValueError('fixed_frame must not be empty')
    if plane_scale <= 0 or plane_stride < 1 or image_width < 1 or image_height < 1:
        raise ValueError(
            f'bad plane/image geometry: scale={plane_scale}, stride={plane_stride}, '
            f'size={image_width}x{image_height}'
        )
    cloud = {
        'Alpha': 1,
        'Autocompute Intensity Bounds': True,
        'Channel Name': 'rgb',
        'Class': 'rviz_default_plugins/PointCloud2',
        'Color': '255; 255; 255',
        'Color Transformer': 'RGB8',
        'Decay Time': 0,
        'Enabled': True,
        'Invert Rainbow': False,
        'Max Color': '255; 255; 255',
        'Min Color': '0; 0; 0',
        'Name': 'SegDIP image plane',
        'Position Transformer': 'XYZ',
        'Selectable': True,
        'Size (Pixels)': 3,
        'Size (m)': round(plane_scale * plane_stride, 6),
        'Style': 'Flat Squares',
        'Topic': _qos(node_topic(node_name, namespace, 'image_plane')),
        'Use Fixed Frame': True,
        'Use rainbow': False,
        'Value': True,
    }
    displays = [
        cloud,
        _image_display('Camera image', _resolve(image_topic, namespace), 'Best Effort'),
        _image_display('SegDIP overlay', node_topic(node_name, namespace, 'overlay'), 'Reliable'),
        # mono8 class ids look black in RViz; shown only on demand.
        _image_display(
            'SegDIP mask (class ids)',
            node_topic(node_name, namespace, 'mask'),
            'Reliable',
            enabled=False,
        ),
    ]
    tools: list[dict[str, Any]] = [
        {'Class': 'rviz_default_plugins/Interact', 'Hide Inactive Objects': True},
        {'Class': 'rviz_default_plugins/MoveCamera'},
        _point_tool(node_topic(node_name, namespace, 'clicked_point')),
    ]
    tools += [_point_tool(node_topic(node_name, namespace, 'clicked_point/' + t)) for t in tokens]
    view = {
        'Angle': 0,
        'Class': 'rviz_default_plugins/TopDownOrtho',
        'Invert Z Axis': False,
        'Name': 'Current View',
        'Near Clip Distance': 0.01,
        'Scale': round(1.0 / plane_scale, 6),  # screen px per metre: one screen px per pixel
        'Target Frame': '<Fixed Frame>',
        'Value': 'TopDownOrtho (rviz_default_plugins)',
        'X': round(image_width * plane_scale / 2, 6),
        'Y': round(-image_height * plane_scale / 2, 6),
    }
    return {
        'Panels': [
            {
                'Class': 'rviz_common/Displays',
                'Help Height': 78,
                'Name': 'Displays',
                'Property Tree Widget': {'Expanded': ['/Global Options1'], 'Splitter Ratio': 0.5},
                'Tree Height': 400,
            },
            {
                'Class': 'rviz_common/Tool Properties',
                'Expanded': ['/Publish Point1'],
                'Name': 'Tool Properties',
                'Splitter Ratio': 0.5,
            },
            {
                'Class': 'rviz_common/Views',
                'Expanded': ['/Current View1'],
                'Name': 'Views',
                'Splitter Ratio': 0.5,
            },
        ],
        'Visualization Manager': {
            'Class': '',
            'Displays': displays,
            'Enabled': True,
            'Global Options': {
                'Background Color': '48; 48; 48',
                'Fixed Frame': fixed_frame,
                'Frame Rate': 30,
            },
            'Name': 'root',
            'Tools': tools,
            'Value': True,
            'Views': {'Current': view, 'Saved': None},
        },
        'Window Geometry': {'Height': 846, 'Width': 1200, 'X': 60, 'Y': 60},
    }


def _matches(key: str, node_name: str, namespace: str) -> bool:
    """True when a parameter-file key applies to /<namespace>/<node_name> (ROS 2 rules:
    '/**', '/**/<node>', '<node>', '/<ns>/<node>', with or without the leading slash)."""
    full = node_topic(node_name, namespace, '')
    key = '/' + key.strip().lstrip('/')
    top_level = key == f'/{node_name}' and not namespace.strip('/')
    return key in ('/**', f'/**/{node_name}', full) or top_level


def class_names_from_params(
    path: str | os.PathLike[str], node_name: str = 'segdip', namespace: str = ''
) -> list[str]:
    """The node's class names in a ROS 2 parameter file (``class_names``, padded to
    ``num_classes`` with ``class_<id>`` as the node does), or DEFAULT_CLASSES when the file
    sets none for this node. Raises ValueError when the file is not a parameter file."""
    with open(path, encoding='utf-8') as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ValueError(f'{path} is not a ROS 2 parameter file (no mapping at the top)')
    names: list[str] = list(DEFAULT_CLASSES)
    count: int | None = None
    for key, section in data.items():  # later keys win, as when ROS 2 loads the file
        params = section.get('ros__parameters') if isinstance(section, dict) else None
        if not isinstance(params, dict) or not _matches(str(key), node_name, namespace):
            continue
        if 'class_names' in params:
            names = [str(n) for n in params['class_names']]
        if 'num_classes' in params:
            count = int(params['num_classes'])
    if count is not None:
        names = names[:count] + [f'class_{i}' for i in range(len(names), count)]
    return names


def write_rviz_config(
    path: str | os.PathLike[str], class_names: Sequence[str], **kwargs: Any
) -> str:
    """Write the config of :func:`make_rviz_config` (same keyword arguments) to `path`
    atomically; returns the path."""
    text = render_rviz_config(make_rviz_config(class_names, **kwargs))
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return str(path)


def render_rviz_config(config: dict[str, Any]) -> str:
    """Return the config as RViz-style YAML text (block style, keys in the given order)."""
    header = (
        '# Generated by segdip_rviz_config (segdip_ros.tools.rviz_config); '
        'regenerate rather than edit.\n'
    )
    return header + yaml.safe_dump(config, default_flow_style=False, sort_keys=False, width=100)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='segdip_rviz_config', description=__doc__.split('\n')[0])
    parser.add_argument(
        '--classes',
        default=','.join(DEFAULT_CLASSES),
        help='comma-separated class names in class-id order (default: %(default)s)',
    )
    parser.add_argument('--node-name', default='segdip', help='node name (default: %(default)s)')
    parser.add_argument('--namespace', default='', help='node namespace (default: none)')
    parser.add_argument(
        '--params-file',
        default=None,
        help="take the classes from this ROS 2 parameter file (the node's "
        'class_names for --node-name in --namespace) instead of --classes',
    )
    parser.add_argument(
        '--image-topic',
        default='image',
        help='input image topic of the node (default: %(default)s)',
    )
    parser.add_argument(
        '--fixed-frame',
        default=DEFAULT_PLANE_FRAME,
        help='RViz fixed frame (default: %(default)s)',
    )
    parser.add_argument(
        '--plane-scale',
        type=float,
        default=DEFAULT_PLANE_SCALE,
        help='image plane metres per pixel (default: %(default)s)',
    )
    parser.add_argument(
        '--plane-stride',
        type=int,
        default=DEFAULT_PLANE_STRIDE,
        help='image plane point stride (default: %(default)s)',
    )
    parser.add_argument(
        '--image-size',
        default='640x480',
        help='WIDTHxHEIGHT to centre the view on (default: %(default)s)',
    )
    parser.add_argument('--out', default='-', help='output file, - for stdout (default)')
    return parser.parse_args(argv)


def _parse_size(text: str) -> tuple:
    parts = text.lower().split('x')
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f'--image-size must look like 640x480, got {text!r}')
    return int(parts[0]), int(parts[1])


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0 on success, 2 on a bad argument."""
    args = _parse_args(argv)
    try:
        width, height = _parse_size(args.image_size)
        if args.params_file:
            classes = class_names_from_params(args.params_file, args.node_name, args.namespace)
        else:
            classes = [c for c in (s.strip() for s in args.classes.split(',')) if c]
        config = make_rviz_config(
            classes,
            node_name=args.node_name,
            namespace=args.namespace,
            image_topic=args.image_topic,
            fixed_frame=args.fixed_frame,
            plane_scale=args.plane_scale,
            plane_stride=args.plane_stride,
            image_width=width,
            image_height=height,
        )
    except (ValueError, OSError, yaml.YAMLError) as err:
        print(f'segdip_rviz_config: error: {err}', file=sys.stderr)
        return 2
    text = render_rviz_config(config)
    if args.out == '-':
        sys.stdout.write(text)
    else:
        with open(args.out, 'w', encoding='utf-8') as handle:
            handle.write(text)
        print(
            f'wrote {args.out}: {len(classes)} class tools, fixed frame {args.fixed_frame!r}',
            file=sys.stderr,
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
