"""Every non-OK status pkcardd's own code sends carries an ErrorInfo, and docs/api.md lists it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conformance import error_info
from daemon_harness import RunningDaemon, make_root, start_daemon
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pkcard.error_codes import ERROR_CODES, Reason
from pkcard.v1 import readers_pb2, readers_pb2_grpc

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_every_reason_in_the_code_has_a_row_and_the_docs_table_lists_it() -> None:
    assert {row.reason for row in ERROR_CODES} == set(Reason)
    table = API_DOC.read_text()
    for reason in Reason:
        assert f"| `{reason.value}` |" in table, reason


@pytest.fixture
def one_call_daemon() -> Iterator[RunningDaemon]:
    """A daemon that holds at most one call at a time (limits.max_concurrent_rpcs = 1)."""
    root = make_root()
    config = root / "pkcardd.toml"
    config.write_text("[limits]\nmax_concurrent_rpcs = 1\n")
    daemon = start_daemon(root, "--config", str(config))
    yield daemon
    daemon.close()
    shutil.rmtree(root, ignore_errors=True)


def test_the_concurrency_cap_answers_with_error_info(one_call_daemon: RunningDaemon) -> None:
    channel = one_call_daemon.channel()
    stream = readers_pb2_grpc.ReaderServiceStub(channel).WatchEvents(
        readers_pb2.WatchEventsRequest(), timeout=30)
    next(stream)  # the stream now holds the only place
    try:
        for call in (
            lambda: readers_pb2_grpc.ReaderServiceStub(channel).ListReaders(
                readers_pb2.ListReadersRequest()),  # no deadline
            lambda: health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=30),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            info = error_info(refused.value.trailing_metadata())  # type: ignore[attr-defined]
            assert info is not None
            assert info["reason"] == "DAEMON_BUSY"
            assert info["domain"] == "pkcard.si"
    finally:
        stream.cancel()


def test_unknown_methods_and_services_answer_with_error_info(
    one_call_daemon: RunningDaemon,
) -> None:
    channel = one_call_daemon.channel()
    for method in ("/pkcard.v1.CardService/NoSuchMethod", "/no.such.Service/Call"):
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(method)(b"", timeout=30)
        assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
        info = error_info(refused.value.trailing_metadata())  # type: ignore[attr-defined]
        assert info is not None
        assert info["reason"] == "UNIMPLEMENTED"


def test_a_request_that_does_not_parse_answers_with_error_info(
    one_call_daemon: RunningDaemon,
) -> None:
    channel = one_call_daemon.channel()
    garbage = bytes.fromhex("0aff")  # field 1, length 255, no bytes follow
    unary = channel.unary_unary("/pkcard.v1.CardService/GetCard")
    stream = channel.unary_stream("/pkcard.v1.ReaderService/WatchEvents")
    for call in (lambda: unary(garbage, timeout=30),
                 lambda: next(stream(garbage, timeout=30))):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        info = error_info(refused.value.trailing_metadata())  # type: ignore[attr-defined]
        assert info is not None
        assert info["reason"] == "INVALID_REQUEST"


def test_a_health_check_of_an_unknown_service_answers_with_error_info(
    one_call_daemon: RunningDaemon,
) -> None:
    health = health_pb2_grpc.HealthStub(one_call_daemon.channel())
    assert health.Check(health_pb2.HealthCheckRequest(service="pkcard.v1.CardService"),
                        timeout=30).status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as refused:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=30)
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    info = error_info(refused.value.trailing_metadata())  # type: ignore[attr-defined]
    assert info is not None
    assert info["reason"] == "SERVICE_NOT_FOUND"
