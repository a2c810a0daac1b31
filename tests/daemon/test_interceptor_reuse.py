"""The interceptors' wrapped handlers are made once per method and reused (issue #14, G1).

Behaviour is what the daemon tests cover; these check the reuse itself: the
same chain comes back while the handler below is the same, a new handler below
gets a new wrap, admission still decides each call, and the kept wraps are
bounded however many method names callers send.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from pkcard.daemon.admission import AdmissionInterceptor, CallExecutor
from pkcard.daemon.interceptors import MAX_CACHED_HANDLERS, HandlerInterceptor, rewrap


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def _echo(request: Any, _context: grpc.ServicerContext) -> Any:
    return request


class _Counting(HandlerInterceptor):
    def __init__(self) -> None:
        super().__init__()
        self.wraps = 0

    def wrap(self, handler: Any, method: str) -> Any:
        self.wraps += 1
        return rewrap(handler, unary_unary=lambda behavior: behavior)


def test_a_method_is_wrapped_once_while_its_handler_stays() -> None:
    interceptor = _Counting()
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    first = interceptor.intercept_service(lambda _d: handler, _Details("/p.S/M"))
    again = interceptor.intercept_service(lambda _d: handler, _Details("/p.S/M"))
    assert first is again
    assert interceptor.wraps == 1
    other = grpc.unary_unary_rpc_method_handler(lambda request, _c: request)
    assert interceptor.intercept_service(lambda _d: other, _Details("/p.S/M")) is not first
    assert interceptor.intercept_service(lambda _d: handler, _Details("/p.S/N")) is not first
    assert interceptor.wraps == 3
    assert interceptor.intercept_service(lambda _d: None, _Details("/p.S/X")) is None


def test_kept_wraps_are_bounded() -> None:
    interceptor = _Counting()
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    for number in range(MAX_CACHED_HANDLERS + 50):
        interceptor.intercept_service(lambda _d: handler, _Details(f"/p.S/M{number}"))
    assert len(interceptor._wrapped) == MAX_CACHED_HANDLERS
    interceptor.intercept_service(lambda _d: handler, _Details("/p.S/late"))
    interceptor.intercept_service(lambda _d: handler, _Details("/p.S/late"))
    assert interceptor.wraps == MAX_CACHED_HANDLERS + 52  # past the bound: wrapped each call


def test_admission_still_decides_each_call() -> None:
    executor = CallExecutor(1, 1, thread_name_prefix="test-admission")
    busy = threading.Event()
    try:
        interceptor = AdmissionInterceptor(executor)
        handler = grpc.unary_unary_rpc_method_handler(
            _echo, request_deserializer=health_pb2.HealthCheckRequest.FromString)
        admitted = interceptor.intercept_service(lambda _d: handler, _Details("/p.S/M"))
        assert admitted is not None
        assert admitted.unary_unary is not _echo
        running = executor.submit(busy.wait, 10)  # uses the admitted place and holds it
        refused = interceptor.intercept_service(lambda _d: handler, _Details("/p.S/M"))
        assert refused is not None
        assert refused is not admitted
        busy.set()
        running.result()
        assert interceptor.intercept_service(lambda _d: handler, _Details("/p.S/M")) is admitted
        executor.submit(lambda: None).result()  # the place taken above
    finally:
        busy.set()
        executor.shutdown()
