# SPDX-License-Identifier: Apache-2.0
"""Images and messages the node publishes, built from a frame and its TrainingSession.

Every image output copies the header of the frame it was computed for (never now()), so
bag replay and message synchronizers line masks up with camera frames. Outputs are built
only for topics somebody subscribes to, and rebuilt only when the model or the annotations
changed; otherwise the cached messages are sent again (late-joining RViz displays).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from segdip_ros.core import Annotation, Box, Click, Stroke, TrainingSession
from segdip_ros.ros.convert import (
    float_to_32fc1_msg,
    labels_to_mono8_msg,
    rgb_to_image_msg,
    rgb_to_jpeg_msg,
)
from segdip_ros.ros.image_plane import ImagePlane, overlay_to_cloud

__all__ = [
    'UNLABELLED',
    'OutputPublisher',
    'diagnostic_values',
    'diagnostics_msg',
    'label_info_json',
    'render_overlay',
]

UNLABELLED = 255
OVERLAY_ALPHA = 0.45


def render_overlay(
    rgb: np.ndarray,
    labels: np.ndarray,
    annotations: Sequence[Annotation],
    colors: Sequence[tuple[int, int, int]],
    alpha: float = OVERLAY_ALPHA,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the image blended with class colours where labelled (labels !=
    255), class boundaries darkened, annotations drawn on top (clicks as dots with a white
    ring, strokes as lines, boxes as rectangles) in their class colour."""
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(colors)] = np.clip(np.asarray(colors), 0, 255).astype(np.uint8)
    out = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    labelled = labels != UNLABELLED
    if labelled.any():
        # uint8 blends by OpenCV (a camera frame per publish: float numpy took ~47 ms at 854x480)
        labels = np.ascontiguousarray(labels, dtype=np.uint8)
        tint = cv2.LUT(cv2.merge([labels, labels, labels]), palette.reshape(256, 1, 3))
        blend = cv2.addWeighted(out, 1.0 - alpha, tint, alpha, 0.0)
        edges = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        cv2.copyTo(cv2.convertScaleAbs(blend, alpha=0.4), edges, blend)  # boundaries darker
        cv2.copyTo(blend, labelled.view(np.uint8), out)
    h, w = labels.shape
    r = max(2, int(round(max(h, w) / 160)))
    for a in annotations:
        color = (
            tuple(int(c) for c in colors[int(a.class_id)])
            if 0 <= int(a.class_id) < len(colors)
            else (255, 255, 255)
        )
        if isinstance(a, Click):
            centre = (int(round(a.x)), int(round(a.y)))
            cv2.circle(out, centre, r + 1, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(out, centre, r, color, -1, cv2.LINE_AA)
        elif isinstance(a, Stroke):
            pts = np.round(np.asarray(a.points, np.float64)).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(out, [pts], False, color, max(1, int(round(a.width))), cv2.LINE_AA)
        elif isinstance(a, Box):
            cv2.rectangle(out, (int(a.x0), int(a.y0)), (int(a.x1), int(a.y1)), color, 1)
    return out


def label_info_json(names: Sequence[str], colors: Sequence[tuple[int, int, int]]) -> str:
    """The latched ~/label_info_json text: class ids, names, colours and the unlabelled id."""
    return json.dumps(
        {
            'classes': [
                {
                    'id': i,
                    'name': n,
                    'color': [int(c) for c in colors[i]],
                    'color_hex': '#%02x%02x%02x' % tuple(colors[i]),
                }
                for i, n in enumerate(names)
            ],
            'unlabelled_id': UNLABELLED,
            'mask_encoding': 'mono8',
        }
    )


def diagnostics_msg(
    stamp: Any, name: str, hardware_id: str, values: dict[str, Any], level: int, message: str
) -> DiagnosticArray:
    """One DiagnosticStatus with the values as strings (diagnostic_msgs carries text only)."""
    st = DiagnosticStatus(
        level=bytes([level]) if isinstance(DiagnosticStatus().level, bytes) else level,
        name=name,
        message=message,
        hardware_id=hardware_id,
    )
    st.values = [
        KeyValue(key=k, value=(f'{v:.4g}' if isinstance(v, float) else str(v)))
        for k, v in values.items()
    ]
    arr = DiagnosticArray()
    arr.header.stamp = stamp
    arr.status = [st]
    return arr


def diagnostic_values(
    trainer: Any,
    mode: str,
    device: str,
    lifecycle_state: str,
    active: bool,
    counters: dict[str, int],
) -> tuple[dict[str, Any], int]:
    """The node's /diagnostics key-values and level (0 OK, 1 WARN after a training error).

    `trainer` is the node_trainer.Trainer, or None while the node is unconfigured; `counters`
    holds frames_received, frames_rejected, inputs_rejected, warnings, callback_errors (the
    CallbackGuard's count) and log_records (annotation log records written).
    """
    guarded = counters['callback_errors']
    if trainer is None:
        return (
            {
                'state': lifecycle_state,
                'lifecycle': lifecycle_state,
                'device': device,
                'callback_errors': guarded,
            },
            0 if not guarded else 1,
        )
    st, session = trainer.stats, trainer.session
    values = {
        'state': st.state if active else lifecycle_state,
        'lifecycle': lifecycle_state,
        'enabled': not trainer.paused,
        'mode': mode,
        'device': str(session.device) if session is not None else device,
        'iterations_per_second': st.iterations_per_second,
        'loss': st.loss,
        'iteration': st.iteration,
        'frame_index': st.frame_index,
        'frames_received': counters['frames_received'],
        'frames_dropped': st.frames_dropped,
        'catch_up_frames': st.catch_up_frames,
        'frames_rejected': counters['frames_rejected'],
        'frames_used': st.frames_used,
        'annotations': len(session.annotations)
        if session is not None and session.has_image
        else 0,
        'annotations_accepted': st.annotations_accepted,
        'annotations_rejected': st.annotations_rejected + counters['inputs_rejected'],
        'annotations_pending': trainer.pending_commands,
        'checkpoints': st.checkpoints,
        'warnings': counters['warnings'],
        'callback_errors': guarded,
        'log_errors': st.log_errors,
        'log_records': counters['log_records'],
    }
    return values, 0 if not st.last_error and not guarded else 1


class OutputPublisher:
    """Builds and publishes mask, overlay, reconstruction, confidence and the image plane.

    `pubs` maps 'mask', 'overlay', 'overlay/compressed', 'reconstruction', 'confidence',
    'image_plane' to rclpy publishers. `colors`, `jpeg_quality` and plane settings may be
    replaced live (attributes).
    """

    IMAGES = ('mask', 'overlay', 'overlay/compressed', 'reconstruction', 'confidence')

    def __init__(self, pubs: dict[str, Any], colors: Sequence[tuple[int, int, int]]) -> None:
        self.pubs = pubs
        self.colors = list(colors)
        self.plane = ImagePlane()
        self.plane_stride = 2
        self.plane_period = 0.5  # s; 0 = off
        self.jpeg_quality = 80
        self._key: Any = None
        self._msgs: dict[str, Any] = {}
        self._overlay: np.ndarray | None = None
        self._plane_due = 0.0
        self.last_overlay: np.ndarray | None = None

    def _wanted(self, name: str) -> bool:
        pub = self.pubs.get(name)
        return pub is not None and pub.get_subscription_count() > 0

    def overlay_for(self, rgb: np.ndarray, session: TrainingSession) -> np.ndarray:
        """The overlay of the session's current state (used by ~/save too)."""
        return render_overlay(rgb, session.predict().labels, session.annotations, self.colors)

    def publish(self, frame: Any, session: TrainingSession, final: bool, now: float) -> None:
        """Publish outputs of `frame` (a node.state.Frame); `now` is a monotonic time."""
        key = (
            frame.stamp_ns,
            id(frame),
            session.iteration,
            session.annotations,
            tuple(self.colors),
            self.jpeg_quality,
        )
        if key != self._key:
            self._key = key
            self._msgs = {}
            self._overlay = None
        header = frame.header
        wants = {n: self._wanted(n) for n in self.IMAGES}
        plane_due = (
            self.plane_period > 0 and now >= self._plane_due and self._wanted('image_plane')
        )
        if wants['mask'] and 'mask' not in self._msgs:
            self._msgs['mask'] = labels_to_mono8_msg(session.predict().labels, header)
        need_overlay = wants['overlay'] or wants['overlay/compressed'] or plane_due or final
        if need_overlay and self._overlay is None:
            self._overlay = self.overlay_for(frame.rgb, session)
            self.last_overlay = self._overlay
        if wants['overlay'] and 'overlay' not in self._msgs:
            self._msgs['overlay'] = rgb_to_image_msg(self._overlay, header)
        if wants['overlay/compressed'] and 'overlay/compressed' not in self._msgs:
            self._msgs['overlay/compressed'] = rgb_to_jpeg_msg(
                self._overlay, header, self.jpeg_quality
            )
        if wants['reconstruction'] and 'reconstruction' not in self._msgs:
            self._msgs['reconstruction'] = rgb_to_image_msg(session.reconstruction(), header)
        if wants['confidence'] and 'confidence' not in self._msgs:
            conf = session.predict().probabilities.max(axis=2)
            self._msgs['confidence'] = float_to_32fc1_msg(conf, header)
        for name, msg in self._msgs.items():
            if wants.get(name):
                self.pubs[name].publish(msg)
        if plane_due:
            self._plane_due = now + self.plane_period
            cloud = overlay_to_cloud(self._overlay, header, self.plane, self.plane_stride)
            self.pubs['image_plane'].publish(cloud)
