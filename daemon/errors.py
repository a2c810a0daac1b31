"""The one place where pkcardd turns exceptions into gRPC statuses.

:func:`to_status` builds a status with a ``google.rpc.ErrorInfo`` detail
from :mod:`pkcard.error_codes`. :class:`ErrorMappingInterceptor` wraps every
handler: it enforces the allow-list (through :class:`pkcard.daemon.access.AccessControl`)
and converts whatever a handler raises. An exception the table does not know
becomes INTERNAL with an incident id; the traceback goes to the daemon log
under that id and nothing of the exception's text reaches the client.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from pkcard.daemon.access import AccessControl
from pkcard.daemon.interceptors import Behavior, HandlerInterceptor, rewrap
from pkcard.error_codes import ERROR_DOMAIN, ErrorDetail, describe
from pkcard.errors import DaemonInternalError, PkcardError

if TYPE_CHECKING:
    from pkcard.daemon.interceptors import Handler

_log = logging.getLogger(__name__)

# Methods anyone who can reach the socket may call.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def new_incident_id() -> str:
    # What secrets.token_hex(6) does, without loading random (issue #14, G6).
    return os.urandom(6).hex()


def internal_error(exc: BaseException, where: str) -> DaemonInternalError:
    """Log ``exc`` with its traceback under a fresh incident id; return the error to send."""
    incident = new_incident_id()
    _log.error("incident %s in %s", incident, where, exc_info=exc)
    return DaemonInternalError(incident)


def detail_for(exc: BaseException, where: str) -> ErrorDetail:
    """The status contents for any exception (unknown ones become INTERNAL)."""
    detail = describe(exc) if isinstance(exc, PkcardError) else None
    if detail is None:
        internal = internal_error(exc, where)
        detail = describe(internal)
        assert detail is not None
    return detail


def to_status(detail: ErrorDetail) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(
        reason=detail.reason.value, domain=ERROR_DOMAIN, metadata=dict(detail.metadata)
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    message = status_pb2.Status(code=int(detail.code), message=detail.message, details=[packed])
    status: grpc.Status = rpc_status.to_status(message)
    return status


def abort(context: grpc.ServicerContext, exc: BaseException, where: str) -> NoReturn:
    context.abort_with_status(to_status(detail_for(exc, where)))


class ErrorMappingInterceptor(HandlerInterceptor):
    """Allow-list check before, error mapping after, every unary and server-streaming call."""

    def __init__(
        self,
        access: AccessControl,
        on_refused: Callable[[grpc.ServicerContext, str, str], None] | None = None,
    ) -> None:
        super().__init__()
        self._access = access
        self._on_refused = on_refused

    def _authorize(self, context: grpc.ServicerContext, method: str) -> None:
        try:
            self._access.authorize(context)
        except PkcardError as exc:
            detail = describe(exc)
            if self._on_refused is not None and detail is not None:
                self._on_refused(context, method, detail.reason.value)
            raise

    def wrap(self, handler: Handler, method: str) -> Handler:
        guarded = not method.startswith(OPEN_METHOD_PREFIXES)
        # client/bidi streaming: pkcard.v1 has none; such handlers pass unchanged
        return rewrap(
            handler,
            unary_unary=lambda behavior: self._unary(behavior, method, guarded),
            unary_stream=lambda behavior: self._stream(behavior, method, guarded),
        )

    def _unary(self, behavior: Behavior, method: str, guarded: bool) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                if guarded:
                    self._authorize(context, method)
                return behavior(request, context)
            except Exception as exc:  # the one place that maps them
                abort(context, exc, method)

        return call

    def _stream(self, behavior: Behavior, method: str, guarded: bool) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                if guarded:
                    self._authorize(context, method)
                yield from behavior(request, context)
            except Exception as exc:  # the one place that maps them
                abort(context, exc, method)

        return call
