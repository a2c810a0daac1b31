"""One conformance run over every pkcard.v1 RPC, and the checks every client's report must pass.

A run is a report: step name -> {"code": gRPC status code, "error_info": the ErrorInfo
read from the grpc-status-details-bin trailer (or None), "value": a summary of the
answer}. The Node client (node/conformance.js) prints one; :func:`run_raw` and
:func:`run_aio` make the same report with Python's generated stubs and with
``grpc.aio``, without a deadline unless given one. :func:`check_report` holds the
expectations for all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pkcard.backend.v1 import backend_pb2, backend_pb2_grpc
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.v1 import (
    cards_pb2,
    cards_pb2_grpc,
    readers_pb2,
    readers_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    signatures_pb2,
    signatures_pb2_grpc,
    simulation_pb2,
    simulation_pb2_grpc,
)

PROTOS = Path(__file__).resolve().parents[2] / "protos"
PK_READER = PINPAD_READER.name
KZZ_READER = TWIN_READER.name
_PK = load_profile("pk-regular")
SECRETS = {
    "pin": _PK.secret_value(SecretRef.PIN),
    "puk": _PK.secret_value(SecretRef.PUK),
    "spin": _PK.secret_value(SecretRef.SPIN),
    "reactivation": _PK.secret_value(SecretRef.REACTIVATION),
    "tpin": load_profile("pk-transport").secret_value(SecretRef.TPIN),
    "wrong_pin": "40404040",
    "new_pin": "58130947",
    "new_spin": "520739",
}
DOCUMENT = b"pkcard interop: a document signed by a Python client"
BACKEND_CLIENT = (("x-pkcard-backend-client", "python-interop"),)

Report = dict[str, dict[str, Any]]


def params(socket_path: Path, deadline_s: float | None) -> dict[str, Any]:
    """What node/conformance.js takes as its JSON argument."""
    return {
        "socket": str(socket_path),
        "backend_socket": str(socket_path.parent / "backend.sock"),
        "protos": str(PROTOS),
        "pk_reader": PK_READER,
        "kzz_reader": KZZ_READER,
        "secrets": SECRETS,
        "deadline_s": deadline_s,
    }


def error_info(trailers: Any) -> dict[str, Any] | None:
    """The ErrorInfo of a failed call's trailing metadata (google.rpc.Status), or None."""
    for key, value in trailers or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return {"reason": info.reason, "domain": info.domain,
                            "metadata": dict(info.metadata)}
            return {"reason": None, "domain": None, "metadata": {}}
    return None


def _failure(error: grpc.RpcError) -> dict[str, Any]:
    return {
        "code": error.code().value[0],  # type: ignore[attr-defined]
        "error_info": error_info(error.trailing_metadata()),  # type: ignore[attr-defined]
        "value": None,
    }


def _ok(value: Any) -> dict[str, Any]:
    return {"code": 0, "error_info": None, "value": value}


