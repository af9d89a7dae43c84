# SPDX-License-Identifier: Apache-2.0
"""HTTP and websocket side of segdip_web (aiohttp; no rclpy).

Why separate from the ROS side: the server only sees a small `Backend` (publish an
annotation, call a service, say which views are wanted), so it can be tested with a fake one
and the ROS code never touches sockets. Everything here runs on one asyncio loop; the ROS side
hands over frames, label info and status with the thread-safe `post_*` methods.

Security: the server listens on 127.0.0.1 by default. On any other address a token is
required: every request and the websocket need `?token=...` (or the cookie the page gets
with it), otherwise 403. Static files come from this package's `static/` folder, by name from
a fixed set; no path from a request is ever opened. Websocket upgrades from another origin
are refused. Every message a browser sends is checked by `messages.parse_browser_message`.

Server -> browser: JSON text messages (`hello`, `label_info`, `status`, `ack`, `error`,
`service`, `event`, `clients`) and binary frames: 4-byte big-endian length, JSON metadata
(view, width, height, stamp, frame_id), then the JPEG.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from segdip_ros.web.messages import SERVICES, VIEWS, Limits, MessageError, parse_browser_message

__all__ = [
    'STATIC_FILES',
    'TOKEN_COOKIE',
    'Backend',
    'ConsoleServer',
    'ServerThread',
    'is_loopback',
    'pack_frame',
]

STATIC_DIR = Path(__file__).resolve().parent / 'static'
STATIC_FILES = {'index.html': 'text/html', 'app.js': 'text/javascript', 'style.css': 'text/css'}
TOKEN_COOKIE = 'segdip_web_token'
SERVICE_TIMEOUT = 15.0  # s a browser waits for a service answer
SEEN_IDS = 10000  # message ids remembered to drop duplicates
MAX_QUEUED = 500  # text messages queued for one slow browser before it is dropped
RATE_WINDOW, RATE_MAX = 10.0, 300  # messages a browser may send per window
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Backend(Protocol):
    """What the server needs from the ROS side (all may be called from the asyncio thread)."""

    def publish_annotation(self, text: str) -> None:
        """Publish one `~/annotations` message (already validated)."""

    def call_service(self, name: str, done: Callable[[bool, str], None]) -> None:
        """Call the node's Trigger service `name`; done(success, message) from any thread."""

    def set_views(self, views: frozenset[str]) -> None:
        """The views some browser shows now (subscribe to those, and only those)."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost': addresses only this machine can reach."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pack_frame(meta: dict[str, Any], jpeg: bytes) -> bytes:
    """One binary websocket frame: 4-byte big-endian JSON length, JSON, JPEG bytes."""
    head = json.dumps(meta, separators=(',', ':')).encode()
    return struct.pack('>I', len(head)) + head + jpeg


class _Client:
    """One connected browser: its view, a queue of text messages and the newest frame."""

    def __init__(self, cid: int, ws: web.WebSocketResponse) -> None:
        self.cid = cid
        self.ws = ws
        self.view = 'overlay'
        self.texts: deque[str] = deque()
        self.frame: bytes | None = None
        self.wake = asyncio.Event()
        self.sent_at: deque[float] = deque()
        self.task: asyncio.Task[None] | None = None

    def send(self, msg: dict[str, Any]) -> bool:
        if len(self.texts) >= MAX_QUEUED:
            return False
        self.texts.append(json.dumps(msg, separators=(',', ':')))
        self.wake.set()
        return True

    def over_rate(self, now: float) -> bool:
        self.sent_at.append(now)
        while self.sent_at and now - self.sent_at[0] > RATE_WINDOW:
            self.sent_at.popleft()
        return len(self.sent_at) > RATE_MAX

    async def pump(self) -> None:
        """Send queued text, then the newest frame (older unsent frames are skipped)."""
        while not self.ws.closed:
            await self.wake.wait()
            self.wake.clear()
            while self.texts and not self.ws.closed:
                await self.ws.send_str(self.texts.popleft())
            frame, self.frame = self.frame, None
            if frame is not None and not self.ws.closed:
                await self.ws.send_bytes(frame)


class ConsoleServer:
    """The labelling console's web server.

    Args:
        backend: the ROS side.
        host, port: where to listen (port 0 = any free port; see `port` after start()).
        token: required on every request when not None. Must be given when `host` is not a
            loopback address (ValueError otherwise).
        node_name: the segdip node's name, shown in the page.
    """

    def __init__(
        self,
        backend: Backend,
        host: str = '127.0.0.1',
        port: int = 8765,
        token: str | None = None,
        node_name: str = '/segdip',
    ) -> None:
        if token is None and not is_loopback(host):
            raise ValueError(f'listening on {host!r} (not loopback) needs an access token')
        self.backend = backend
        self.host, self.port, self.token, self.node_name = host, port, token, node_name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._clients: dict[int, _Client] = {}
        self._tasks: set[asyncio.Future[Any]] = set()  # running tasks, kept referenced
        self._next_id = 1
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._label_info: dict[str, Any] | None = None
        self._status: dict[str, Any] | None = None
        self._latest: dict[str, bytes] = {}
        self._image_size: tuple[int, int] | None = None
        self._views: frozenset[str] = frozenset()
        self.published = 0  # annotations published (for tests and the log)
        self.refused = 0  # browser messages refused

    # ----- life cycle ----------------------------------------------------------------------
    def url(self) -> str:
        """The address to open, with the token when one is needed."""
        host = self.host if self.host not in ('0.0.0.0', '::', '') else '127.0.0.1'
        host = f'[{host}]' if ':' in host else host
        query = f'?token={self.token}' if self.token else ''
        return f'http://{host}:{self.port}/{query}'

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get('/', self._index)
        app.router.add_get('/static/{name}', self._static)
        app.router.add_get('/ws', self._websocket)
        app.router.add_get('/favicon.ico', self._no_icon)
        app.on_response_prepare.append(self._headers)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Close every websocket, stop the sender tasks, release the socket."""
        for client in list(self._clients.values()):
            await client.ws.close(code=1001, message=b'server shutting down')
            if client.task is not None:
                client.task.cancel()
        self._clients.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----- thread-safe entry points for the ROS side ------------------------------------
    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:  # not serving yet: nobody to tell, keep the newest state
            if fn in (self._on_label_info, self._on_status):
                fn(*args)
            return
        if loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closing
            pass

    def post_frame(self, view: str, meta: dict[str, Any], jpeg: bytes) -> None:
        """A new JPEG of `view` (meta: width, height, stamp, frame_id)."""
        self._post(self._on_frame, view, dict(meta, view=view), jpeg)

    def post_label_info(self, info: dict[str, Any]) -> None:
        """The node's classes: {"classes": [{"id", "name", "color_hex"}], "unlabelled_id"}."""
        self._post(self._on_label_info, info)

    def post_status(self, status: dict[str, Any]) -> None:
        """The node's diagnostics: {"level", "message", "values": {key: text}}."""
        self._post(self._on_status, status)

    def _on_frame(self, view: str, meta: dict[str, Any], jpeg: bytes) -> None:
        self._image_size = (int(meta['height']), int(meta['width']))
        packed = pack_frame(meta, jpeg)
        self._latest[view] = packed
        for c in self._clients.values():
            if c.view == view:
                c.frame = packed
                c.wake.set()

    def _on_label_info(self, info: dict[str, Any]) -> None:
        self._label_info = info
        self._broadcast({'type': 'label_info', **info})

    def _on_status(self, status: dict[str, Any]) -> None:
        self._status = status
        self._broadcast({'type': 'status', **status})

    # ----- HTTP ------------------------------------------------------------------------------
    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[..., Any]
    ) -> web.StreamResponse:
        if self.token is not None:
            given = request.query.get('token') or request.cookies.get(TOKEN_COOKIE) or ''
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                raise web.HTTPForbidden(
                    text='403: this console needs its access token: open the '
                    'URL printed by segdip_web (it ends in ?token=...)\n'
                )
        return await handler(request)

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers['Content-Security-Policy'] = _CSP
        response.headers['X-Content-Type-Options'] = 'nosniff'
        response.headers['Referrer-Policy'] = 'no-referrer'
        response.headers['Cache-Control'] = 'no-store'

    def _file(self, name: str) -> web.Response:
        ctype = STATIC_FILES.get(name)
        if ctype is None:
            raise web.HTTPNotFound(text='not found\n')
        body = (STATIC_DIR / name).read_bytes()  # name is a key of STATIC_FILES
        return web.Response(body=body, content_type=ctype, charset='utf-8')

    async def _index(self, request: web.Request) -> web.Response:
        response = self._file('index.html')
        if self.token is not None:
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite='Strict')
        return response

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _static(self, request: web.Request) -> web.Response:
        return self._file(request.match_info['name'])

    # ----- websocket -------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get('Origin')
        if origin and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text=f'403: websocket from another origin ({origin})\n')
        ws = web.WebSocketResponse(
            max_msg_size=256 * 1024, heartbeat=20.0, timeout=2.0, compress=False
        )
        await ws.prepare(request)
        client = _Client(self._next_id, ws)
        self._next_id += 1
        self._clients[client.cid] = client
        client.task = asyncio.create_task(client.pump())
        client.send(
            {
                'type': 'hello',
                'client': client.cid,
                'node': self.node_name,
                'views': list(VIEWS),
                'services': list(SERVICES),
                'limits': {'max_points': Limits(2).max_points, 'max_width': Limits(2).max_width},
            }
        )
        if self._label_info is not None:
            client.send({'type': 'label_info', **self._label_info})
        if self._status is not None:
            client.send({'type': 'status', **self._status})
        self._view_changed(client)
        self._broadcast({'type': 'clients', 'count': len(self._clients)})
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_message(client, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._refuse(client, MessageError('binary messages are not accepted'))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._clients.pop(client.cid, None)
            client.task.cancel()
            self._update_views()
            self._broadcast({'type': 'clients', 'count': len(self._clients)})
        return ws

    def _limits(self) -> Limits:
        n = len(self._label_info['classes']) if self._label_info else 0
        return Limits(num_classes=n, image_size=self._image_size)

    def _refuse(self, client: _Client, err: MessageError) -> None:
        self.refused += 1
        client.send({'type': 'error', 'id': err.msg_id, 'message': f'refused: {err}'})

    def _on_message(self, client: _Client, text: str) -> None:
        if client.over_rate(time.monotonic()):
            self._refuse(
                client, MessageError(f'more than {RATE_MAX} messages in {RATE_WINDOW:.0f} s')
            )
            return
        try:
            msg = parse_browser_message(text, self._limits())
        except MessageError as err:
            self._refuse(client, err)
            return
        if msg.op == 'view':
            client.view = msg.name
            self._view_changed(client)
            client.send({'type': 'ack', 'id': msg.msg_id, 'ok': True})
            return
        if msg.msg_id in self._seen:
            client.send(
                {
                    'type': 'ack',
                    'id': msg.msg_id,
                    'ok': True,
                    'duplicate': True,
                    'message': 'already applied',
                }
            )
            return
        self._seen[msg.msg_id] = None
        while len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        if msg.op == 'annotate':
            self.backend.publish_annotation(msg.annotation_json)
            self.published += 1
            client.send({'type': 'ack', 'id': msg.msg_id, 'ok': True})
            self._broadcast({'type': 'event', 'text': f'browser {client.cid}: {msg.summary}'})
        else:
            self._spawn(self._service(client, msg.msg_id, msg.name))

    async def _service(self, client: _Client, msg_id: str, name: str) -> None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[bool, str]] = loop.create_future()

        def done(ok: bool, message: str) -> None:
            def finish() -> None:
                if not answer.done():
                    answer.set_result((bool(ok), str(message)))

            self._post(finish)

        self.backend.call_service(name, done)
        try:
            ok, message = await asyncio.wait_for(answer, SERVICE_TIMEOUT)
        except TimeoutError:
            ok, message = False, f'no answer from the node within {SERVICE_TIMEOUT:.0f} s'
        client.send({'type': 'ack', 'id': msg_id, 'ok': ok})
        self._broadcast(
            {
                'type': 'service',
                'id': msg_id,
                'name': name,
                'ok': ok,
                'message': message,
                'by': client.cid,
            }
        )

    def _view_changed(self, client: _Client) -> None:
        latest = self._latest.get(client.view)
        if latest is not None:
            client.frame = latest
            client.wake.set()
        self._update_views()

    def _update_views(self) -> None:
        views = frozenset(c.view for c in self._clients.values())
        if views != self._views:
            self._views = views
            self.backend.set_views(views)
            for view in list(self._latest):
                if view not in views:  # stale once nobody watches: not sent to a new browser
                    del self._latest[view]

    def _broadcast(self, msg: dict[str, Any]) -> None:
        for client in list(self._clients.values()):
            if not client.send(msg):
                self._spawn(client.ws.close(code=1008, message=b'too slow'))

    def _spawn(self, coro: Any) -> None:
        """Run `coro` as a task, keeping a reference until it ends (the loop keeps only weak
        ones: an unreferenced task can be collected half-way)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def clients(self) -> int:
        return len(self._clients)


class ServerThread:
    """Runs a ConsoleServer on an asyncio loop in a thread of its own; start() returns once it
    listens, stop() closes it and ends the thread (always call it, e.g. in finally)."""

    def __init__(self, server: ConsoleServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name='segdip_web_http', daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as err:
            self._error = err
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.server.close())
        self._loop.close()

    def start(self, timeout: float = 10.0) -> str:
        """Start listening; returns the URL. Raises what the server raised (e.g. port taken)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError('the web server did not start')
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error
        return self.server.url()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
