# SPDX-License-Identifier: Apache-2.0
"""segdip_node in a child process and a client for it: the durability benchmarks and tests.

Why a child process: SIGKILL and RSS are only meaningful for a real process. The node runs as
`python -m segdip_ros.segdip_node --ros-args -p ...`; the client is an rclpy node in a private
Context of this process. Both use ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the given
domain, so nothing leaves the machine. rclpy is imported only here, lazily by the benchmarks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ['DURABLE_PARAMS', 'NodeClient', 'NodeProcess', 'read_log', 'rss_mb']

# Small engine values: warm-up short (tens of iterations) but not zero, every state reached
# within seconds on one CPU thread.
DURABLE_PARAMS: dict[str, Any] = {
    'working_size': 64,
    'publish_rate': 10.0,
    'torch_threads': 1,
    'engine_overrides': [
        'width=16',
        'warmup_iterations=40',
        'iterations_first=20',
        'iterations_per_click=10',
        'iterations_per_frame=10',
        'refine=none',
    ],
}


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (nan when it is gone)."""
    try:
        with open(f'/proc/{pid}/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float('nan')


def read_log(session_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The complete lines of session_dir/annotations.jsonl (a torn last line is left out)."""
    path = Path(session_dir) / 'annotations.jsonl'
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding='utf-8', errors='replace').splitlines(keepends=True):
        if line.endswith('\n'):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


class NodeProcess:
    """One run of the node as a child process; always stop() it (try/finally)."""

    def __init__(
        self, params: dict[str, Any], domain_id: int, output: Path, node_name: str = 'segdip'
    ) -> None:
        self.params, self.domain_id, self.output = params, domain_id, output
        self.node_name = node_name
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: Any = None

    def start(self) -> NodeProcess:
        env = dict(
            os.environ,
            ROS_DOMAIN_ID=str(self.domain_id),
            ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
            PYTHONUNBUFFERED='1',
            CUDA_VISIBLE_DEVICES='',
        )
        args = [a for k, v in self.params.items() for a in ('-p', f'{k}:={_param(v)}')]
        self._out = open(self.output, 'ab')
        self.proc = subprocess.Popen(
            [
                sys.executable,
                '-m',
                'segdip_ros.segdip_node',
                '--ros-args',
                '-r',
                f'__node:={self.node_name}',
                *args,
            ],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else -1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the node."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT (an orderly stop: last checkpoint written), SIGKILL after `timeout`."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    code = self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            else:
                code = self.proc.returncode
        if self._out is not None:
            self._out.close()
            self._out = None
        return code

    def log_text(self) -> str:
        return self.output.read_text(errors='replace') if self.output.exists() else ''


def _param(v: Any) -> str:
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (list, tuple)):
        return '[' + ','.join(_param(x) for x in v) + ']'
    return str(v)


class NodeClient:
    """Publishers, the node's /diagnostics and service calls, in a private rclpy Context."""

    def __init__(self, domain_id: int, node_name: str = 'segdip') -> None:
        self._old_range = os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE')
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'  # read by rclpy.init
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        self._rclpy = rclpy
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.node = rclpy.create_node('segdip_durability_client', context=self.ctx)
        self.executor.add_node(self.node)
        self.name = node_name
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.image = self.node.create_publisher(Image, 'image', 5)
        self.annotations = self.node.create_publisher(
            String, f'/{node_name}/annotations', reliable
        )
        self.diag: dict[str, str] = {}
        self.diag_count = 0
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self._String = String
        self._clients: dict[str, Any] = {}

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            if st.name.startswith(f'{self.name}:'):
                self.diag = {kv.key: kv.value for kv in st.values}
                self.diag_count += 1

    def spin_until(
        self, cond: Callable[[], bool], timeout: float, alive: Callable[[], bool] | None = None
    ) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            if alive is not None and not alive():
                return cond()
            self.executor.spin_once(timeout_sec=0.02)
        return cond()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def matched(self) -> bool:
        return (
            self.image.get_subscription_count() > 0
            and self.annotations.get_subscription_count() > 0
        )

    def send(self, data: dict[str, Any] | str) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        self.annotations.publish(self._String(data=text))

    def call(self, service: str, timeout: float = 20.0) -> Any:
        """Call a std_srvs/Trigger service of the node; the response or None (timeout)."""
        from std_srvs.srv import Trigger

        client = self._clients.get(service)
        if client is None:
            client = self._clients[service] = self.node.create_client(
                Trigger, f'/{self.name}/{service}'
            )
        if not self.spin_until(client.service_is_ready, timeout):
            return None
        fut = client.call_async(Trigger.Request())
        self.spin_until(fut.done, timeout)
        return fut.result() if fut.done() else None

    def set_parameter(self, name: str, value: Any, timeout: float = 20.0) -> Any:
        """Set one parameter of the node live; the SetParametersResult or None (timeout)."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self._clients.get('set_parameters')
        if client is None:
            client = self._clients['set_parameters'] = self.node.create_client(
                SetParameters, f'/{self.name}/set_parameters'
            )
        if not self.spin_until(client.service_is_ready, timeout):
            return None
        req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        fut = client.call_async(req)
        self.spin_until(fut.done, timeout)
        return fut.result().results[0] if fut.done() and fut.result() else None

    def call_async(self, service: str) -> Any:
        from std_srvs.srv import Trigger

        client = self._clients.get(service)
        if client is None:
            client = self._clients[service] = self.node.create_client(
                Trigger, f'/{self.name}/{service}'
            )
        return client.call_async(Trigger.Request())

    def close(self) -> None:
        try:
            self.node.destroy_node()
        finally:
            self.executor.shutdown(timeout_sec=2.0)
            self._rclpy.try_shutdown(context=self.ctx)
            if self._old_range is None:
                os.environ.pop('ROS_AUTOMATIC_DISCOVERY_RANGE', None)
            else:
                os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = self._old_range
