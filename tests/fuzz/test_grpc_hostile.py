"""Hostile gRPC requests against a real ``pkcardd --simulated``.

Out-of-range enums, unknown readers, PIN fields with non-digits or huge
lengths, and messages beyond the daemon's max message size (1 MiB by
default): each is refused with a typed pkcard error (an ErrorInfo the client
rebuilds), never INTERNAL or UNKNOWN; the daemon keeps serving, spends no
PIN try, and writes none of the values to its log or audit trail.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import grpc
import pytest
from daemon_harness import KZZ_READER, PK_READER, RunningDaemon, make_root, start_daemon
from hypothesis import given, settings
from hypothesis import strategies as st

from pkcard.client import error_from_rpc
from pkcard.errors import (
    DaemonBusy,
    DaemonInternalError,
    InvalidRequest,
    MalformedPin,
    PkcardError,
    ReaderNotFound,
    WeakPin,
    WrongCardKind,
)
from pkcard.v1 import cards_pb2, cards_pb2_grpc

MAX_MESSAGE = 1 << 20
MARKER = "7391046258"  # a digit string that must appear in no log: used as a hostile PIN


@pytest.fixture(scope="module")
def daemon() -> Iterator[RunningDaemon]:
    root = make_root()
    running = start_daemon(root)
    running.insert(PK_READER, "pk-regular")
    running.insert(KZZ_READER, "kzz")
    yield running
    running.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stub(daemon: RunningDaemon) -> cards_pb2_grpc.CardServiceStub:
    return cards_pb2_grpc.CardServiceStub(daemon.channel())


def refusal(call: object, request: object) -> PkcardError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=20)  # type: ignore[operator]
    error = error_from_rpc(caught.value)  # type: ignore[arg-type]
    assert caught.value.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
    assert not isinstance(error, DaemonInternalError), caught.value.details()
    return error


def pk_tries(stub: cards_pb2_grpc.CardServiceStub) -> int:
    reply = stub.GetPinStatus(cards_pb2.GetPinStatusRequest(
        reader=PK_READER, reference=cards_pb2.PIN_REFERENCE_PIN), timeout=20)
    return reply.statuses[0].tries_left


def test_unknown_and_hostile_reader_names(stub: cards_pb2_grpc.CardServiceStub) -> None:
    for name in ["no such reader", "", "\x00", "../../etc/passwd", "é" * 5000, "%s%n"]:
        error = refusal(stub.GetCard, cards_pb2.GetCardRequest(reader=name))
        assert isinstance(error, ReaderNotFound | InvalidRequest)


def test_out_of_range_pin_references(stub: cards_pb2_grpc.CardServiceStub) -> None:
    for ref in (0, 6, 99, 2**31 - 1, -1):
        error = refusal(stub.VerifyPin, cards_pb2.VerifyPinRequest(
            reader=PK_READER, reference=ref, pin="1234"))  # type: ignore[arg-type]
        assert isinstance(error, InvalidRequest)


def test_pins_with_non_digits_or_huge_lengths_spend_no_try(
    daemon: RunningDaemon, stub: cards_pb2_grpc.CardServiceStub
) -> None:
    tries = pk_tries(stub)
    # (an empty PIN is not hostile: it asks for entry on the reader's PIN pad)
    hostile = ["12a4", "\uff11\uff12\uff13\uff14", "1234\x00", " 1234",
               "\u0661\u0662\u0663\u0664", MARKER * 10, "9" * 100_000]
    for pin in hostile:
        error = refusal(stub.VerifyPin, cards_pb2.VerifyPinRequest(
            reader=PK_READER, reference=cards_pb2.PIN_REFERENCE_PIN, pin=pin))
        assert isinstance(error, MalformedPin | InvalidRequest)
        error = refusal(stub.ChangePin, cards_pb2.ChangePinRequest(
            reader=PK_READER, reference=cards_pb2.PIN_REFERENCE_PIN, old_pin=pin,
            new_pin=MARKER[:6]))
        assert isinstance(error, MalformedPin | WeakPin | InvalidRequest)
    assert pk_tries(stub) == tries
    logs = daemon.stderr() + daemon.audit_path.read_text()
    assert MARKER not in logs


def test_pin_call_on_the_kzz_reader(stub: cards_pb2_grpc.CardServiceStub) -> None:
    error = refusal(stub.VerifyPin, cards_pb2.VerifyPinRequest(
        reader=KZZ_READER, reference=cards_pb2.PIN_REFERENCE_PIN, pin="1234"))
    assert isinstance(error, WrongCardKind)


def test_oversized_messages_are_refused_and_the_daemon_keeps_serving(
    daemon: RunningDaemon, stub: cards_pb2_grpc.CardServiceStub
) -> None:
    for field in ("reader", "pin"):
        request = cards_pb2.VerifyPinRequest(reader=PK_READER,
                                             reference=cards_pb2.PIN_REFERENCE_PIN)
        setattr(request, field, "7" * (MAX_MESSAGE + 10))
        with pytest.raises(grpc.RpcError) as caught:
            stub.VerifyPin(request, timeout=20)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert isinstance(error_from_rpc(caught.value), DaemonBusy)  # type: ignore[arg-type]
    assert daemon.process.poll() is None
    assert stub.GetCard(cards_pb2.GetCardRequest(reader=PK_READER), timeout=20).reader


@settings(max_examples=60)
@given(reader=st.text(max_size=80), ref=st.integers(-(2**31), 2**31 - 1),
       pin=st.text(max_size=40), confirm=st.booleans())
def test_random_verify_requests_get_typed_answers(
    stub: cards_pb2_grpc.CardServiceStub, reader: str, ref: int, pin: str, confirm: bool
) -> None:
    request = cards_pb2.VerifyPinRequest(reader=reader, reference=ref,  # type: ignore[arg-type]
                                         pin=pin, confirm_last_try=confirm)
    failure: grpc.RpcError | None = None
    try:
        stub.VerifyPin(request, timeout=20)
    except grpc.RpcError as exc:
        failure = exc
    if failure is not None:
        assert failure.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        assert not isinstance(error_from_rpc(failure), DaemonInternalError)  # type: ignore[arg-type]
