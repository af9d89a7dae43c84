# SPDX-License-Identifier: Apache-2.0
"""segdip_node: SegDIP interactive segmentation as a ROS 2 node (a thin adapter).

A lifecycle node (with `autostart` it configures and activates itself): configure creates the
topics and services of node.interfaces, activate builds or restores the model and trains,
deactivate saves and frees it. The work is elsewhere, in segdip_ros.node (params, inputs,
trainer, outputs, label_info, rviz, store); this file holds the callbacks and transitions.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import rclpy
import rclpy.logging
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PointStamped, PolygonStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from segdip_ros.core import resolve_device
from segdip_ros.node.guard import CallbackGuard
from segdip_ros.node.inputs import (
    Command,
    InputError,
    WarningLimiter,
    check_fits,
    mask_from_image_msg,
    parse_annotation_json,
    point_to_click,
    polygon_to_stroke,
    roi_to_box,
    stamp_to_ns,
)
from segdip_ros.node.interfaces import IMAGE_QOS, OUTPUT_QOS, create_interfaces
from segdip_ros.node.label_info import LabelInfoPublisher, vision_msgs_classes
from segdip_ros.node.lifecycle import Entities, free_session, logged_transition
from segdip_ros.node.outputs import OutputPublisher, diagnostic_values, diagnostics_msg
from segdip_ros.node.params import (
    PARAMS,
    STROKE_WIDTH,
    NodeSettings,
    declare_all,
    engine_config,
    node_value,
    read_settings,
    schedule_for,
)
from segdip_ros.node.resume import restore_trainer
from segdip_ros.node.rviz import ClickMapper
from segdip_ros.node.store import SessionStore
from segdip_ros.node.trainer import Frame, Trainer
from segdip_ros.ros.convert import (
    ImageConversionError,
    compressed_msg_to_rgb,
    copy_header,
    image_msg_to_rgb,
)
from segdip_ros.ros.image_plane import (
    DEFAULT_PLANE_FRAME,
    DEFAULT_PLANE_SCALE,
    ClickGeometryError,
    ImagePlane,
)

__all__ = ['IMAGE_QOS', 'OUTPUT_QOS', 'SegDipNode', 'main']

SERVICE_WAIT = 5.0  # s a service waits for the training thread
IMAGE_PLANE_STRIDE = 2  # every 2nd pixel in ~/image_plane
IMAGE_PLANE_PERIOD = 0.5  # s between ~/image_plane clouds (only while subscribed)
SUCCESS = TransitionCallbackReturn.SUCCESS


class SegDipNode(LifecycleNode):
    """The node. Raises ValueError (with the reason) when a parameter is invalid at start,
    or when `autostart` is on and configure or activate fails."""

    def __init__(self, node_name: str = 'segdip', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_all(self)
        self.settings: NodeSettings = read_settings(node_value(self))
        self.warnings = WarningLimiter(self.get_logger().warning)
        self._warn = self.warnings.report  # (category, message): once per reason, then summaries
        self.guard = CallbackGuard(self._warn)  # wraps every callback
        self.frames_received = 0
        self.frames_rejected = 0
        self.inputs_rejected = 0
        self._last_size: tuple[int, int] | None = None
        self.lifecycle_state = 'unconfigured'
        self.active = False
        self._entities = Entities(self, self.guard)
        self.outputs: OutputPublisher | None = None
        self.clicks: ClickMapper | None = None
        self.store: SessionStore | None = None
        self.trainer: Trainer | None = None
        self._labels: LabelInfoPublisher | None = None
        self._vision = vision_msgs_classes()
        self.add_on_set_parameters_callback(
            self.guard.wrap(
                'parameters',
                self._on_set_parameters,
                lambda err, params: SetParametersResult(
                    successful=False, reason=f'refused: {type(err).__name__}: {str(err)[:200]}'
                ),
            )
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # diagnostics also without /clock
        self._diag_timer = self.create_timer(
            1.0, self.guard.wrap('/diagnostics', self._publish_diagnostics), clock=steady
        )
        if self._vision is None:
            self.get_logger().info(
                'vision_msgs is not installed: no vision_msgs/LabelInfo on '
                '~/label_info; the classes are on ~/label_info_json (JSON)'
            )
        if self.settings.autostart:
            for name, step in (
                ('configure', self.trigger_configure),
                ('activate', self.trigger_activate),
            ):
                if step() != SUCCESS:
                    raise ValueError(f'autostart: {name} failed (see the log above)')

    # ----- lifecycle transitions ---------------------------------------------------------------
    @logged_transition
    def on_configure(self, state: Any) -> TransitionCallbackReturn:
        """Read the parameters, create topics, services and the (idle) training thread."""
        try:
            s = self.settings = read_settings(node_value(self))
        except ValueError as err:
            self.get_logger().error(f'configure refused: {err}')
            return TransitionCallbackReturn.FAILURE
        if s.torch_threads > 0:
            import torch

            torch.set_num_threads(s.torch_threads)
        self.outputs, self.clicks, self._labels = create_interfaces(
            self, self._entities, s, self._vision
        )
        self.store = (
            SessionStore(s.session_dir, s.class_names, s.class_colors) if s.session_dir else None
        )
        self.trainer = Trainer(
            lambda: engine_config(self.settings),
            schedule_for(s),
            self._publish,
            self._warn,
            self.get_logger().info,
            self.store,
            lambda frame, session: self.outputs.overlay_for(frame.rgb, session),
        )
        self._apply_live(s)
        self.lifecycle_state = 'inactive'
        return SUCCESS

    @logged_transition
    def on_activate(self, state: Any) -> TransitionCallbackReturn:
        """Restore the model from session_dir (if set), start training and publishing."""
        self._resume()
        self.trainer.start()
        self.active = True
        self.lifecycle_state = 'active'
        s = self.settings
        topic = 'image/compressed' if s.image_transport == 'compressed' else 'image'
        self.get_logger().info(
            f'segdip active: {s.num_classes} classes {list(s.class_names)}, mode {s.mode}, '
            f'device {s.device}, subscribed to {self.resolve_topic_name(topic)}'
        )
        return super().on_activate(state)

    @logged_transition
    def on_deactivate(self, state: Any) -> TransitionCallbackReturn:
        """Stop training and publishing, write a checkpoint, free the model."""
        self._stop_training()
        self.lifecycle_state = 'inactive'
        return super().on_deactivate(state)

    @logged_transition
    def on_cleanup(self, state: Any) -> TransitionCallbackReturn:
        """Destroy what configure created."""
        self._destroy_entities()
        self.lifecycle_state = 'unconfigured'
        return SUCCESS

    @logged_transition
    def on_shutdown(self, state: Any) -> TransitionCallbackReturn:
        """From any state: stop (and save) if active, then destroy what configure created."""
        self._stop_training()
        self._destroy_entities()
        self.lifecycle_state = 'finalized'
        return SUCCESS

    def _stop_training(self) -> None:
        self.active = False
        if self.trainer is None:
            return
        if not self.trainer.stop():
            self.get_logger().warning('the training thread did not stop within 10 s')
        free_session(self.trainer.release())
        self._last_size = None

    def _destroy_entities(self) -> None:
        self._entities.destroy_all()
        self.outputs = self.clicks = self.store = self.trainer = self._labels = None

    # ----- setup helpers ----------------------------------------------------------------------
    def _apply_live(self, s: NodeSettings) -> None:
        """Apply settings that may change while running (colours, image plane, schedule)."""
        if self.trainer is None:  # not configured (yet): configure applies them
            return
        self.trainer.set_schedule(schedule_for(s))
        self.outputs.colors = list(s.class_colors)
        self.outputs.jpeg_quality = s.jpeg_quality
        self.outputs.plane = ImagePlane(DEFAULT_PLANE_SCALE, DEFAULT_PLANE_FRAME)
        self.outputs.plane_stride = IMAGE_PLANE_STRIDE
        self.outputs.plane_period = IMAGE_PLANE_PERIOD
        self.clicks.plane, self.clicks.stride = self.outputs.plane, IMAGE_PLANE_STRIDE
        self._labels.publish(s.class_names, s.class_colors, self.get_clock().now().to_msg())

    def _resume(self) -> None:
        """Checkpoint + write-ahead log -> the trainer's state (docs/node.md, Durability)."""
        if self.store is not None:
            size = restore_trainer(
                self.store,
                engine_config(self.settings),
                self.settings.num_classes,
                self.trainer,
                self._warn,
                self.get_logger().info,
            )
            self._last_size = size or self._last_size

    # ----- images -------------------------------------------------------------------------------
    def _take_frame(self, msg: Any, decode: Any) -> None:
        if not self.active:  # inactive (lifecycle): frames are not used
            return
        self.frames_received += 1
        try:
            rgb = decode(msg)
        except ImageConversionError as err:
            self.frames_rejected += 1
            self._warn('image', f'image dropped: {err}')
            return
        size = rgb.shape[:2]
        if (
            self._last_size is not None
            and size != self._last_size
            and self.settings.mode != 'still'
        ):
            self.get_logger().info(
                f'image size {size[1]}x{size[0]} differs from '
                f'{self._last_size[1]}x{self._last_size[0]}'
            )
        self._last_size = size
        header = copy_header(msg.header)
        self.trainer.submit_frame(Frame(rgb, header, stamp_to_ns(header.stamp), header.frame_id))

    def _on_image(self, msg: Image) -> None:
        self._take_frame(msg, image_msg_to_rgb)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._take_frame(msg, compressed_msg_to_rgb)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self.clicks.set_camera_info(msg)
        except ClickGeometryError as err:
            self._warn('camera_info', f'camera_info ignored: {err}')

    # ----- annotations ------------------------------------------------------------------------
    def _image_size(self, stamp_ns: int = 0) -> tuple[int, int] | None:
        """(h, w) the annotation is checked against: the current frame's; for one stamped
        newer than the current frame (it waits for its frame, see the trainer) the newest
        frame's received, so a click on a frame of a new size that the node has not reached yet
        is not refused; before the first image, the newest frame's (or None)."""
        cur = self.trainer.current
        if cur is None or (stamp_ns > cur.stamp_ns and self._last_size is not None):
            return self._last_size
        return cur.rgb.shape[:2]

    def _refused_inactive(self, source: str) -> bool:
        """True (and one warning) when the node is not active and so takes no annotation."""
        if self.active:
            return False
        self.inputs_rejected += 1
        self._warn(
            'inactive',
            f'{source}: refused, the node is {self.lifecycle_state} '
            '(lifecycle); activate it first',
        )
        return True

    def _submit(self, make: Any, stamp_ns: int, source: str) -> None:
        """Build an annotation with `make()`; queue it or warn once about why not."""
        if self._refused_inactive(source):
            return
        try:
            ann = make()
            check_fits(ann, self._image_size(stamp_ns), self.settings.num_classes)
        except InputError as err:
            self.inputs_rejected += 1
            self._warn(err.key, f'{source}: {err}')
            return
        self.trainer.submit(Command('add', ann, stamp_ns, source))

    def _on_click(self, msg: Point, topic: str) -> None:
        cls = self.settings.active_class
        self._submit(lambda: point_to_click(msg.x, msg.y, cls, self._image_size()), 0, topic)

    def _on_click_stamped(self, msg: PointStamped) -> None:
        cls, stamp = self.settings.active_class, stamp_to_ns(msg.header.stamp)
        self._submit(
            lambda: point_to_click(msg.point.x, msg.point.y, cls, self._image_size(stamp)),
            stamp,
            '~/click_stamped',
        )

    def _on_stroke(self, msg: PolygonStamped) -> None:
        s = self.settings
        self._submit(
            lambda: polygon_to_stroke(msg.polygon.points, s.active_class, STROKE_WIDTH),
            stamp_to_ns(msg.header.stamp),
            '~/stroke',
        )

    def _on_box(self, msg: RegionOfInterest) -> None:
        cls = self.settings.active_class
        self._submit(lambda: roi_to_box(msg, cls), 0, '~/box')

    def _on_annotations(self, msg: String) -> None:
        if self._refused_inactive('~/annotations'):
            return
        try:
            cmd = parse_annotation_json(msg.data, self.settings.num_classes)
            if cmd.annotation is not None:
                check_fits(
                    cmd.annotation, self._image_size(cmd.stamp_ns), self.settings.num_classes
                )
        except InputError as err:
            self.inputs_rejected += 1
            self._warn(err.key, str(err))
            return
        self.trainer.submit(cmd)

    def _on_mask_annotation(self, msg: Image) -> None:
        """A whole label image (mono8 class ids, 255 = unlabelled) for the frame of its stamp:
        from a program, a detector or a first-frame mask."""
        stamp = stamp_to_ns(msg.header.stamp)
        self._submit(
            lambda: mask_from_image_msg(msg, self._image_size(stamp)), stamp, '~/mask_annotation'
        )

    def _on_rviz_point(self, msg: PointStamped, class_id: int | None) -> None:
        """RViz Publish Point: class from the topic, or active_class on ~/clicked_point.
        RViz stamps points with its own now(), so they go to the current frame."""
        if self._refused_inactive('~/clicked_point'):
            return
        size = self._image_size()
        if size is None:
            self.inputs_rejected += 1
            self._warn('rviz', 'RViz click refused: no image has arrived yet')
            return
        cls = self.settings.active_class if class_id is None else class_id
        try:
            x, y = self.clicks.to_pixel(msg, size[1], size[0])
        except ClickGeometryError as err:
            self.inputs_rejected += 1
            self._warn('rviz', f'RViz click refused: {err}')
            return
        self._submit(lambda: point_to_click(x, y, cls, size), 0, '~/clicked_point')

    # ----- services, parameters, outputs ------------------------------------------------------
    def _serve(self, op: str, response: Trigger.Response) -> Trigger.Response:
        if not self.active:
            response.success = False
            response.message = f'{op}: the node is {self.lifecycle_state}; activate it first'
            return response
        req = self.trainer.request(op)
        if req.done.wait(SERVICE_WAIT):
            response.success, response.message = req.ok, req.message
        else:
            response.success = False
            response.message = (
                f'{op}: the training thread did not answer within '
                f'{SERVICE_WAIT:.0f} s; the request stays queued'
            )
        return response

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        """~/enable: pause (false) or resume (true) training and publishing; no transition."""
        response.success = self.trainer is not None
        if self.trainer is None:
            response.message = 'the node is not configured (lifecycle); configure it first'
        else:
            self.trainer.set_paused(not request.data)
            response.message = (
                'training and publishing enabled'
                if request.data
                else 'training and publishing paused; annotations keep queueing'
            )
        return response

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in PARAMS}
        try:
            new = read_settings(node_value(self), changes)
        except (ValueError, TypeError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        self.settings = new
        self._apply_live(new)
        if self.store is not None:
            self.store.class_colors = new.class_colors
        return SetParametersResult(successful=True)

    def _publish(self, frame: Frame, session: Any, final: bool) -> None:
        self.outputs.publish(frame, session, final, time.monotonic())

    def _publish_diagnostics(self) -> None:
        tr, s = self.trainer, self.settings
        journal = self.store.journal if self.store is not None else None
        counters = {
            'frames_received': self.frames_received,
            'frames_rejected': self.frames_rejected,
            'inputs_rejected': self.inputs_rejected,
            'warnings': self.warnings.emitted,
            'callback_errors': self.guard.errors,
            'log_records': journal.appended if journal is not None else 0,
        }
        values, level = diagnostic_values(
            tr, s.mode, str(resolve_device(s.device)), self.lifecycle_state, self.active, counters
        )
        self._diag_pub.publish(
            diagnostics_msg(
                self.get_clock().now().to_msg(),
                f'{self.get_name()}: training',
                values['device'],
                values,
                level,
                values['state'],
            )
        )

    def destroy_node(self) -> None:
        """Stop the training thread (it writes a last checkpoint) before the node goes."""
        if self.trainer is not None:
            self.trainer.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console script `segdip_node`."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = SegDipNode()
        except ValueError as err:  # an invalid parameter at start-up
            rclpy.logging.get_logger('segdip').error(f'cannot start: {err}')
            return 1
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # Ctrl-C can race the executor's own shutdown (rclpy issue #1724: "cannot schedule new
        # futures after shutdown"); that is a normal stop. Anything while still running is not.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
