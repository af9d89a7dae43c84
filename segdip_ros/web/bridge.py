# SPDX-License-Identifier: Apache-2.0
"""segdip_web: the ROS side of the labelling console, and its `main()`.

    ros2 run segdip_ros segdip_web                      # http://127.0.0.1:8765/
    ros2 run segdip_ros segdip_web --ros-args -p node:=/robot1/segdip -p host:=0.0.0.0

The console talks to the segdip node only through its topics and services, so it works
against a node on another machine of the same ROS graph:
`<node>/label_info_json` (or `<node>/label_info` when that is a String), `/diagnostics`,
the views `<node>/overlay`, `<node>/reconstruction`, `<node>/confidence` and the node's input
image (found in the graph), `<node>/annotations` (published) and the Trigger services
`<node>/{undo,clear,reset,next_frame,save}`.

Threads: rclpy spins in one thread, aiohttp runs on an asyncio loop in another (see
`server.ServerThread`); the main thread waits for Ctrl-C / SIGTERM and then stops both.
Views are subscribed only while a browser shows them, so the node computes nothing extra.
"""

from __future__ import annotations

import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
import rclpy.logging
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from segdip_ros.web.encode import (
    LabelInfoError,
    encode_view,
    parse_label_info,
    status_from_diagnostics,
)
from segdip_ros.web.messages import SERVICES, VIEWS
from segdip_ros.web.server import ConsoleServer, ServerThread, is_loopback

__all__ = ['WebBridge', 'WebConsole', 'main']

VIEW_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # newest frame only
LATCHED_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
INPUT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
_IMAGE_TYPES = {'sensor_msgs/msg/Image': Image, 'sensor_msgs/msg/CompressedImage': CompressedImage}


def _join(namespace: str, name: str) -> str:
    """A node name as given (absolute, or relative to `namespace`) -> fully qualified."""
    if name.startswith('/'):
        return '/' + name.strip('/')
    return (
        (namespace.rstrip('/') + '/' + name.strip('/'))
        if namespace != '/'
        else '/' + name.strip('/')
    )


