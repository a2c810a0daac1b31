"""Which calls pkcardd admits: its own concurrency cap, and an answer for unknown methods.

gRPC's own ``maximum_concurrent_rpcs`` and its "Method not found!" answer
travel without a ``google.rpc.ErrorInfo``, which breaks the daemon's promise
that every status it sends carries one. This module replaces both:

- :class:`CallExecutor` is the gRPC server's thread pool. It counts the calls
  it holds (running or queued for a worker thread), like gRPC's
  ``maximum_concurrent_rpcs`` does, and runs calls beyond ``max_calls`` on a
  separate one-thread lane, so a refusal never waits behind busy workers.
- :class:`AdmissionInterceptor` gives such a call a handler that only answers
  RESOURCE_EXHAUSTED with reason ``DAEMON_BUSY``.
- The interceptor also parses requests itself: a request message that does
  not parse is INVALID_ARGUMENT, reason ``INVALID_REQUEST`` (gRPC's own
  answer is a bare INTERNAL "Exception deserializing request!").
- :func:`unknown_method_handler` answers every method no service serves with
  UNIMPLEMENTED, reason ``UNIMPLEMENTED``; it is added after every service.

The interceptor decides on a server's polling thread just before gRPC
submits the call to the executor on that same thread. pkcardd has several
servers on one executor (the private socket's and one per user socket), so
several polling threads add calls: the interceptor therefore takes the call's
place in the count when it admits it (:meth:`CallExecutor.admit`), and the
submit that follows on that thread uses it. An admitted call is never
refused (a refusal decided just before a call ended merely answers from a
worker thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import grpc
from google.protobuf.message import DecodeError

from pkcard.daemon.errors import to_status
from pkcard.daemon.interceptors import Behavior, HandlerInterceptor, reuse, rewrap
from pkcard.error_codes import describe
from pkcard.errors import DaemonBusy, InvalidRequest, MethodNotImplemented, PkcardError

if TYPE_CHECKING:
    from pkcard.daemon.interceptors import Handler

    _GenericHandler = grpc.GenericRpcHandler[Any, Any]
else:
    _GenericHandler = grpc.GenericRpcHandler

P = ParamSpec("P")
T = TypeVar("T")


class _Undecodable:
    """Stands in for a request message that did not parse."""


_UNDECODABLE = _Undecodable()


def abort_with(context: grpc.ServicerContext, error: PkcardError) -> NoReturn:
    """End the call with ``error``'s status and ErrorInfo."""
    detail = describe(error)
    assert detail is not None, f"{type(error).__name__} has no row in pkcard/error_codes.py"
    context.abort_with_status(to_status(detail))


class CallExecutor(futures.ThreadPoolExecutor):
    """The server's thread pool, holding at most ``max_calls`` calls; the rest are refused."""

    def __init__(self, max_workers: int, max_calls: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.max_calls = max_calls
        self._lock = threading.Lock()
        self._held = 0
        self._admitted = threading.local()  # per polling thread: a place taken by admit()
        self._refusals = futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{thread_name_prefix}-refusals"
        )

    @property
    def full(self) -> bool:
        """Whether the next call would be refused."""
        with self._lock:
            return self._held >= self.max_calls

    def admit(self) -> bool:
        """Take a place for the call this thread submits next; False if none is left.

        A place taken but not used (gRPC dropped the call before submitting it)
        carries over to this thread's next call, so it is never counted twice.
        """
        if getattr(self._admitted, "place", False):
            return True
        with self._lock:
            if self._held >= self.max_calls:
                return False
            self._held += 1
        self._admitted.place = True
        return True

    def _release(self, _: object = None) -> None:
        with self._lock:
            self._held -= 1

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> futures.Future[T]:
        if getattr(self._admitted, "place", False):
            self._admitted.place = False  # counted when admit() took it
            full = False
        else:
            with self._lock:
                full = self._held >= self.max_calls
                if not full:
                    self._held += 1
        if full:
            return self._refusals.submit(fn, *args, **kwargs)
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait, cancel_futures=cancel_futures)
        self._refusals.shutdown(wait, cancel_futures=cancel_futures)


class AdmissionInterceptor(HandlerInterceptor):
    """Refuses calls beyond the executor's cap with DAEMON_BUSY (and an ErrorInfo)."""

    caches_wraps = False  # admits or refuses each call; only the admitted wrap is kept

    def __init__(self, executor: CallExecutor) -> None:
        super().__init__()
        self._executor = executor
        self._parsing: dict[tuple[str, Handler], Handler] = {}

    def _busy(self) -> DaemonBusy:
        return DaemonBusy(
            f"pkcardd is at its limit of {self._executor.max_calls} calls in progress; "
            "retry shortly"
        )

    def wrap(self, handler: Handler, method: str) -> Handler:
        if self._executor.admit():
            return reuse(self._parsing, method, handler, lambda h, _method: _parsing_requests(h))
        busy = self._busy()

        def refuse(_request: Any, context: grpc.ServicerContext) -> NoReturn:
            abort_with(context, busy)

        def refuse_stream(_request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            abort_with(context, busy)

        # The same shape as the real handler, so gRPC reads the request as usual.
        return rewrap(
            handler,
            unary_unary=lambda _behavior: refuse,
            unary_stream=lambda _behavior: refuse_stream,
            stream_unary=lambda _behavior: refuse,
            stream_stream=lambda _behavior: refuse_stream,
        )


def _parsing_requests(handler: Handler) -> Handler:
    """``handler`` with a request that does not parse answered as INVALID_REQUEST."""
    deserialize = handler.request_deserializer
    if deserialize is None or handler.request_streaming:
        return handler

    def tolerant(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError:
            return _UNDECODABLE

    def guarded(behavior: Behavior) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            if request is _UNDECODABLE:
                abort_with(context, InvalidRequest("the request message does not parse"))
            return behavior(request, context)

        return call

    return rewrap(handler, unary_unary=guarded, unary_stream=guarded,
                  request_deserializer=tolerant)


class _UnknownMethods(_GenericHandler):
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        method: str = handler_call_details.method
        error = MethodNotImplemented(f"pkcardd has no method {method}")

        def refuse(_requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            abort_with(context, error)

        # Streaming both ways fits every kind of call on the wire; the request is never read.
        return grpc.stream_stream_rpc_method_handler(refuse)


def unknown_method_handler() -> _GenericHandler:
    """A generic handler serving every method with UNIMPLEMENTED; register it last."""
    return _UnknownMethods()