def _steps(
    channel: Any, backend_channel: Any, call: Callable[..., Any]
) -> list[tuple[str, Callable[[], Any], Callable[[Any], Any]]]:
    """(name, a thunk calling one RPC through ``call``, a summary of its answer), in order."""
    readers = readers_pb2_grpc.ReaderServiceStub(channel)
    cards = cards_pb2_grpc.CardServiceStub(channel)
    sessions = sessions_pb2_grpc.SessionServiceStub(channel)
    signatures = signatures_pb2_grpc.SignatureServiceStub(channel)
    simulation = simulation_pb2_grpc.SimulationServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    backend = backend_pb2_grpc.SessionServiceStub(backend_channel)
    pin_ref = cards_pb2.PIN_REFERENCE_PIN
    state: dict[str, Any] = {}

    def remember(key: str, summary: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def keep(response: Any) -> Any:
            state[key] = response
            return summary(response)
        return keep

    def challenge() -> Any:
        return call(backend.IssueChallenge, backend_pb2.IssueChallengeRequest(),
                    metadata=BACKEND_CLIENT)

    def open_session() -> Any:
        return call(sessions.OpenSession, sessions_pb2.OpenSessionRequest(
            pk_reader=PK_READER, kzz_reader=KZZ_READER, challenge=state["nonce"].nonce,
            authorizations=["I002"], pin=SECRETS["pin"]))

    def refresh_session() -> Any:
        return call(sessions.RefreshSession, sessions_pb2.RefreshSessionRequest(
            session_id=state["opened"].session_id, challenge=state["nonce"].nonce))

    s = SECRETS
    return [
        ("health", lambda: call(health.Check, health_pb2.HealthCheckRequest()),
         lambda r: r.status),
        ("insert_pk", lambda: call(simulation.InsertCard, simulation_pb2.InsertCardRequest(
            reader=PK_READER, profile="pk-regular")), lambda r: True),
        ("insert_kzz", lambda: call(simulation.InsertCard, simulation_pb2.InsertCardRequest(
            reader=KZZ_READER, profile="kzz")), lambda r: True),
        ("list_readers", lambda: call(readers.ListReaders, readers_pb2.ListReadersRequest()),
         lambda r: len(r.readers)),
        ("get_card_pk", lambda: call(cards.GetCard, cards_pb2.GetCardRequest(reader=PK_READER)),
         lambda r: readers_pb2.CardKind.Name(r.kind)),
        ("get_card_kzz", lambda: call(cards.GetCard, cards_pb2.GetCardRequest(
            reader=KZZ_READER)), lambda r: readers_pb2.CardKind.Name(r.kind)),
        ("get_pin_status", lambda: call(cards.GetPinStatus, cards_pb2.GetPinStatusRequest(
            reader=PK_READER)), lambda r: len(r.statuses)),
        ("verify_pin_wrong", lambda: call(cards.VerifyPin, cards_pb2.VerifyPinRequest(
            reader=PK_READER, reference=pin_ref, pin=s["wrong_pin"])), lambda r: None),
        ("verify_pin", lambda: call(cards.VerifyPin, cards_pb2.VerifyPinRequest(
            reader=PK_READER, reference=pin_ref, pin=s["pin"])),
         lambda r: cards_pb2.PinState.Name(r.status.state)),
        ("change_pin", lambda: call(cards.ChangePin, cards_pb2.ChangePinRequest(
            reader=PK_READER, reference=pin_ref, old_pin=s["pin"], new_pin=s["new_pin"])),
         lambda r: cards_pb2.PinState.Name(r.status.state)),
        ("unblock_pin", lambda: call(cards.UnblockPin, cards_pb2.UnblockPinRequest(
            reader=PK_READER, puk=s["puk"], new_pin=s["pin"])), lambda r: r.status.tries_left),
        ("sign_document", lambda: call(signatures.SignDocument,
                                       signatures_pb2.SignDocumentRequest(
                                           reader=PK_READER, document=DOCUMENT, spin=s["spin"])),
         remember("signed", lambda r: len(r.cms) > 0)),
        ("verify_document", lambda: call(signatures.VerifyDocument,
                                         signatures_pb2.VerifyDocumentRequest(
                                             document=DOCUMENT, cms=state["signed"].cms)),
         lambda r: r.trust_anchor != ""),
        ("challenge", challenge, remember("nonce", lambda r: len(r.nonce) > 0)),
        ("open_session", open_session, remember("opened", lambda r: r.session_id != "")),
        ("challenge_2", challenge, remember("nonce", lambda r: len(r.nonce) > 0)),
        ("refresh_session", refresh_session, lambda r: r.token.token != ""),
        ("get_session", lambda: call(sessions.GetSession, sessions_pb2.GetSessionRequest(
            session_id=state["opened"].session_id)),
         lambda r: sessions_pb2.SessionState.Name(r.state)),
        ("close_session", lambda: call(sessions.CloseSession, sessions_pb2.CloseSessionRequest(
            session_id=state["opened"].session_id)), lambda r: r.closed),
        ("reactivate_card", lambda: call(sessions.ReactivateCard,
                                         sessions_pb2.ReactivateCardRequest(
                                             reader=PK_READER, password=s["reactivation"])),
         lambda r: r.card_serial),
        ("insert_transport", lambda: call(simulation.InsertCard,
                                          simulation_pb2.InsertCardRequest(
                                              reader=PK_READER, profile="pk-transport")),
         lambda r: True),
        ("activate_signature_pin", lambda: call(
            cards.ActivateSignaturePin, cards_pb2.ActivateSignaturePinRequest(
                reader=PK_READER, tpin=s["tpin"], new_spin=s["new_spin"])),
         lambda r: cards_pb2.PinReference.Name(r.status.reference)),
        ("remove_card", lambda: call(simulation.RemoveCard, simulation_pb2.RemoveCardRequest(
            reader=KZZ_READER)), lambda r: r.removed),
    ]


def _raw_unimplemented(channel: grpc.Channel, timeout: float | None) -> dict[str, Any]:
    method = channel.unary_unary("/pkcard.v1.CardService/NoSuchMethod")
    try:
        return _ok(method(b"", timeout=timeout))
    except grpc.RpcError as error:
        return _failure(error)


def run_raw(socket_path: Path, deadline_s: float | None) -> Report:
    """Every RPC through the generated stubs; ``deadline_s`` None: no deadline at all."""
    report: Report = {}
    with grpc.insecure_channel(f"unix:{socket_path}") as channel, \
            grpc.insecure_channel(f"unix:{socket_path.parent / 'backend.sock'}") as backend:

        def call(method: Any, request: Any, **kwargs: Any) -> Any:
            if deadline_s is not None:
                kwargs["timeout"] = deadline_s
            return method(request, **kwargs)

        for name, thunk, summary in _steps(channel, backend, call):
            try:
                report[name] = _ok(summary(thunk()))
            except grpc.RpcError as error:
                report[name] = _failure(error)
        stream = readers_pb2_grpc.ReaderServiceStub(channel).WatchEvents(
            readers_pb2.WatchEventsRequest(), timeout=deadline_s)
        first = next(stream)
        stream.cancel()
        report["watch_events"] = _ok(len(first.snapshot.readers))
        report["unimplemented"] = _raw_unimplemented(channel, deadline_s)
    return report


async def _run_aio(socket_path: Path, deadline_s: float | None) -> Report:
    report: Report = {}
    async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel, \
            grpc.aio.insecure_channel(f"unix:{socket_path.parent / 'backend.sock'}") as backend:

        def call(method: Any, request: Any, **kwargs: Any) -> Awaitable[Any]:
            if deadline_s is not None:
                kwargs["timeout"] = deadline_s
            result: Awaitable[Any] = method(request, **kwargs)
            return result

        for name, thunk, summary in _steps(channel, backend, call):
            try:
                report[name] = _ok(summary(await thunk()))
            except grpc.aio.AioRpcError as error:
                report[name] = {"code": error.code().value[0],
                                "error_info": error_info(error.trailing_metadata()),
                                "value": None}
        stream = readers_pb2_grpc.ReaderServiceStub(channel).WatchEvents(
            readers_pb2.WatchEventsRequest(), timeout=deadline_s)
        first = await stream.read()
        stream.cancel()
        report["watch_events"] = _ok(len(first.snapshot.readers))  # type: ignore[union-attr]
        method = channel.unary_unary("/pkcard.v1.CardService/NoSuchMethod")
        try:
            report["unimplemented"] = _ok(await method(b"", timeout=deadline_s))
        except grpc.aio.AioRpcError as error:
            report["unimplemented"] = {"code": error.code().value[0],
                                       "error_info": error_info(error.trailing_metadata()),
                                       "value": None}
    return report


def run_aio(socket_path: Path, deadline_s: float | None) -> Report:
    """Every RPC through ``grpc.aio``; ``deadline_s`` None: no deadline at all."""
    return asyncio.run(_run_aio(socket_path, deadline_s))


OK = 0
UNAUTHENTICATED = 16
UNIMPLEMENTED = 12

EXPECTED_VALUES = {
    "health": 1,  # SERVING
    "list_readers": 2,
    "watch_events": 2,
    "get_card_pk": "CARD_KIND_PK",
    "get_card_kzz": "CARD_KIND_KZZ",
    "get_pin_status": 5,
    "verify_pin": "PIN_STATE_VERIFIED",
    "change_pin": "PIN_STATE_VERIFIED",
    "unblock_pin": 3,
    "sign_document": True,
    "verify_document": True,
    "open_session": True,
    "refresh_session": True,
    "get_session": "SESSION_STATE_ACTIVE",
    "close_session": True,
    "reactivate_card": "PK0000100001",  # pk-regular's serial
    "activate_signature_pin": "PIN_REFERENCE_SPIN",
    "remove_card": True,
}


def check_report(report: Report) -> None:
    """What every client, whatever its language, must have seen."""
    failures = {name: step for name, step in report.items()
                if step["code"] != OK and name not in ("verify_pin_wrong", "unimplemented")}
    assert failures == {}, failures
    for name, step in report.items():
        if step["code"] != OK:
            info = step["error_info"]
            assert info is not None, (name, step)
            assert info["domain"] == "pkcard.si", (name, step)
    wrong = report["verify_pin_wrong"]
    assert wrong["code"] == UNAUTHENTICATED
    assert wrong["error_info"]["reason"] == "WRONG_PIN"
    assert wrong["error_info"]["metadata"]["tries_left"] == "2"
    unimplemented = report["unimplemented"]
    assert unimplemented["code"] == UNIMPLEMENTED
    assert unimplemented["error_info"]["reason"] == "UNIMPLEMENTED"
    for name, value in EXPECTED_VALUES.items():
        if value is not None:
            assert report[name]["value"] == value, (name, report[name])
