"""Server reflection as ``grpc.reflection.v1`` beside ``grpc.reflection.v1alpha``.

grpcio-reflection ships only v1alpha; current grpcurl, Postman and grpc-js
tools ask for v1 first. The two services' messages are identical on the wire
(v1 is v1alpha renamed), so one :class:`ReflectionServicer` serves both names
with the v1alpha message classes.

grpcio-reflection (and protobuf's ``descriptor_pb2``, ~0.6 MB of RSS) is
imported at the first reflection call, not at start: only tools ask
(issue #14, G6).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import grpc

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME = "grpc.reflection.v1alpha.ServerReflection"  # grpcio-reflection's name
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
_METHOD = "ServerReflectionInfo"

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    _GenericHandler = grpc.GenericRpcHandler[Any, Any]
else:
    _GenericHandler = grpc.GenericRpcHandler


class _Reflection(_GenericHandler):
    """Both reflection services; the servicer is made at the first call to either."""

    def __init__(self, service_names: Iterable[str]) -> None:
        self._names = (*service_names, *SERVICE_NAMES)
        self._lock = threading.Lock()
        self._handler: Handler | None = None

    def _made(self) -> Handler:
        with self._lock:
            if self._handler is None:
                from grpc_reflection.v1alpha import (  # noqa: PLC0415 - see the module's text
                    reflection,
                    reflection_pb2,
                )

                servicer = reflection.ReflectionServicer(self._names)
                self._handler = grpc.stream_stream_rpc_method_handler(
                    servicer.ServerReflectionInfo,
                    request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                    response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
                )
            return self._handler

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        method = handler_call_details.method
        if any(method == f"/{name}/{_METHOD}" for name in SERVICE_NAMES):
            return self._made()
        return None


def add_reflection(server: grpc.Server, service_names: Iterable[str]) -> None:
    """Serve reflection v1 and v1alpha for ``service_names`` (the reflection services added)."""
    server.add_generic_rpc_handlers((_Reflection(service_names),))
