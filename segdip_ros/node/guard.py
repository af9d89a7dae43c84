# SPDX-License-Identifier: Apache-2.0
"""Contain every exception a ROS callback raises, so no message can stop the node.

Why: rclpy's executor re-raises an exception from a subscription, service or timer callback
out of spin(), and the node process ends. Input checks catch the failures we know of; this
wrapper is for the ones nobody foresaw (a decoder bug, a RecursionError, a MemoryError). Each
failure is counted (`errors`, `by_callback`; published as `callback_errors` in /diagnostics)
and reported through the node's rate-limited warnings, once per callback and exception type.
No rclpy here.
"""

from __future__ import annotations

import functools
import threading
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ['CallbackGuard']


class CallbackGuard:
    """Wraps callbacks; `warn(category, message)` reports a contained failure."""

    def __init__(self, warn: Callable[[str, str], None]) -> None:
        self._warn = warn
        self._lock = threading.Lock()
        self.errors = 0
        self.by_callback: dict[str, int] = {}

    def _failed(self, name: str, err: BaseException) -> None:
        with self._lock:
            self.errors += 1
            self.by_callback[name] = self.by_callback.get(name, 0) + 1
        where = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
        at = f' at {where[0].filename.rsplit("/", 1)[-1]}:{where[0].lineno}' if where else ''
        self._warn(
            f'callback:{name}:{type(err).__name__}',
            f'{name}: {type(err).__name__} contained (the node keeps running){at}: '
            f'{str(err)[:200]}',
        )

    def wrap(
        self, name: str, fn: Callable[..., Any], on_error: Callable[..., Any] | None = None
    ) -> Callable[..., Any]:
        """`fn` with its exceptions contained; the wrapper returns on_error(*args) (or None)
        after a failure, so services and parameter callbacks still answer."""

        @functools.wraps(fn)
        def guarded(*args: Any) -> Any:
            try:
                return fn(*args)
            except Exception as err:
                self._failed(name, err)
                return on_error(err, *args) if on_error is not None else None

        return guarded

    def service(self, name: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """A std_srvs/Trigger-style service callback: on failure success=False and the reason."""

        def answer(err: Exception, request: Any, response: Any) -> Any:
            if hasattr(response, 'success'):
                response.success = False
            if hasattr(response, 'message'):
                response.message = f'{name} failed: {type(err).__name__}: {str(err)[:200]}'
            return response

        return self.wrap(name, fn, answer)