class WebBridge(Node):
    """Subscribes to what the browsers need from the segdip node and forwards it to a sink
    (the ConsoleServer's post_* methods); publishes annotations and calls services for them.

    Parameters: host, port, node (the segdip node, absolute or relative to this node's
    namespace; default /segdip), image_topic ('' = the node's image input, found in the
    graph), jpeg_quality, max_fps (per view).
    """

    def __init__(self, node_name: str = 'segdip_web', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.declare_parameter('host', '127.0.0.1')
        self.declare_parameter('port', 8765)
        self.declare_parameter('node', '/segdip')
        self.declare_parameter('image_topic', '')
        self.declare_parameter('jpeg_quality', 80)
        self.declare_parameter('max_fps', 10.0)
        p = self.get_parameter
        self.host = str(p('host').value)
        self.port = int(p('port').value)
        self.target = _join(self.get_namespace(), str(p('node').value))
        self.image_topic = str(p('image_topic').value)
        self.quality = min(100, max(10, int(p('jpeg_quality').value)))
        self.min_period = 1.0 / max(0.1, float(p('max_fps').value))
        ns, _, base = self.target.rpartition('/')
        self._target_ns, self._target_base = ns or '/', base
        self.sink: Any = None  # ConsoleServer (post_frame, post_label_info, post_status)
        self._lock = threading.Lock()
        self._wanted: frozenset[str] = frozenset()
        self._subs: dict[str, Any] = {}
        self._last_sent: dict[str, float] = {}
        self._label_json_seen = False
        self._label_fallback: Any = None
        self.frames_sent = 0
        self.errors: list[str] = []
        self._ann_pub = self.create_publisher(String, f'{self.target}/annotations', INPUT_QOS)
        self._triggers = {
            op: self.create_client(Trigger, f'{self.target}/{op}') for op in SERVICES
        }
        self.create_subscription(
            String,
            f'{self.target}/label_info_json',
            lambda m: self._on_label_info(m, True),
            LATCHED_QOS,
        )
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.create_timer(0.25, self._reconcile)

    # ----- Backend for the server (called from the asyncio thread) ------------------------
    def publish_annotation(self, text: str) -> None:
        self._ann_pub.publish(String(data=text))

    def call_service(self, name: str, done: Callable[[bool, str], None]) -> None:
        client = self._triggers[name]
        srv = f'{self.target}/{name}'
        if not client.service_is_ready():
            done(False, f'service {srv} is not available (is the segdip node running?)')
            return
        future = client.call_async(Trigger.Request())

        def finished(f: Any) -> None:
            try:
                res = f.result()
            except Exception as err:
                done(False, f'{srv} failed: {err}')
                return
            done(bool(res.success), str(res.message)) if res is not None else done(
                False, f'{srv}: no answer'
            )

        future.add_done_callback(finished)

    def set_views(self, views: frozenset[str]) -> None:
        with self._lock:
            self._wanted = frozenset(v for v in views if v in VIEWS)

    # ----- ROS callbacks ----------------------------------------------------------------------
    def _on_label_info(self, msg: String, primary: bool) -> None:
        if not primary and self._label_json_seen:
            return
        try:
            info = parse_label_info(msg.data)
        except LabelInfoError as err:
            self.get_logger().warning(f'ignoring label info of {self.target}: {err}')
            return
        if primary:
            self._label_json_seen = True
        if self.sink is not None:
            self.sink.post_label_info(info)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        names = (self._target_base, self.target, self.target.lstrip('/'))
        status = status_from_diagnostics(msg, names)
        if status is not None and self.sink is not None:
            self.sink.post_status(status)

    def _on_view(self, view: str, msg: Any) -> None:
        now = time.monotonic()
        if now - self._last_sent.get(view, 0.0) < self.min_period or self.sink is None:
            return
        try:
            meta, jpeg = encode_view(view, msg, self.quality)
        except ValueError as err:  # ImageConversionError is a ValueError
            if len(self.errors) < 100:
                self.errors.append(str(err))
            self.get_logger().warning(f'{view} frame not shown: {err}', throttle_duration_sec=10.0)
            return
        self._last_sent[view] = now
        self.frames_sent += 1
        self.sink.post_frame(view, meta, jpeg)

    # ----- subscriptions follow the browsers (timer, executor thread) ------------------------
    def _view_topic(self, view: str) -> tuple[str, Any] | None:
        if view != 'image':
            return f'{self.target}/{view}', Image
        if self.image_topic:
            kind = CompressedImage if self.image_topic.endswith('/compressed') else Image
            return self.image_topic, kind
        try:
            topics = self.get_subscriber_names_and_types_by_node(
                self._target_base, self._target_ns
            )
        except Exception:
            return None
        for name, types in topics:
            for t in types:
                if t in _IMAGE_TYPES:
                    return name, _IMAGE_TYPES[t]
        return None

    def _reconcile(self) -> None:
        with self._lock:
            wanted = self._wanted
        for view in list(self._subs):
            if view not in wanted:
                self.destroy_subscription(self._subs.pop(view))
        for view in wanted - set(self._subs):
            found = self._view_topic(view)
            if found is not None:
                topic, kind = found
                self._subs[view] = self.create_subscription(
                    kind, topic, lambda m, v=view: self._on_view(v, m), VIEW_QOS
                )
        if not self._label_json_seen and self._label_fallback is None:
            legacy = f'{self.target}/label_info'
            types = dict(self.get_topic_names_and_types()).get(legacy, [])
            if 'std_msgs/msg/String' in types:
                self._label_fallback = self.create_subscription(
                    String, legacy, lambda m: self._on_label_info(m, False), LATCHED_QOS
                )

    @property
    def subscribed_views(self) -> frozenset[str]:
        return frozenset(self._subs)


class WebConsole:
    """The bridge node, an executor thread spinning it and the server thread, started and
    stopped together. Used by `main()` and by tests (which pass their own context).

    A token is generated (secrets.token_urlsafe) when `host` is not a loopback address.
    """

    def __init__(
        self,
        context: Any = None,
        parameter_overrides: list[Any] | None = None,
        node_name: str = 'segdip_web',
    ) -> None:
        self.bridge = WebBridge(
            node_name, context=context, parameter_overrides=parameter_overrides or []
        )
        b = self.bridge
        token = None if is_loopback(b.host) else secrets.token_urlsafe(24)
        self.server = ConsoleServer(b, b.host, b.port, token, b.target)
        b.sink = self.server
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(b)
        self._spin_thread = threading.Thread(target=self._spin, name='segdip_web_ros', daemon=True)
        self._http = ServerThread(self.server)
        self.url = ''

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass
        except Exception as err:
            if rclpy.ok(context=self.bridge.context):
                raise
            del err

    def start(self) -> str:
        """Start spinning and serving; returns the URL to open (with the token if needed)."""
        self.url = self._http.start()  # first: latched label info must find a loop
        self._spin_thread.start()
        return self.url

    def close(self) -> None:
        """Stop the server, the executor and the node; joins both threads."""
        try:
            self._http.stop()
        finally:
            self.executor.shutdown(timeout_sec=2.0)
            if self._spin_thread.is_alive():
                self._spin_thread.join(5.0)
            self.bridge.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console script `segdip_web`."""
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    console = None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        try:
            console = WebConsole()
            url = console.start()
        except (ValueError, OSError) as err:
            rclpy.logging.get_logger('segdip_web').error(f'cannot start: {err}')
            return 1
        plain = url.split('?', 1)[0]
        console.bridge.get_logger().info(
            f'labelling console for {console.bridge.target} on {plain}'
            + (' (access token: in the URL printed on stdout)' if console.server.token else '')
        )
        print(f'segdip_web: open {url}', flush=True)  # the token stays out of the ROS log
        while not stop.wait(0.5):
            if not rclpy.ok():
                break
    finally:
        if console is not None:
            console.close()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
