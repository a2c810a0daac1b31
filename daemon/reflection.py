"""Server reflection as ``grpc.reflection.v1`` beside ``grpc.reflection.v1alpha``.

grpcio-reflection ships only v1alpha; current grpcurl, Postman and grpc-js
tools ask for v1 first. The two services' messages are identical on the wire
(v1 is v1alpha renamed), so one :class:`ReflectionServicer` serves both names
with the v1alpha message classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


def add_reflection(server: grpc.Server, service_names: Iterable[str]) -> None:
    """Serve reflection v1 and v1alpha for ``service_names`` (the reflection services added)."""
    servicer = reflection.ReflectionServicer((*service_names, *SERVICE_NAMES))
    for name in SERVICE_NAMES:
        handler: Handler = grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler}),)
        )
