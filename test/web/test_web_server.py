# SPDX-License-Identifier: Apache-2.0
"""The console's web server against a fake backend (no ROS, no browser), and the token rule
of the real console (binds 0.0.0.0, talks to 127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import urllib.error
import urllib.request

import aiohttp
import pytest

from segdip_ros.web.server import ConsoleServer, is_loopback

LABELS = {
    'classes': [
        {'id': 0, 'name': 'background', 'color_hex': '#3c64ff'},
        {'id': 1, 'name': 'object', 'color_hex': '#ff3c3c'},
    ],
    'unlabelled_id': 255,
}


class FakeBackend:
    def __init__(self) -> None:
        self.published: list[str] = []
        self.views: list[frozenset[str]] = []
        self.calls: list[str] = []

    def publish_annotation(self, text: str) -> None:
        self.published.append(text)

    def call_service(self, name, done) -> None:
        self.calls.append(name)
        # answered from another thread, as rclpy does
        threading.Timer(0.05, done, args=(name != 'reset', f'{name} done')).start()

    def set_views(self, views) -> None:
        self.views.append(views)


async def _next(ws, kind: str, timeout: float = 10.0) -> dict:
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            data = json.loads(msg.data)
            if data['type'] == kind:
                return data
        elif kind == 'frame' and msg.type == aiohttp.WSMsgType.BINARY:
            n = struct.unpack('>I', msg.data[:4])[0]
            return {'meta': json.loads(msg.data[4 : 4 + n]), 'jpeg': msg.data[4 + n :]}
        elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            raise AssertionError(f'websocket closed while waiting for {kind}')


def test_loopback_rule():
    assert is_loopback('127.0.0.1') and is_loopback('127.1.2.3') and is_loopback('::1')
    assert is_loopback('localhost')
    assert not is_loopback('0.0.0.0') and not is_loopback('') and not is_loopback('::')
    assert not is_loopback('192.168.1.5') and not is_loopback('myhost')
    with pytest.raises(ValueError, match='needs an access token'):
        ConsoleServer(FakeBackend(), host='0.0.0.0', token=None)


def test_static_files_websocket_dedupe_services_and_frames():
    async def scenario() -> None:
        backend = FakeBackend()
        server = ConsoleServer(backend, '127.0.0.1', 0, None, '/segdip')
        await server.start()
        base = f'http://127.0.0.1:{server.port}'
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(base + '/') as r:
                    assert r.status == 200 and r.content_type == 'text/html'
                    assert "script-src 'self'" in r.headers['Content-Security-Policy']
                    assert r.headers['X-Content-Type-Options'] == 'nosniff'
                    assert 'static/app.js' in await r.text()
                async with http.get(base + '/static/app.js') as r:
                    assert r.status == 200 and r.content_type == 'text/javascript'
                for bad in (
                    '/static/server.py',
                    '/static/..%2Fserver.py',
                    '/static/app.js.map',
                    '/static/',
                    '/etc/passwd',
                    '/static/index.html/',
                ):
                    async with http.get(base + bad) as r:
                        assert r.status == 404, bad
                # another origin may not open the websocket (cross-site websocket hijacking)
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await http.ws_connect(base + '/ws', origin='http://evil.example')
                assert info.value.status == 403

                a = await http.ws_connect(base + '/ws', origin=base)
                b = await http.ws_connect(base + '/ws')
                hello = await _next(a, 'hello')
                assert hello['node'] == '/segdip' and 'overlay' in hello['views']
                click = {
                    'id': 'p1-1',
                    'op': 'annotate',
                    'annotation': {'type': 'click', 'x': 3, 'y': 4, 'class_id': 1},
                }
                await a.send_str(json.dumps(click))  # before the class list: refused
                err = await _next(a, 'error')
                assert err['id'] == 'p1-1' and 'no class list' in err['message']
                server.post_label_info(LABELS)
                assert (await _next(b, 'label_info'))['classes'][1]['name'] == 'object'
                click['id'] = 'p1-2'
                await a.send_str(json.dumps(click))
                assert (await _next(a, 'ack'))['id'] == 'p1-2'
                assert 'click of class 1' in (await _next(b, 'event'))['text']
                await a.send_str(json.dumps(click))  # a resend: dropped
                await b.send_str(json.dumps(click))  # the same id from elsewhere: dropped
                assert (await _next(a, 'ack'))['duplicate'] is True
                assert (await _next(b, 'ack'))['duplicate'] is True
                assert backend.published == ['{"type":"click","x":3.0,"y":4.0,"class_id":1}']
                await b.send_str(
                    '{"id":"q-1","op":"annotate","annotation":{"type":"click",'
                    '"x":NaN,"y":1,"class_id":1}}'
                )
                assert 'finite' in (await _next(b, 'error'))['message']
                await b.send_bytes(b'\x00\x01')
                assert 'binary' in (await _next(b, 'error'))['message']
                assert server.refused == 3 and len(backend.published) == 1

                await a.send_str('{"id":"p1-3","op":"service","name":"save"}')
                for ws in (a, b):  # every page sees the answer
                    res = await _next(ws, 'service')
                    assert (res['name'], res['ok'], res['message']) == ('save', True, 'save done')
                await a.send_str('{"id":"p1-4","op":"service","name":"reset"}')
                assert (await _next(b, 'service'))['ok'] is False

                assert backend.views[-1] == frozenset({'overlay'})
                await b.send_str('{"id":"q-2","op":"view","view":"image"}')
                await _next(b, 'ack')
                assert backend.views[-1] == frozenset({'overlay', 'image'})
                meta = {
                    'width': 4,
                    'height': 3,
                    'stamp': {'sec': 5, 'nanosec': 6},
                    'frame_id': 'cam',
                }
                server.post_frame('image', meta, b'JPEGDATA')
                frame = await _next(b, 'frame')
                assert frame['meta']['view'] == 'image' and frame['jpeg'] == b'JPEGDATA'
                # the frame size now bounds coordinates
                await a.send_str(
                    json.dumps(
                        {
                            'id': 'p1-5',
                            'op': 'annotate',
                            'annotation': {'type': 'click', 'x': 50, 'y': 1, 'class_id': 1},
                        }
                    )
                )
                assert 'outside [-1, 4]' in (await _next(a, 'error'))['message']
                await b.close()
                for _ in range(100):
                    if backend.views[-1] == frozenset({'overlay'}):
                        break
                    await asyncio.sleep(0.05)
                assert backend.views[-1] == frozenset({'overlay'})
                await a.close()
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def _get(url: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def test_token_required_beyond_localhost():
    """host 0.0.0.0: the console makes a token; requests to 127.0.0.1 without it get 403."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from segdip_ros.web.bridge import WebConsole

    ctx = Context()
    rclpy.init(context=ctx, domain_id=64)
    console = None
    try:
        console = WebConsole(
            context=ctx,
            parameter_overrides=[Parameter('host', value='0.0.0.0'), Parameter('port', value=0)],
        )
        url = console.start()
        token = console.server.token
        assert token and len(token) >= 24 and url.endswith(f'/?token={token}')
        assert url.startswith('http://127.0.0.1:')
        base = f'http://127.0.0.1:{console.server.port}'
        status, _, body = _get(base + '/')
        assert status == 403 and 'access token' in body
        assert _get(base + '/static/app.js')[0] == 403
        assert _get(base + '/?token=' + 'x' * len(token))[0] == 403
        status, headers, body = _get(url)
        assert status == 200 and '<canvas' in body
        assert f'segdip_web_token={token}' in headers['Set-Cookie']
        assert _get(f'{base}/static/app.js?token={token}')[0] == 200

        async def ws_checks() -> None:
            async with aiohttp.ClientSession() as http:
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await http.ws_connect(base + '/ws')
                assert info.value.status == 403
                ws = await http.ws_connect(f'{base}/ws?token={token}')
                assert (await _next(ws, 'hello'))['node'] == '/segdip'
                await ws.close()
            async with aiohttp.ClientSession(cookies={'segdip_web_token': token}) as http:
                ws = await http.ws_connect(base + '/ws')  # the cookie the page got
                await _next(ws, 'hello')
                await ws.close()

        asyncio.run(asyncio.wait_for(ws_checks(), 30))
    finally:
        if console is not None:
            console.close()
        rclpy.try_shutdown(context=ctx)


def test_server_messages_dataset_and_export_import_no_ros():
    """The HTTP side, the message checks, the dataset and the exporter work without rclpy."""
    import subprocess
    import sys

    code = (
        'import sys, segdip_ros.web.server, segdip_ros.web.messages, '
        'segdip_ros.offline.dataset, segdip_ros.tools.export; '
        'bad = [m for m in sys.modules if m.split(".")[0] in ("rclpy", "sensor_msgs", '
        '"std_msgs")]; print(bad); sys.exit(1 if bad else 0)'
    )
    proc = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
