# SPDX-License-Identifier: Apache-2.0
"""Lifecycle helpers of the segdip node: the entities a configure creates, freeing the model.

Why a module of its own: a managed (lifecycle) node creates its publishers, subscriptions,
services and timers in on_configure and must destroy every one of them in on_cleanup, and
frees the model (GPU memory) in on_deactivate. Keeping the bookkeeping here keeps the node
file about what it does, not about how entities are tracked.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import Any

from rclpy.lifecycle import TransitionCallbackReturn

__all__ = ['Entities', 'free_session', 'logged_transition']


class Entities:
    """Publishers, subscriptions, services and timers made by one configure of `node`.

    With a `guard` (node.guard.CallbackGuard), subscription and service callbacks are wrapped
    so that no exception from a message can stop the node.
    """

    def __init__(self, node: Any, guard: Any = None) -> None:
        self._node = node
        self._guard = guard
        self._items: list[tuple[str, Any]] = []

    def publisher(self, *args: Any, **kwargs: Any) -> Any:
        return self._keep('publisher', self._node.create_publisher(*args, **kwargs))

    def subscription(
        self, msg_type: Any, topic: str, callback: Callable[..., Any], qos: Any, **kwargs: Any
    ) -> Any:
        if self._guard is not None:
            callback = self._guard.wrap(topic, callback)
        return self._keep(
            'subscription',
            self._node.create_subscription(msg_type, topic, callback, qos, **kwargs),
        )

    def service(
        self, srv_type: Any, name: str, callback: Callable[..., Any], **kwargs: Any
    ) -> Any:
        if self._guard is not None:
            callback = self._guard.service(name, callback)
        return self._keep('service', self._node.create_service(srv_type, name, callback, **kwargs))

    def timer(self, *args: Any, **kwargs: Any) -> Any:
        return self._keep('timer', self._node.create_timer(*args, **kwargs))

    def keep(self, listener: Any) -> Any:
        """Also end a tf2_ros TransformListener (its /tf subscriptions) at destroy_all()."""
        return self._keep('listener', listener)

    def _keep(self, kind: str, entity: Any) -> Any:
        self._items.append((kind, entity))
        return entity

    def __len__(self) -> int:
        return len(self._items)

    def destroy_all(self) -> None:
        """Destroy every entity (newest first); safe to call twice."""
        while self._items:
            kind, entity = self._items.pop()
            if kind == 'listener':
                entity.unregister()
            else:
                getattr(self._node, f'destroy_{kind}')(entity)


def free_session(session: Any) -> None:
    """Release a TrainingSession's model and optimiser, and the CUDA cache it used.

    The caller must hold no other reference (the trainer's is dropped by Trainer.release()).
    """
    if session is None:
        return
    del session
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def logged_transition(
    fn: Callable[..., TransitionCallbackReturn],
) -> Callable[..., TransitionCallbackReturn]:
    """Wrap an on_<transition> method: an exception is logged with its reason and the
    transition returns ERROR (rclpy turns it into ERROR too, but without a word in the log)."""

    @functools.wraps(fn)
    def wrapper(self: Any, state: Any) -> TransitionCallbackReturn:
        try:
            return fn(self, state)
        except Exception as err:
            self.get_logger().error(f'{fn.__name__} failed: {err!r}')
            return TransitionCallbackReturn.ERROR

    return wrapper
