"""SessionService end to end over ``pkcardd --simulated`` and a real backend gRPC server."""

from __future__ import annotations

import asyncio
import json

import pytest
from sessionrig import AUTHORIZATIONS, EventCollector, Rig, profile_secret

from pkcard.aio_client import AsyncPkcardClient
from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.errors import (
    InvalidRequest,
    LastTryNotConfirmed,
    SessionEnded,
    SessionEndReason,
    SessionNotFound,
    WrongCardKind,
    WrongPin,
)
from pkcard.pin import PinRef
from pkcard.sessions import RestrictedMode, RestrictedReason, SessionEnd
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.simcard.spec import SecretRef

PK_READER = PINPAD_READER.name
KZZ_READER = TWIN_READER.name
PIN = profile_secret("pk-regular", SecretRef.PIN)
PATIENT = "900000011"  # the kzz profile's ZZZS number


def test_open_redeem_refresh_close(sim: Rig) -> None:
    with sim.daemon.client() as client:
        opened = client.open_session(PK_READER, sim.backend.challenge(), AUTHORIZATIONS,
                                     kzz_reader=KZZ_READER, pin=PIN)
        assert opened.claims.patient_id == PATIENT
        assert opened.claims.kzz_card_serial is not None
        assert opened.claims.restricted_reason is None
        assert opened.token.expires_at > opened.token.issued_at
        redeemed = sim.backend.redeem(opened.token.token)
        assert redeemed.scope == bpb.SCOPE_FULL
        assert list(redeemed.granted_authorizations) == sorted(AUTHORIZATIONS)
        assert redeemed.patient_id == PATIENT
        assert redeemed.card_serial == opened.claims.pk_card_serial

        refreshed = client.refresh_session(opened.session_id, sim.backend.challenge())
        assert refreshed.token != opened.token.token
        assert sim.backend.redeem(refreshed.token).scope == bpb.SCOPE_FULL

        status = client.get_session(opened.session_id)
        assert status.active
        assert status.kzz_reader == KZZ_READER
        assert client.close_session(opened.session_id) is True
        assert client.close_session(opened.session_id) is False
        assert client.get_session(opened.session_id).end_reason is SessionEndReason.CLOSED
        with pytest.raises(SessionEnded) as ended:
            client.refresh_session(opened.session_id, sim.backend.challenge())
        assert ended.value.end_reason is SessionEndReason.CLOSED
    logs = sim.daemon.log() + sim.daemon.audit_path.read_text()
    assert PIN not in logs
    assert opened.token.token.rsplit(".", 1)[1] not in logs
    assert refreshed.token.rsplit(".", 1)[1] not in logs


def test_restricted_session_gets_the_restricted_set(sim: Rig) -> None:
    with sim.daemon.client() as client:
        opened = client.open_session(
            PK_READER, sim.backend.challenge(), AUTHORIZATIONS, pin=PIN,
            restricted=RestrictedMode(RestrictedReason.EMERGENCY, PATIENT))
        assert opened.claims.restricted_reason is RestrictedReason.EMERGENCY
        assert opened.claims.kzz_card_serial is None
        redeemed = sim.backend.redeem(opened.token.token)
        assert redeemed.scope == bpb.SCOPE_RESTRICTED
        assert list(redeemed.granted_authorizations) == ["I002"]
        assert redeemed.patient_id == PATIENT
        client.close_session(opened.session_id)


@pytest.mark.parametrize(("pulled", "reason"), [
    (KZZ_READER, SessionEndReason.KZZ_REMOVED),
    (PK_READER, SessionEndReason.PK_REMOVED),
])
def test_pulling_a_card_ends_the_session(sim: Rig, pulled: str,
                                         reason: SessionEndReason) -> None:
    events = EventCollector(sim.daemon.channel())
    try:
        with sim.daemon.client() as client:
            opened = client.open_session(PK_READER, sim.backend.challenge(), AUTHORIZATIONS,
                                         kzz_reader=KZZ_READER, pin=PIN)
            assert sim.daemon.remove(pulled)
            end = events.next(SessionEnd)
            assert end == SessionEnd(opened.session_id, reason, pulled)
            with pytest.raises(SessionEnded) as refused:
                client.refresh_session(opened.session_id, sim.backend.challenge())
            assert refused.value.end_reason is reason
            assert client.get_session(opened.session_id).end_reason is reason
    finally:
        events.stop()
    records = [json.loads(line) for line in sim.daemon.audit_path.read_text().splitlines()]
    # Intent records (outcome STARTED, written before the card is touched) aside:
    intents = {r["seq"]: r for r in records if r["outcome"] == "STARTED"}
    mine = [r for r in records
            if r.get("session_id") == opened.session_id and r["outcome"] != "STARTED"]
    assert all(intents[r["intent_seq"]]["operation"] == r["operation"]
               for r in mine if "intent_seq" in r)
    assert [(r["operation"], r["outcome"]) for r in mine] == [
        ("OpenSession", "OK"), ("SessionEnded", reason.name),
        ("RefreshSession", "SESSION_ENDED"),
    ]
    assert opened.token.token.split(".")[2] not in sim.daemon.audit_path.read_text()


