"""One INFO line per call in the daemon log: who called what, on which reader, and how it ended.

The line holds the method, the reader named in the request (``reader`` or
``pk_reader``), the caller's uid (or TLS identity), the status code and
ErrorInfo reason, the duration and, for INTERNAL, the incident id that names
the traceback in the same log::

    call /pkcard.v1.CardService/VerifyPin reader="GemPC Pinpad" uid=1000 \
outcome=UNAUTHENTICATED reason=WRONG_PIN duration_ms=12.3

Nothing else of the request or the answer is logged, so never a secret.
The interceptor is the outermost one: it also sees refusals (allow-list,
DAEMON_BUSY, UNIMPLEMENTED).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from pkcard.daemon.access import AccessControl
from pkcard.daemon.audit import bounded
from pkcard.daemon.interceptors import Behavior, HandlerInterceptor, rewrap

if TYPE_CHECKING:
    from pkcard.daemon.interceptors import Handler

LOGGER_NAME = "pkcard.daemon.calls"
_log = logging.getLogger(LOGGER_NAME)
_READER_FIELDS = ("reader", "pk_reader")
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _reader(request: Any) -> str | None:
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None:
        return None
    for name in _READER_FIELDS:
        if name in descriptor.fields_by_name:
            value = getattr(request, name)
            return bounded(value) if isinstance(value, str) else None  # a hostile 1 MB name
    return None


def _error_info(context: grpc.ServicerContext) -> error_details_pb2.ErrorInfo | None:
    trailers = getattr(context, "trailing_metadata", lambda: None)() or ()
    for key, value in trailers:
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    return None


class CallLogInterceptor(HandlerInterceptor):
    """Logs one INFO line (logger ``pkcard.daemon.calls``) when each call ends."""

    def __init__(self, access: AccessControl) -> None:
        super().__init__()
        self._access = access

    def _caller(self, context: grpc.ServicerContext) -> str:
        try:
            caller = self._access.identify(context)
        except Exception:  # the log line must never fail the call
            return "uid=?"
        if caller.credentials is not None:
            return f"uid={caller.credentials.uid}"
        if caller.tls_identity is not None:
            return f"tls={caller.tls_identity!r}"
        return "uid=?"

    def _log(self, method: str, request: Any, context: grpc.ServicerContext, start: float,
             failed: bool) -> None:
        if not _log.isEnabledFor(logging.INFO):
            return  # the line would be dropped: skip the caller lookup and the trailer parse
        duration_ms = (time.monotonic() - start) * 1000
        code = getattr(context, "code", lambda: None)()
        if code is None and failed:
            code = grpc.StatusCode.CANCELLED if not context.is_active() else grpc.StatusCode.UNKNOWN
        elif code is None:
            code = grpc.StatusCode.OK
        outcome = code.name if isinstance(code, grpc.StatusCode) else str(code)
        parts = [f"call {method}"]
        reader = _reader(request)
        if reader:
            parts.append(f"reader={reader!r}")
        parts.append(self._caller(context))
        parts.append(f"outcome={outcome}")
        info = _error_info(context) if outcome != "OK" else None
        if info is not None:
            parts.append(f"reason={info.reason}")
        parts.append(f"duration_ms={duration_ms:.1f}")
        if info is not None and "incident_id" in info.metadata:
            parts.append(f"incident={info.metadata['incident_id']}")
        _log.info(" ".join(parts))

    def wrap(self, handler: Handler, method: str) -> Handler:
        # client streaming: nothing pkcardd serves; such handlers pass unchanged
        return rewrap(
            handler,
            unary_unary=lambda behavior: self._unary(behavior, method),
            unary_stream=lambda behavior: self._stream(behavior, method),
            stream_stream=lambda behavior: self._stream(behavior, method),
        )

    def _unary(self, behavior: Behavior, method: str) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.monotonic()
            failed = True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                self._log(method, request, context, start, failed)

        return call

    def _stream(self, behavior: Behavior, method: str) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.monotonic()
            failed = True
            try:
                yield from behavior(request, context)
                failed = False
            finally:
                self._log(method, request, context, start, failed)

        return call
