"""segdip_node: SegDIP interactive segmentation as a ROS 2 node (a thin adapter).

Inputs: `image` (or `image/compressed`), `camera_info`, `~/click` (Point, pixels),
`~/click_stamped` (PointStamped), `~/stroke` (PolygonStamped), `~/box` (RegionOfInterest),
`~/annotations` (String JSON), `~/clicked_point` and `~/clicked_point/<class>` (RViz points).
Outputs: `~/mask`, `~/overlay`, `~/reconstruction`, `~/confidence`, `~/image_plane`,
`~/label_info` (latched), `/diagnostics`. Services: `~/reset`, `~/undo`, `~/clear`,
`~/next_frame`, `~/save`. Details in docs/node.md.

The work is elsewhere, in segdip_ros.node: parameters in params, message parsing in inputs,
training in trainer (its own thread), messages in outputs, RViz clicks in rviz, disk in store.
This file wires them to rclpy.
"""
from __future__ import annotations

import sys
import time
from typing import Any

import rclpy
import rclpy.logging
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PointStamped, PolygonStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, RegionOfInterest
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from segdip_ros.core import AnnotationError, CheckpointError, Mask, resolve_device
from segdip_ros.core.annotations import validate_annotation
from segdip_ros.node.guard import CallbackGuard
from segdip_ros.node.inputs import (Command, InputError, WarningLimiter, check_class,
                                    parse_annotation_json, point_to_click, polygon_to_stroke,
                                    roi_to_box, stamp_to_ns)
from segdip_ros.node.journal import ReplayPlan, plan_replay
from segdip_ros.node.outputs import OutputPublisher, diagnostics_msg, label_info_json
from segdip_ros.node.params import (PARAMS, STROKE_WIDTH, NodeSettings, declare_all,
                                    engine_config, node_value, read_settings)
from segdip_ros.node.rviz import ClickMapper, make_tf_buffer
from segdip_ros.node.store import SessionStore
from segdip_ros.node.trainer import Frame, Schedule, Trainer
from segdip_ros.ros.convert import (ImageConversionError, compressed_msg_to_rgb, copy_header,
                                    image_msg_to_rgb)
from segdip_ros.ros.encodings import image_msg_to_numpy_raw
from segdip_ros.ros.image_plane import (DEFAULT_PLANE_SCALE, ClickGeometryError, ImagePlane,
                                        class_topic_names)

__all__ = ['SegDipNode', 'main', 'IMAGE_QOS', 'OUTPUT_QOS']

IMAGE_QOS = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                       history=qos_profile_sensor_data.history)
OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
INPUT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # never lose clicks
SERVICE_WAIT = 5.0  # s a service waits for the training thread
AUTOSAVE_PERIOD = 30.0  # s between periodic checkpoints (and one after every annotation change)
IMAGE_PLANE_STRIDE = 2  # every 2nd pixel in ~/image_plane
IMAGE_PLANE_PERIOD = 0.5  # s between ~/image_plane clouds (only while subscribed)


