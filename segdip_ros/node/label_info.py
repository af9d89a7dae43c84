# SPDX-License-Identifier: Apache-2.0
"""Class names as vision_msgs/LabelInfo, the message ROS 2 perception nodes publish them in.

Why optional: vision_msgs is part of every ROS 2 install's perception stack but has no wheel
on PyPI, so in a plain venv only the JSON topic (`~/label_info_json`, always published) carries
the classes. The builder takes the message classes as arguments, so it is testable without
vision_msgs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from std_msgs.msg import Header, String

from segdip_ros.node.outputs import label_info_json

__all__ = ['LabelInfoPublisher', 'label_info_msg', 'vision_msgs_classes']


def vision_msgs_classes() -> tuple[Any, Any] | None:
    """(LabelInfo, VisionClass) from vision_msgs.msg, or None when vision_msgs is missing."""
    try:
        from vision_msgs.msg import LabelInfo, VisionClass
    except ImportError:
        return None
    return LabelInfo, VisionClass


def label_info_msg(
    names: Sequence[str], header: Any, label_info_cls: Any, vision_class_cls: Any
) -> Any:
    """A LabelInfo with one VisionClass (class_id = mask value, class_name) per class.

    `threshold` stays 0: every pixel gets its most probable class (see ~/confidence for the
    probability). Raises ValueError when a name list is empty or an id does not fit uint16.
    """
    if not names:
        raise ValueError('LabelInfo needs at least one class name')
    if len(names) > 65535:
        raise ValueError(f'{len(names)} classes do not fit VisionClass.class_id (uint16)')
    msg = label_info_cls()
    msg.header = header
    msg.class_map = [vision_class_cls(class_id=i, class_name=str(n)) for i, n in enumerate(names)]
    msg.threshold = 0.0
    return msg


class LabelInfoPublisher:
    """Publishes the class list (latched): JSON always, vision_msgs/LabelInfo when installed."""

    def __init__(
        self, json_pub: Any, vision_pub: Any | None, vision: tuple[Any, Any] | None
    ) -> None:
        self._json_pub, self._vision_pub, self._vision = json_pub, vision_pub, vision

    def publish(
        self, names: Sequence[str], colors: Sequence[tuple[int, int, int]], stamp: Any
    ) -> None:
        """Send both messages; `stamp` (node clock) goes into the LabelInfo header."""
        self._json_pub.publish(String(data=label_info_json(names, colors)))
        if self._vision_pub is not None and self._vision is not None:
            self._vision_pub.publish(label_info_msg(names, Header(stamp=stamp), *self._vision))
