"""Streams may not starve card calls: per-caller stream caps and a small lane for health.

Every streaming call (WatchEvents, ``grpc.health.v1.Health/Watch``, the
reflection stream) holds one of the gRPC server's worker threads for as long
as it is open. :class:`StreamLimitInterceptor` therefore admits

- at most ``per_caller`` open streams per caller (its SO_PEERCRED uid, or its
  TLS identity on TCP), whatever the method, and
- at most ``open_slots`` open streams of the methods anyone who can reach the
  socket may call (health and reflection, :data:`~pkcard.daemon.errors.OPEN_METHOD_PREFIXES`)
  in all: that is their own small capacity, and a caller who is not on the
  allow-list can hold no more than that.

Together with the event hub's subscriber limit (WatchEvents) this leaves
worker threads for unary card calls however many streams callers try to
open. A stream over a limit is refused at once with ``DAEMON_BUSY``
(RESOURCE_EXHAUSTED). Unary calls are short and are not counted here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from pkcard.daemon.access import AccessControl
from pkcard.daemon.config import Limits
from pkcard.daemon.errors import OPEN_METHOD_PREFIXES, abort
from pkcard.daemon.interceptors import Behavior, HandlerInterceptor, rewrap
from pkcard.errors import DaemonBusy

if TYPE_CHECKING:
    from pkcard.daemon.interceptors import Handler


class StreamSlots:
    """Counts open streams per caller and of the open methods; thread-safe."""

    def __init__(self, per_caller: int, open_slots: int) -> None:
        self.per_caller = per_caller
        self.open_slots = open_slots
        self._lock = threading.Lock()
        self._by_caller: dict[str, int] = {}
        self._open = 0

    def take(self, caller: str, is_open_method: bool) -> Callable[[], None]:
        """Count one stream; its release function (idempotent). Raises :class:`DaemonBusy`."""
        with self._lock:
            held = self._by_caller.get(caller, 0)
            if held >= self.per_caller:
                raise DaemonBusy(
                    f"this caller already has {held} open streams "
                    f"(limits.max_streams_per_caller {self.per_caller})"
                )
            if is_open_method and self._open >= self.open_slots:
                raise DaemonBusy(
                    f"every health/reflection stream slot is taken "
                    f"(limits.open_stream_slots {self.open_slots})"
                )
            self._by_caller[caller] = held + 1
            if is_open_method:
                self._open += 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                left = self._by_caller.get(caller, 1) - 1
                if left > 0:
                    self._by_caller[caller] = left
                else:
                    self._by_caller.pop(caller, None)
                if is_open_method:
                    self._open -= 1

        return release

    def held(self, caller: str) -> int:
        with self._lock:
            return self._by_caller.get(caller, 0)


class StreamLimitInterceptor(HandlerInterceptor):
    """Applies :class:`StreamSlots` to every server-streaming and bidi-streaming call."""

    def __init__(self, access: AccessControl, slots: StreamSlots) -> None:
        super().__init__()
        self._access = access
        self._slots = slots

    def wrap(self, handler: Handler, method: str) -> Handler:
        is_open = method.startswith(OPEN_METHOD_PREFIXES)
        return rewrap(
            handler,
            unary_stream=lambda behavior: self._limited(behavior, method, is_open),
            stream_stream=lambda behavior: self._limited(behavior, method, is_open),
        )

    def _limited(self, behavior: Behavior, method: str, is_open: bool) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                release = self._slots.take(self._access.identify(context).key, is_open)
            except DaemonBusy as exc:
                abort(context, exc, method)
            # released when the call ends, even while the stream waits for its next item
            context.add_callback(release)
            try:
                yield from behavior(request, context)
            finally:
                release()

        return call


def stream_slots(limits: Limits) -> StreamSlots:
    return StreamSlots(limits.max_streams_per_caller, limits.open_stream_slots)