class SegDipNode(Node):
    """The node. Raises ValueError (with the reason) when a parameter is invalid at start."""

    def __init__(self, node_name: str = 'segdip', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_all(self)
        self.settings: NodeSettings = read_settings(node_value(self))
        s = self.settings
        if s.torch_threads > 0:
            import torch  # noqa: PLC0415 - only to cap CPU use
            torch.set_num_threads(s.torch_threads)
        self.warnings = WarningLimiter(self.get_logger().warning)
        self.guard = CallbackGuard(self._warn)  # wraps every callback below
        self.frames_received = 0
        self.frames_rejected = 0
        self.inputs_rejected = 0
        self._last_size: tuple[int, int] | None = None
        qos_opts = QoSOverridingOptions.with_default_policies

        pubs = {name: self.create_publisher(Image, f'~/{name}', OUTPUT_QOS,
                                            qos_overriding_options=qos_opts())
                for name in ('mask', 'overlay', 'reconstruction', 'confidence')}
        pubs['image_plane'] = self.create_publisher(PointCloud2, '~/image_plane', OUTPUT_QOS)
        self.outputs = OutputPublisher(pubs, s.class_colors)
        self._label_pub = self.create_publisher(String, '~/label_info', LATCHED_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        tf_buffer, self._tf_listener = make_tf_buffer(self)
        self.clicks = ClickMapper(ImagePlane(), IMAGE_PLANE_STRIDE, tf_buffer)
        self._apply_live(s)

        self.store = SessionStore(s.session_dir, s.class_names, s.class_colors) \
            if s.session_dir else None
        self.trainer = Trainer(lambda: engine_config(self.settings), self._schedule(s),
                               self._publish, self._warn, self.get_logger().info, self.store,
                               lambda frame, session: self.outputs.overlay_for(frame.rgb,
                                                                               session))
        self._resume()

        sub = self._subscribe
        if s.image_transport == 'compressed':
            sub(CompressedImage, 'image/compressed', self._on_compressed, IMAGE_QOS,
                qos_overriding_options=qos_opts())
        else:
            sub(Image, 'image', self._on_image, IMAGE_QOS, qos_overriding_options=qos_opts())
        sub(CameraInfo, 'camera_info', self._on_camera_info, IMAGE_QOS)
        sub(Point, '~/click', self._on_click, INPUT_QOS)
        sub(PointStamped, '~/click_stamped', self._on_click_stamped, INPUT_QOS)
        sub(PolygonStamped, '~/stroke', self._on_stroke, INPUT_QOS)
        sub(RegionOfInterest, '~/box', self._on_box, INPUT_QOS)
        sub(String, '~/annotations', self._on_annotations, INPUT_QOS)
        sub(Image, '~/mask_annotation', self._on_mask_annotation, INPUT_QOS)
        sub(PointStamped, '~/clicked_point', lambda m: self._on_rviz_point(m, None), INPUT_QOS)
        for cid, token in enumerate(class_topic_names(s.class_names)):
            sub(PointStamped, f'~/clicked_point/{token}',
                lambda m, c=cid: self._on_rviz_point(m, c), INPUT_QOS)
        group = MutuallyExclusiveCallbackGroup()  # services may wait; inputs keep flowing
        for op in ('reset', 'undo', 'clear', 'next_frame', 'save'):
            self.create_service(Trigger, f'~/{op}', self.guard.service(
                f'~/{op}', lambda req, resp, o=op: self._serve(o, resp)), callback_group=group)
        self.add_on_set_parameters_callback(self.guard.wrap(
            'parameters', self._on_set_parameters,
            lambda err, params: SetParametersResult(
                successful=False, reason=f'refused: {type(err).__name__}: {str(err)[:200]}')))
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # diagnostics also without /clock
        self._diag_timer = self.create_timer(
            1.0, self.guard.wrap('/diagnostics', self._publish_diagnostics), clock=steady)
        self.trainer.start()
        topic = 'image/compressed' if s.image_transport == 'compressed' else 'image'
        self.get_logger().info(
            f'segdip ready: {s.num_classes} classes {list(s.class_names)}, mode {s.mode}, '
            f'device {s.device}, subscribed to {self.resolve_topic_name(topic)}')

    # ----- setup helpers ----------------------------------------------------------------------
    def _subscribe(self, msg_type: Any, topic: str, callback: Any, qos: Any,
                   **kwargs: Any) -> Any:
        """create_subscription with the callback's exceptions contained (CallbackGuard)."""
        return self.create_subscription(msg_type, topic, self.guard.wrap(topic, callback), qos,
                                        **kwargs)

    @staticmethod
    def _schedule(s: NodeSettings) -> Schedule:
        return Schedule(mode=s.mode, publish_period=1.0 / s.publish_rate,
                        autosave_period=AUTOSAVE_PERIOD, dataset_keyframes=s.dataset_keyframes,
                        dataset_period=s.dataset_period)

    def _apply_live(self, s: NodeSettings) -> None:
        """Apply settings that may change while running (colours, image plane, schedule)."""
        self.outputs.colors = list(s.class_colors)
        self.outputs.plane = ImagePlane(DEFAULT_PLANE_SCALE, s.image_plane_frame)
        self.outputs.plane_stride = IMAGE_PLANE_STRIDE
        self.outputs.plane_period = IMAGE_PLANE_PERIOD
        self.clicks.plane, self.clicks.stride = self.outputs.plane, IMAGE_PLANE_STRIDE
        self._label_pub.publish(String(data=label_info_json(s.class_names, s.class_colors)))

    def _resume(self) -> None:
        """Checkpoint + write-ahead log -> the trainer's state (docs/node.md, Durability)."""
        if self.store is None:
            return
        restored = None
        try:
            restored = self.store.load_checkpoint(engine_config(self.settings))
        except CheckpointError as err:
            moved = self.store.set_checkpoint_aside('unusable')
            self._warn('resume', f'checkpoint in {self.store.dir} set aside as {moved.name} '
                       f'({err}); starting from the annotation log alone')
        expect = restored.meta.get('journal_id') if restored is not None else None
        records, notes = self.store.open_journal(self.settings.num_classes, expect)
        for note in notes:
            self._warn('resume', note)
        plan = plan_replay(records, restored.journal_seq if restored else None,
                           restored.frame if restored else None)
        frame = None
        if restored is not None:
            stamp_ns, frame_id = restored.stamp_ns, restored.frame_id
            header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000,
                                       nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)
            frame = Frame(restored.session.image, header, stamp_ns, frame_id)
            self._last_size = restored.session.image_size
        self.trainer.resume(restored, frame, plan)
        self._log_resume(restored is not None, plan)

    def _log_resume(self, from_checkpoint: bool, plan: ReplayPlan) -> None:
        session = self.trainer.session
        if session is None and not (plan.pending or plan.restore):
            return
        what = (f'{len(session.annotations)} annotation(s) on the current frame, iteration '
                f'{session.iteration}' if from_checkpoint and session is not None
                else 'no checkpoint')
        self.get_logger().info(
            f'resumed session from {self.store.dir}: {what}; {len(plan.reapply)} logged '
            f'command(s) applied again, {len(plan.pending)} pending queued again, '
            f'{len(plan.restore)} restored from the log for the first frame')

    def _warn(self, category: str, message: str) -> None:
        self.warnings.report(category, message)

    # ----- images -------------------------------------------------------------------------------
    def _take_frame(self, msg: Any, decode: Any) -> None:
        self.frames_received += 1
        try:
            rgb = decode(msg)
        except ImageConversionError as err:
            self.frames_rejected += 1
            self._warn('image', f'image dropped: {err}')
            return
        size = rgb.shape[:2]
        if self._last_size is not None and size != self._last_size \
                and self.settings.mode == 'tracking':
            self.get_logger().info(f'image size {size[1]}x{size[0]} differs from '
                                   f'{self._last_size[1]}x{self._last_size[0]}')
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
    def _image_size(self) -> tuple[int, int] | None:
        cur = self.trainer.current
        return cur.rgb.shape[:2] if cur is not None else self._last_size

    def _check_fits(self, ann: Any) -> None:
        """InputError unless `ann` fits the current image (when there is one) and classes."""
        check_class(int(ann.class_id), self.settings.num_classes)
        size = self._image_size()
        if size is None:
            return
        try:
            validate_annotation(ann, size[1], size[0], self.settings.num_classes)
        except AnnotationError as err:
            key = 'mask' if isinstance(ann, Mask) else \
                'class' if 'class_id' in str(err) else 'outside'
            raise InputError(key, str(err)) from err

    def _submit(self, make: Any, stamp_ns: int, source: str) -> None:
        """Build an annotation with `make()`; accept it (log + queue) or warn once about why
        not."""
        try:
            ann = make()
            self._check_fits(ann)
        except InputError as err:
            self.inputs_rejected += 1
            self._warn(err.key, f'{source}: {err}')
            return
        self.trainer.submit(Command('add', ann, stamp_ns, source))

    def _on_click(self, msg: Point) -> None:
        cls = self.settings.active_class
        self._submit(lambda: point_to_click(msg.x, msg.y, cls, self._image_size()), 0, '~/click')

    def _on_click_stamped(self, msg: PointStamped) -> None:
        cls = self.settings.active_class
        self._submit(lambda: point_to_click(msg.point.x, msg.point.y, cls, self._image_size()),
                     stamp_to_ns(msg.header.stamp), '~/click_stamped')

    def _on_stroke(self, msg: PolygonStamped) -> None:
        s = self.settings
        self._submit(lambda: polygon_to_stroke(msg.polygon.points, s.active_class,
                                               STROKE_WIDTH),
                     stamp_to_ns(msg.header.stamp), '~/stroke')

    def _on_box(self, msg: RegionOfInterest) -> None:
        cls = self.settings.active_class
        self._submit(lambda: roi_to_box(msg, cls), 0, '~/box')

    def _on_annotations(self, msg: String) -> None:
        try:
            cmd = parse_annotation_json(msg.data, self.settings.num_classes)
            if cmd.annotation is not None:
                self._check_fits(cmd.annotation)
        except InputError as err:
            self.inputs_rejected += 1
            self._warn(err.key, str(err))
            return
        self.trainer.submit(cmd)

    def _on_mask_annotation(self, msg: Image) -> None:
        """A whole label image (mono8 class ids, 255 = unlabelled) for the frame of its stamp:
        from a program, a detector or a first-frame mask."""
        def make() -> Mask:
            if msg.encoding != 'mono8':
                raise InputError('mask', f'~/mask_annotation: encoding {msg.encoding!r}, '
                                 'expected mono8 class ids (255 = unlabelled)')
            try:
                labels = image_msg_to_numpy_raw(msg)
            except ImageConversionError as err:
                raise InputError('mask', f'~/mask_annotation: {err}') from err
            size = self._image_size()
            if size is not None and labels.shape != tuple(size):
                raise InputError('mask', f'~/mask_annotation: {labels.shape[1]}x'
                                 f'{labels.shape[0]} mask for a {size[1]}x{size[0]} image')
            mask = Mask(labels)
            if not mask.class_ids:
                raise InputError('mask', '~/mask_annotation: no pixel is labelled (all 255)')
            return mask
        self._submit(make, stamp_to_ns(msg.header.stamp), '~/mask_annotation')

    def _on_rviz_point(self, msg: PointStamped, class_id: int | None) -> None:
        """RViz Publish Point: class from the topic, or active_class on ~/clicked_point.
        RViz stamps points with its own now(), so they go to the current frame."""
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
        req = self.trainer.request(op)
        if req.done.wait(SERVICE_WAIT):
            response.success, response.message = req.ok, req.message
        else:
            response.success = False
            response.message = (f'{op}: the training thread did not answer within '
                                f'{SERVICE_WAIT:.0f} s; the request stays queued')
        return response

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in PARAMS}
        try:
            new = read_settings(node_value(self), changes)
        except (ValueError, TypeError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        self.settings = new
        self.trainer.set_schedule(self._schedule(new))
        self._apply_live(new)
        if self.store is not None:
            self.store.class_colors = new.class_colors
        return SetParametersResult(successful=True)

    def _publish(self, frame: Frame, session: Any, final: bool) -> None:
        self.outputs.publish(frame, session, final, time.monotonic())

    def _publish_diagnostics(self) -> None:
        st = self.trainer.stats
        session = self.trainer.session
        values = {
            'state': st.state, 'mode': self.settings.mode,
            'device': str(session.device) if session is not None
            else str(resolve_device(self.settings.device)),
            'iterations_per_second': st.iterations_per_second, 'loss': st.loss,
            'iteration': st.iteration, 'frame_index': st.frame_index,
            'frames_received': self.frames_received, 'frames_dropped': st.frames_dropped,
            'frames_rejected': self.frames_rejected, 'frames_used': st.frames_used,
            'annotations': len(session.annotations) if session is not None and
            session.has_image else 0,
            'annotations_accepted': st.annotations_accepted,
            'annotations_rejected': st.annotations_rejected + self.inputs_rejected,
            'annotations_pending': self.trainer.pending_commands,
            'checkpoints': st.checkpoints, 'warnings': self.warnings.emitted,
            'callback_errors': self.guard.errors, 'log_errors': st.log_errors,
            'log_records': self.store.journal.appended
            if self.store is not None and self.store.journal is not None else 0,
        }
        level = 0 if not st.last_error and not self.guard.errors else 1
        msg = diagnostics_msg(self.get_clock().now().to_msg(), f'{self.get_name()}: training',
                              values['device'], values, level, st.state)
        self._diag_pub.publish(msg)

    def destroy_node(self) -> None:
        """Stop the training thread (it writes a last checkpoint) before the node goes."""
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
