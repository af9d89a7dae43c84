# SPDX-License-Identifier: Apache-2.0
"""segdip_node: SegDIP interactive segmentation as a ROS 2 node (a thin adapter).

A lifecycle (managed) node: configure creates its topics and services, activate builds or
restores the model and starts training, deactivate stops it, saves and frees the model.
With `autostart` (default) it configures and activates itself, so `ros2 run` just works.

Inputs: `image` (or `image/compressed`), `camera_info`, `~/click` and `~/overlay_mouse_left`
(Point, pixels), `~/click_stamped` (PointStamped), `~/stroke` (PolygonStamped), `~/box`
(RegionOfInterest), `~/annotations` (String JSON), `~/clicked_point` and
`~/clicked_point/<class>` (RViz points). Outputs: `~/mask`, `~/overlay`, `~/overlay/compressed`,
`~/reconstruction`, `~/confidence`, `~/image_plane`, `~/label_info` (vision_msgs, when
installed) and `~/label_info_json` (latched), `/diagnostics`. Services: `~/reset`, `~/undo`,
`~/clear`, `~/next_frame`, `~/save` (Trigger), `~/enable` (SetBool), the lifecycle services.
Details in docs/node.md.

The work is elsewhere: parameters in node.params, message parsing in node.inputs, training in
node.trainer (its own thread), messages in node.outputs and node.label_info, RViz clicks in
node.rviz, disk in node.store, lifecycle bookkeeping in node.lifecycle. This file wires them
to rclpy.
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
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, RegionOfInterest
from std_msgs.msg import Header, String
from std_srvs.srv import SetBool, Trigger

from segdip_ros.core import CheckpointError, resolve_device
from segdip_ros.node.inputs import (Command, InputError, WarningLimiter, check_class,
                                    parse_annotation_json, point_to_click, polygon_to_stroke,
                                    roi_to_box, stamp_to_ns)
from segdip_ros.node.label_info import label_info_msg, vision_msgs_classes
from segdip_ros.node.lifecycle import Entities, free_session, logged_transition
from segdip_ros.node.outputs import OutputPublisher, diagnostics_msg, label_info_json
from segdip_ros.node.params import (PARAMS, NodeSettings, declare_all, engine_config,
                                    read_settings)
from segdip_ros.node.rviz import ClickMapper, make_tf_buffer
from segdip_ros.node.store import SessionStore
from segdip_ros.node.trainer import Frame, Schedule, Trainer
from segdip_ros.ros.convert import (ImageConversionError, compressed_msg_to_rgb, copy_header,
                                    image_msg_to_rgb)
from segdip_ros.ros.image_plane import ClickGeometryError, ImagePlane, class_topic_names

__all__ = ['SegDipNode', 'main', 'IMAGE_QOS', 'OUTPUT_QOS']

IMAGE_QOS = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                       history=qos_profile_sensor_data.history)
OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
INPUT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # never lose clicks
SERVICE_WAIT = 5.0  # s a service waits for the training thread
SUCCESS = TransitionCallbackReturn.SUCCESS
IMAGE_OUTPUTS = ('mask', 'overlay', 'reconstruction', 'confidence')


class SegDipNode(LifecycleNode):
    """The node. Raises ValueError (with the reason) when a parameter is invalid at start,
    or when `autostart` is on and configure or activate fails."""

    def __init__(self, node_name: str = 'segdip', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_all(self)
        self.settings: NodeSettings = read_settings(self._param)
        self.warnings = WarningLimiter(self.get_logger().warning)
        self.frames_received = 0
        self.frames_rejected = 0
        self.inputs_rejected = 0
        self._last_size: tuple[int, int] | None = None
        self.lifecycle_state = 'unconfigured'
        self.active = False
        self._entities = Entities(self)
        self.outputs: OutputPublisher | None = None
        self.clicks: ClickMapper | None = None
        self.store: SessionStore | None = None
        self.trainer: Trainer | None = None
        self._tf_listener: Any = None
        self._label_pubs: dict[str, Any] = {}
        self._vision = vision_msgs_classes()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # diagnostics also without /clock
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        if self._vision is None:
            self.get_logger().info('vision_msgs is not installed: no vision_msgs/LabelInfo on '
                                   '~/label_info; the classes are on ~/label_info_json (JSON)')
        if self.settings.autostart:
            for name, step in (('configure', self.trigger_configure),
                               ('activate', self.trigger_activate)):
                if step() != SUCCESS:
                    raise ValueError(f'autostart: {name} failed (see the log above)')

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    # ----- lifecycle transitions ---------------------------------------------------------------
    @logged_transition
    def on_configure(self, state: Any) -> TransitionCallbackReturn:
        """Read the parameters, create topics, services and the (idle) training thread."""
        try:
            s = self.settings = read_settings(self._param)
        except ValueError as err:
            self.get_logger().error(f'configure refused: {err}')
            return TransitionCallbackReturn.FAILURE
        if s.torch_threads > 0:
            import torch  # noqa: PLC0415 - only to cap CPU use
            torch.set_num_threads(s.torch_threads)
        self._create_entities(s)
        self.store = SessionStore(s.session_dir) if s.session_dir else None
        self.trainer = Trainer(lambda: engine_config(self.settings), self._schedule(s),
                               self._publish, self._warn, self.get_logger().info, self.store,
                               lambda frame, session: self.outputs.overlay_for(frame.rgb,
                                                                               session))
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
            f'device {s.device}, subscribed to {self.resolve_topic_name(topic)}')
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

    def _create_entities(self, s: NodeSettings) -> None:
        e = self._entities
        qos_opts = QoSOverridingOptions.with_default_policies
        pubs = {name: e.publisher(Image, f'~/{name}', OUTPUT_QOS,
                                  qos_overriding_options=qos_opts())
                for name in IMAGE_OUTPUTS}
        pubs['overlay/compressed'] = e.publisher(CompressedImage, '~/overlay/compressed',
                                                 OUTPUT_QOS, qos_overriding_options=qos_opts())
        pubs['image_plane'] = e.publisher(PointCloud2, '~/image_plane', OUTPUT_QOS,
                                          qos_overriding_options=qos_opts())
        self.outputs = OutputPublisher(pubs, s.class_colors)
        self._label_pubs = {'json': e.publisher(String, '~/label_info_json', LATCHED_QOS)}
        if self._vision is not None:
            self._label_pubs['vision'] = e.publisher(self._vision[0], '~/label_info',
                                                     LATCHED_QOS)
        tf_buffer, self._tf_listener = make_tf_buffer(self)
        self.clicks = ClickMapper(ImagePlane(), s.image_plane_stride, tf_buffer)
        if s.image_transport == 'compressed':
            e.subscription(CompressedImage, 'image/compressed', self._on_compressed, IMAGE_QOS,
                           qos_overriding_options=qos_opts())
        else:
            e.subscription(Image, 'image', self._on_image, IMAGE_QOS,
                           qos_overriding_options=qos_opts())
        e.subscription(CameraInfo, 'camera_info', self._on_camera_info, IMAGE_QOS,
                       qos_overriding_options=qos_opts())
        for topic in ('~/click', '~/overlay_mouse_left'):  # the second: rqt_image_view's name
            e.subscription(Point, topic, lambda m, t=topic: self._on_click(m, t), INPUT_QOS)
        e.subscription(PointStamped, '~/click_stamped', self._on_click_stamped, INPUT_QOS)
        e.subscription(PolygonStamped, '~/stroke', self._on_stroke, INPUT_QOS)
        e.subscription(RegionOfInterest, '~/box', self._on_box, INPUT_QOS)
        e.subscription(String, '~/annotations', self._on_annotations, INPUT_QOS)
        e.subscription(PointStamped, '~/clicked_point',
                       lambda m: self._on_rviz_point(m, None), INPUT_QOS)
        for cid, token in enumerate(class_topic_names(s.class_names)):
            e.subscription(PointStamped, f'~/clicked_point/{token}',
                           lambda m, c=cid: self._on_rviz_point(m, c), INPUT_QOS)
        group = MutuallyExclusiveCallbackGroup()  # services may wait; inputs keep flowing
        for op in ('reset', 'undo', 'clear', 'next_frame', 'save'):
            e.service(Trigger, f'~/{op}', lambda req, resp, o=op: self._serve(o, resp),
                      callback_group=group)
        e.service(SetBool, '~/enable', self._on_enable, callback_group=group)

    def _destroy_entities(self) -> None:
        self._entities.destroy_all()
        if self._tf_listener is not None:
            self._tf_listener.unregister()
        self._tf_listener = None
        self.outputs = self.clicks = self.store = self.trainer = None
        self._label_pubs = {}

    # ----- setup helpers ----------------------------------------------------------------------
    @staticmethod
    def _schedule(s: NodeSettings) -> Schedule:
        return Schedule(mode=s.mode, frame_switch_iterations=s.frame_switch_iterations,
                        iterations_first=s.iterations_first,
                        iterations_per_click=engine_config(s).iterations_per_click,
                        publish_period=1.0 / s.publish_rate, autosave_period=s.autosave_period)

    def _apply_live(self, s: NodeSettings) -> None:
        """Apply settings that may change while running (colours, image plane, schedule)."""
        if self.trainer is None:  # not configured (yet): configure applies them
            return
        self.trainer.set_schedule(self._schedule(s))
        self.outputs.colors = list(s.class_colors)
        self.outputs.jpeg_quality = s.jpeg_quality
        self.outputs.plane = ImagePlane(s.image_plane_scale, s.image_plane_frame)
        self.outputs.plane_stride = s.image_plane_stride
        self.outputs.plane_period = 1.0 / s.image_plane_rate if s.image_plane_rate > 0 else 0.0
        self.clicks.plane, self.clicks.stride = self.outputs.plane, s.image_plane_stride
        self._label_pubs['json'].publish(
            String(data=label_info_json(s.class_names, s.class_colors)))
        if 'vision' in self._label_pubs:
            header = Header(stamp=self.get_clock().now().to_msg())
            self._label_pubs['vision'].publish(label_info_msg(s.class_names, header,
                                                              *self._vision))

    def _resume(self) -> None:
        if self.store is None:
            return
        try:
            loaded = self.store.load_checkpoint(engine_config(self.settings))
        except CheckpointError as err:
            moved = self.store.set_aside()
            self._warn('resume', f'checkpoint in {self.store.dir} does not fit the current '
                       f'parameters ({err}); moved it to {moved} and starting fresh')
            return
        if loaded is None:
            return
        session, stamp_ns, frame_id = loaded
        header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000,
                                   nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)
        self.trainer.resume(session, Frame(session.image, header, stamp_ns, frame_id))
        self._last_size = session.image_size
        self.get_logger().info(
            f'resumed session from {self.store.dir}: {len(session.annotations)} annotation(s) '
            f'on the current frame, {len(self.store.read_log())} in the log, iteration '
            f'{session.iteration}')

    def _warn(self, category: str, message: str) -> None:
        self.warnings.report(category, message)

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

    def _refused_inactive(self, source: str) -> bool:
        """True (and one warning) when the node is not active and so takes no annotation."""
        if self.active:
            return False
        self.inputs_rejected += 1
        self._warn('inactive', f'{source}: refused, the node is {self.lifecycle_state} '
                   '(lifecycle); activate it first')
        return True

    def _submit(self, make: Any, stamp_ns: int, source: str) -> None:
        """Build an annotation with `make()`; queue it or warn once about why not."""
        if self._refused_inactive(source):
            return
        try:
            ann = make()
            check_class(int(ann.class_id), self.settings.num_classes)
        except InputError as err:
            self.inputs_rejected += 1
            self._warn(err.key, f'{source}: {err}')
            return
        self.trainer.submit(Command('add', ann, stamp_ns, source))

    def _on_click(self, msg: Point, topic: str) -> None:
        cls = self.settings.active_class
        self._submit(lambda: point_to_click(msg.x, msg.y, cls, self._image_size()), 0, topic)

    def _on_click_stamped(self, msg: PointStamped) -> None:
        cls = self.settings.active_class
        self._submit(lambda: point_to_click(msg.point.x, msg.point.y, cls, self._image_size()),
                     stamp_to_ns(msg.header.stamp), '~/click_stamped')

    def _on_stroke(self, msg: PolygonStamped) -> None:
        s = self.settings
        self._submit(lambda: polygon_to_stroke(msg.polygon.points, s.active_class,
                                               s.stroke_width),
                     stamp_to_ns(msg.header.stamp), '~/stroke')

    def _on_box(self, msg: RegionOfInterest) -> None:
        cls = self.settings.active_class
        self._submit(lambda: roi_to_box(msg, cls), 0, '~/box')

    def _on_annotations(self, msg: String) -> None:
        if self._refused_inactive('~/annotations'):
            return
        try:
            cmd = parse_annotation_json(msg.data, self.settings.num_classes)
        except InputError as err:
            self.inputs_rejected += 1
            self._warn(err.key, str(err))
            return
        self.trainer.submit(cmd)

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
            response.message = (f'{op}: the training thread did not answer within '
                                f'{SERVICE_WAIT:.0f} s; the request stays queued')
        return response

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response
                   ) -> SetBool.Response:
        """~/enable: pause (false) or resume (true) training and publishing; no transition."""
        if self.trainer is None:
            response.success = False
            response.message = 'the node is not configured (lifecycle); configure it first'
            return response
        self.trainer.set_paused(not request.data)
        response.success = True
        response.message = ('training and publishing enabled' if request.data else
                            'training and publishing paused; annotations keep queueing')
        return response

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in PARAMS}
        try:
            new = read_settings(lambda n: self.get_parameter(n).value, changes)
        except (ValueError, TypeError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        self.settings = new
        self._apply_live(new)
        return SetParametersResult(successful=True)

    def _publish(self, frame: Frame, session: Any, final: bool) -> None:
        self.outputs.publish(frame, session, final, time.monotonic())

    def _publish_diagnostics(self) -> None:
        if self.trainer is None:
            values: dict[str, Any] = {'state': self.lifecycle_state,
                                      'device': str(resolve_device(self.settings.device))}
            self._diag_pub.publish(diagnostics_msg(
                self.get_clock().now().to_msg(), f'{self.get_name()}: training',
                values['device'], values, 0, self.lifecycle_state))
            return
        st = self.trainer.stats
        session = self.trainer.session
        state = st.state if self.active else self.lifecycle_state
        values = {
            'state': state, 'lifecycle': self.lifecycle_state, 'enabled': not self.trainer.paused,
            'mode': self.settings.mode,
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
        }
        level = 0 if not st.last_error else 1
        msg = diagnostics_msg(self.get_clock().now().to_msg(), f'{self.get_name()}: training',
                              values['device'], values, level, state)
        self._diag_pub.publish(msg)

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