def test_pin_already_verified_needs_no_pin(sim: Rig) -> None:
    with sim.daemon.client() as client:
        client.verify_pin(PK_READER, PinRef.PIN, PIN)
        opened = client.open_session(PK_READER, sim.backend.challenge(), ["I003"],
                                     kzz_reader=KZZ_READER)
        assert list(sim.backend.redeem(opened.token.token).granted_authorizations) == ["I003"]


def test_wrong_pin_opens_nothing(sim: Rig) -> None:
    with sim.daemon.client() as client, pytest.raises(WrongPin) as wrong:
        client.open_session(PK_READER, sim.backend.challenge(), AUTHORIZATIONS,
                            kzz_reader=KZZ_READER, pin="11223344")
    assert wrong.value.tries_left == 2


@pytest.mark.parametrize("kwargs", [
    {"challenge": b"\x01" * 31},
    {"authorizations": ["i002"]},
    {"authorizations": ["I002", "I002"]},
    {"kzz_reader": PK_READER},
    {"kzz_reader": None, "restricted": RestrictedMode(RestrictedReason.EMERGENCY, "12345")},
])
def test_invalid_requests_are_refused(sim: Rig, kwargs: dict[str, object]) -> None:
    call: dict[str, object] = {
        "challenge": sim.backend.challenge(), "authorizations": AUTHORIZATIONS,
        "kzz_reader": KZZ_READER, "pin": PIN,
    }
    call.update(kwargs)
    with sim.daemon.client() as client, pytest.raises(InvalidRequest):
        client.open_session(PK_READER, **call)  # type: ignore[arg-type]


def test_swapped_readers_are_the_wrong_card_kind(sim: Rig) -> None:
    with sim.daemon.client() as client, pytest.raises(WrongCardKind):
        client.open_session(KZZ_READER, sim.backend.challenge(), AUTHORIZATIONS,
                            kzz_reader=PK_READER, pin=PIN)


def test_unknown_session(sim: Rig) -> None:
    with sim.daemon.client() as client:
        with pytest.raises(SessionNotFound):
            client.refresh_session("no-such-session", sim.backend.challenge())
        with pytest.raises(SessionNotFound):
            client.get_session("no-such-session")
        assert client.close_session("no-such-session") is False


def test_last_try_needs_confirmation(sim: Rig) -> None:
    with sim.daemon.client() as client:
        for _ in range(2):
            with pytest.raises(WrongPin):
                client.verify_pin(PK_READER, PinRef.PIN, "11223344")
        with pytest.raises(LastTryNotConfirmed):
            client.open_session(PK_READER, sim.backend.challenge(), AUTHORIZATIONS,
                                kzz_reader=KZZ_READER, pin=PIN)
        (status,) = client.get_pin_status(PK_READER, PinRef.PIN)
        assert status.tries_left == 1
        opened = client.open_session(PK_READER, sim.backend.challenge(), AUTHORIZATIONS,
                                     kzz_reader=KZZ_READER, pin=PIN, confirm_last_try=True)
        assert sim.backend.redeem(opened.token.token).scope == bpb.SCOPE_FULL
        client.close_session(opened.session_id)


def test_async_client_sessions(sim: Rig) -> None:
    async def scenario() -> None:
        async with AsyncPkcardClient(sim.daemon.socket_path) as client:
            opened = await client.open_session(
                PK_READER, sim.backend.challenge(), AUTHORIZATIONS,
                restricted=RestrictedMode(RestrictedReason.PATIENT_ABSENT, PATIENT), pin=PIN)
            assert sim.backend.redeem(opened.token.token).scope == bpb.SCOPE_RESTRICTED
            token = await client.refresh_session(opened.session_id, sim.backend.challenge())
            assert sim.backend.redeem(token.token).scope == bpb.SCOPE_RESTRICTED
            status = await client.get_session(opened.session_id)
            assert status.claims.restricted_reason is RestrictedReason.PATIENT_ABSENT
            assert status.kzz_reader is None
            assert await client.close_session(opened.session_id) is True
            with pytest.raises(SessionEnded):
                await client.refresh_session(opened.session_id, sim.backend.challenge())

    asyncio.run(scenario())
