"""Re-wrapping a gRPC method handler: the one helper every pkcardd server interceptor uses.

A server interceptor that acts around a call's behaviour has to build a new
:class:`grpc.RpcMethodHandler` of the same kind (unary or streaming request
and response) with the same (de)serializers. :func:`rewrap` does that once:
the interceptor names a wrapper for each kind it handles, and a handler of a
kind it does not name comes back unchanged. :class:`HandlerInterceptor` is
the interceptor shape all of pkcardd's share: look the handler up, then
:meth:`~HandlerInterceptor.wrap` it (an unknown method stays unknown).

gRPC runs the whole interceptor chain for every call. A wrap that depends
only on the method and the handler below it is made once: the interceptor
keeps it (at most :data:`MAX_CACHED_HANDLERS` of them) and hands the same
handler back while the one below stays the same, so every call of a method
reuses one chain of wrappers instead of building it anew. An interceptor
whose wrap decides per call (admission) sets ``caches_wraps = False``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

Behavior = Callable[[Any, grpc.ServicerContext], Any]
Wrap = Callable[[Behavior], Behavior]
Deserializer = Callable[[bytes], Any]

MAX_CACHED_HANDLERS = 256  # per interceptor; method names come from callers, so bounded

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Handler | None]
    ServerInterceptor = grpc.ServerInterceptor[Any, Any]
else:
    ServerInterceptor = grpc.ServerInterceptor


def rewrap(
    handler: Handler,
    *,
    unary_unary: Wrap | None = None,
    unary_stream: Wrap | None = None,
    stream_unary: Wrap | None = None,
    stream_stream: Wrap | None = None,
    request_deserializer: Deserializer | None = None,
) -> Handler:
    """``handler`` with its behaviour passed through the wrapper named for its kind.

    ``request_deserializer`` replaces the handler's own when given (and only
    when the handler is re-wrapped). A handler whose kind has no wrapper is
    returned as it is.
    """
    kinds = (
        (handler.unary_unary, unary_unary, grpc.unary_unary_rpc_method_handler),
        (handler.unary_stream, unary_stream, grpc.unary_stream_rpc_method_handler),
        (handler.stream_unary, stream_unary, grpc.stream_unary_rpc_method_handler),
        (handler.stream_stream, stream_stream, grpc.stream_stream_rpc_method_handler),
    )
    for behavior, wrap, make in kinds:
        if behavior is None:
            continue
        if wrap is None:
            return handler
        new: Handler = make(
            wrap(behavior),
            request_deserializer=request_deserializer or handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return new
    return handler


def reuse(
    made: dict[tuple[str, Handler], Handler], method: str, handler: Handler,
    make: Callable[[Handler, str], Handler],
) -> Handler:
    """``make(handler, method)``, kept in ``made`` (bounded) and reused while ``handler`` is."""
    key = (method, handler)
    try:
        wrapped = made.get(key)
    except TypeError:  # a handler that cannot be a key (not gRPC's own tuple): made each call
        return make(handler, method)
    if wrapped is None:
        wrapped = make(handler, method)
        if len(made) < MAX_CACHED_HANDLERS:
            made[key] = wrapped
    return wrapped


class HandlerInterceptor(ServerInterceptor):
    """A server interceptor that acts only by wrapping the handler of each known method."""

    caches_wraps = True
    """Whether :meth:`wrap` depends only on its arguments, so its result can be reused."""

    def __init__(self) -> None:
        # (method, handler below) -> wrapped handler. Handlers compare by their functions, so
        # the same servicer method registered on two servers (private and user sockets) is
        # one entry. Filled from the servers' polling threads; a race only wraps twice.
        self._wrapped: dict[tuple[str, Handler], Handler] = {}

    def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        if not self.caches_wraps:
            return self.wrap(handler, method)
        return reuse(self._wrapped, method, handler, self.wrap)

    @abc.abstractmethod
    def wrap(self, handler: Handler, method: str) -> Handler:
        """The handler to serve ``method`` with, usually :func:`rewrap` of ``handler``."""
