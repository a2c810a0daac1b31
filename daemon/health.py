"""The gRPC health statuses of pkcardd's services.

SERVING once the daemon serves, NOT_SERVING while the reader service is gone
(pcscd stopped or crashed: the watcher's ``SERVICE_LOST``) and SERVING again
when it is back (``SERVICE_RESTORED``), so a supervisor or a clinic system
polling ``grpc.health.v1.Health`` sees that card calls cannot work right now.
The overall status ("") and every pkcard service follow this; health and
reflection themselves are not listed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2

from pkcard.errors import ServiceNotFound
from pkcard.readers import ReaderEvent, ReaderEventKind

_log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthServicer(health.HealthServicer):
    """grpc's health servicer, whose NOT_FOUND for an unknown service carries an ErrorInfo."""

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        response: health_pb2.HealthCheckResponse = super().Check(request, context)
        if getattr(context, "code", lambda: None)() == grpc.StatusCode.NOT_FOUND:
            raise ServiceNotFound(f"pkcardd has no health status for {request.service!r}")
        return response


class ServiceHealth:
    """Keeps ``servicer``'s statuses in step with the daemon and its reader service."""

    def __init__(self, servicer: health.HealthServicer) -> None:
        self._servicer = servicer
        self._lock = threading.Lock()
        self._names: tuple[str, ...] = ()
        self._reader_service_up = True
        self._serving = False

    def serve(self, service_names: Sequence[str]) -> None:
        """The daemon serves ``service_names``; publish their status."""
        with self._lock:
            self._names = (*service_names, "")
            self._serving = True
            self._publish()

    def on_reader_event(self, event: ReaderEvent) -> None:
        """A hub listener: follows SERVICE_LOST / SERVICE_RESTORED."""
        if event.kind not in (ReaderEventKind.SERVICE_LOST, ReaderEventKind.SERVICE_RESTORED):
            return
        up = event.kind is ReaderEventKind.SERVICE_RESTORED
        with self._lock:
            if up == self._reader_service_up:
                return
            self._reader_service_up = up
            if up:
                _log.warning("the reader service (pcscd) is back: health SERVING")
            else:
                _log.warning("the reader service (pcscd) is gone: health NOT_SERVING")
            self._publish()

    def _publish(self) -> None:
        if not self._serving:
            return
        status = SERVING if self._reader_service_up else NOT_SERVING
        for name in self._names:
            self._servicer.set(name, status)

    def stop(self) -> None:
        """Every status NOT_SERVING for good (the daemon is stopping)."""
        with self._lock:
            self._serving = False
        self._servicer.enter_graceful_shutdown()
