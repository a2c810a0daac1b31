"""The error table, the status mapping interceptor and the client's rebuilding of errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard import error_codes
from pkcard import errors as e
from pkcard.client import PkcardClient
from pkcard.daemon.access import AccessControl
from pkcard.daemon.config import AccessPolicy
from pkcard.daemon.errors import ErrorMappingInterceptor
from pkcard.v1 import readers_pb2, readers_pb2_grpc

SECRET_TEXT = "4711-very-secret-detail"


def _sample(row: error_codes.ErrorCode, tries: int, sw: int, rule: e.PinRule) -> e.PkcardError:
    cls = row.error_type
    if issubclass(cls, e.WrongPin):
        return cls(tries)
    if issubclass(cls, e.LastTryNotConfirmed):
        return cls(tries)
    if issubclass(cls, e.WeakPin):
        return cls(rule)
    if issubclass(cls, e.ApduError):
        return cls(sw)
    if issubclass(cls, e.DaemonInternalError):
        return cls("abc123")
    if issubclass(cls, e.SessionEnded):
        return cls(e.SessionEndReason(1 + tries % len(e.SessionEndReason)))
    if issubclass(cls, e.SignatureRejected):
        return cls(list(e.SignatureRejection)[tries % len(e.SignatureRejection)])
    return cls("some words")


@given(
    row=st.sampled_from(error_codes.ERROR_CODES),
    tries=st.integers(0, 15),
    sw=st.integers(0, 0xFFFF),
    rule=st.sampled_from(e.PinRule),
)
def test_every_row_survives_the_trip(
    row: error_codes.ErrorCode, tries: int, sw: int, rule: e.PinRule
) -> None:
    error = _sample(row, tries, sw, rule)
    detail = error_codes.describe(error)
    assert detail is not None
    assert detail.reason is row.reason
    rebuilt = error_codes.rebuild(detail.reason.value, detail.metadata, detail.message)
    assert type(rebuilt) is (e.ApduError if issubclass(row.error_type, e.ApduError)
                             else row.error_type)
    for attribute in ("tries_left", "rule", "sw", "incident_id", "end_reason",
                      "backend_reason"):
        if hasattr(error, attribute) and attribute in row.metadata_keys:
            assert getattr(rebuilt, attribute) == getattr(error, attribute)


def test_reasons_are_unique_and_subclasses_find_their_row() -> None:
    reasons = [row.reason for row in error_codes.ERROR_CODES]
    assert len(reasons) == len(set(reasons))
    dead = error_codes.lookup(e.CardDead("x"))
    assert dead is not None
    assert dead.reason is error_codes.Reason.CARD_DEAD
    not_found = error_codes.lookup(e.FileNotFound(0x6A82))
    assert not_found is not None
    assert not_found.reason is error_codes.Reason.CARD_ERROR
    assert error_codes.describe(e.PkcardError("unlisted")) is None


def test_a_key_that_needs_its_pin_travels_the_same_from_every_driver() -> None:
    """No status word on the wire for it: a PKCS#11 token has none to give."""
    for error in (e.KeyNeedsPin("x"), e.SecurityStatusNotSatisfied(0x6982)):
        detail = error_codes.describe(error)
        assert detail is not None
        assert detail.reason is error_codes.Reason.KEY_NEEDS_PIN
        assert dict(detail.metadata) == {}
    missing = error_codes.describe(e.KeyNotFound("x"))
    assert missing is not None
    assert missing.reason is error_codes.Reason.KEY_NOT_FOUND
    rebuilt = error_codes.rebuild("KEY_NEEDS_PIN", {}, "x")
    assert type(rebuilt) is e.KeyNeedsPin


def test_unknown_reason_is_not_rebuilt() -> None:
    assert error_codes.rebuild("NO_SUCH_REASON", {}, "x") is None


class _Exploding(readers_pb2_grpc.ReaderServiceServicer):
    def ListReaders(
        self, request: readers_pb2.ListReadersRequest, context: grpc.ServicerContext
    ) -> readers_pb2.ListReadersResponse:
        raise RuntimeError(SECRET_TEXT)

    def WatchEvents(
        self, request: readers_pb2.WatchEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[readers_pb2.WatchEventsResponse]:
        raise e.WrongPin(2)


class _AllowAll:
    def credentials_for(self, peer: str) -> None:
        return None


@pytest.fixture
def exploding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real gRPC server with the mapping interceptor; its access control lets every call in."""
    class _Open(AccessControl):
        def authorize(self, context: grpc.ServicerContext) -> object:  # type: ignore[override]
            return None

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[ErrorMappingInterceptor(_Open(AccessPolicy(frozenset(), frozenset()),
                                                    _AllowAll()))],
    )
    readers_pb2_grpc.add_ReaderServiceServicer_to_server(_Exploding(), server)
    path = tmp_path_factory.mktemp("g") / "s.sock"
    server.add_insecure_port(f"unix:{path}")
    server.start()
    yield str(path)
    server.stop(None)


def test_unexpected_exception_is_internal_with_incident_id_only(
    exploding_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    with grpc.insecure_channel(f"unix:{exploding_server}") as channel, \
            pytest.raises(grpc.RpcError) as raw, caplog.at_level(logging.ERROR):
        readers_pb2_grpc.ReaderServiceStub(channel).ListReaders(
            readers_pb2.ListReadersRequest(), timeout=5
        )
    assert raw.value.code() is grpc.StatusCode.INTERNAL
    assert SECRET_TEXT not in (raw.value.details() or "")
    assert SECRET_TEXT not in repr(raw.value.trailing_metadata())
    with PkcardClient(exploding_server, timeout=5) as client, \
            pytest.raises(e.DaemonInternalError) as internal:
        client.list_readers()
    assert len(internal.value.incident_id) == 12
    assert internal.value.incident_id in str(internal.value)
    assert SECRET_TEXT not in str(internal.value)
    logged = [r for r in caplog.records if internal.value.incident_id in r.getMessage()]
    assert logged, "the incident id finds the traceback in the daemon log"
    assert logged[0].exc_info is not None


def test_streaming_errors_are_mapped_too(exploding_server: str) -> None:
    with PkcardClient(exploding_server, timeout=5) as client, pytest.raises(e.WrongPin) as wrong:
        next(iter(client.watch_events()))
    assert wrong.value.tries_left == 2
