"""Restricted mode's OTHER reason through ``pkcardd --simulated`` and a real backend (issue 15
point 4): the free text is required, and the reason and the text reach the daemon's audit
records, the token, the backend's audit and the redemption reply."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sessionrig import AUTHORIZATIONS, Rig, profile_secret

from pkcard.backend.registry import AuditEvent
from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.errors import InvalidRequest
from pkcard.sessions import RestrictedMode, RestrictedReason
from pkcard.simcard.inprocess import PINPAD_READER
from pkcard.simcard.spec import SecretRef
from pkcard.token import MAX_RESTRICTED_REASON

PK_READER = PINPAD_READER.name
PIN = profile_secret("pk-regular", SecretRef.PIN)
PATIENT = "900000011"
OTHER_TEXT = "home visit: patient bedridden, KZZ left at the pharmacy (šifra 7)"


def audit_records(rig: Rig) -> list[dict[str, Any]]:
    return [json.loads(line) for line in rig.daemon.audit_path.read_text().splitlines()]


def test_other_reason_with_text_end_to_end(sim: Rig) -> None:
    with sim.daemon.client() as client:
        opened = client.open_session(
            PK_READER, sim.backend.challenge(), AUTHORIZATIONS, pin=PIN,
            restricted=RestrictedMode(RestrictedReason.OTHER, PATIENT, OTHER_TEXT))
        assert opened.claims.restricted_reason is RestrictedReason.OTHER
        redeemed = sim.backend.redeem(opened.token.token)
        assert redeemed.scope == bpb.SCOPE_RESTRICTED
        assert redeemed.restricted_reason == bpb.RESTRICTED_REASON_OTHER
        assert redeemed.restricted_note == OTHER_TEXT
        assert [(a.code, a.granted, a.refusal) for a in redeemed.authorizations] == [
            ("I002", True, bpb.AUTHORIZATION_REFUSAL_UNSPECIFIED),
            ("I003", False, bpb.AUTHORIZATION_REFUSAL_NOT_IN_RESTRICTED_SET)]
        refreshed = client.refresh_session(opened.session_id, sim.backend.challenge())
        assert sim.backend.redeem(refreshed.token).restricted_note == OTHER_TEXT
        client.close_session(opened.session_id)
    records = [r for r in audit_records(sim)
               if r["operation"] in ("OpenSession", "RefreshSession")
               and r.get("session_id", opened.session_id) == opened.session_id]
    opens = [r for r in records if r["operation"] == "OpenSession"]
    assert [r["outcome"] for r in opens][-2:] == ["STARTED", "OK"]  # the intent, the outcome
    # a refresh learns the session's reason in the call: its outcome record carries it
    refreshes = [r for r in records if r["operation"] == "RefreshSession"]
    assert refreshes[-1]["outcome"] == "OK"
    for record in [*opens[-2:], refreshes[-1]]:
        assert (record["restricted_reason"], record["restricted_note"]) == ("OTHER", OTHER_TEXT)
    details = [r.detail or "" for r in sim.backend.registry.audit_records()
               if r.event is AuditEvent.REDEEMED]
    assert f"RESTRICTED I002; restricted-other: {OTHER_TEXT}; refused I003 " \
           "NOT_IN_RESTRICTED_SET" in details


@pytest.mark.parametrize("note", ["", "   ", "tab\there", "x" * (MAX_RESTRICTED_REASON + 1)])
def test_other_reason_needs_printable_text(sim: Rig, note: str) -> None:
    challenge = sim.backend.challenge()
    with sim.daemon.client() as client, pytest.raises(InvalidRequest) as refused:
        client.open_session(PK_READER, challenge, AUTHORIZATIONS, pin=PIN,
                            restricted=RestrictedMode(RestrictedReason.OTHER, PATIENT, note))
    assert "restricted.note" in str(refused.value)
    last = audit_records(sim)[-1]
    assert (last["operation"], last["outcome"], last["restricted_reason"]) == (
        "OpenSession", "INVALID_REQUEST", "OTHER")


def test_standard_reasons_record_their_sentence(sim: Rig) -> None:
    with sim.daemon.client() as client:
        opened = client.open_session(
            PK_READER, sim.backend.challenge(), AUTHORIZATIONS, pin=PIN,
            restricted=RestrictedMode(RestrictedReason.KZZ_UNUSABLE, PATIENT))
        reply = sim.backend.redeem(opened.token.token)
        client.close_session(opened.session_id)
    assert reply.restricted_reason == bpb.RESTRICTED_REASON_KZZ_UNUSABLE
    assert reply.restricted_note == "the patient's KZZ does not work"
    last_open = [r for r in audit_records(sim) if r["operation"] == "OpenSession"][-1]
    assert (last_open["outcome"], last_open["restricted_reason"],
            last_open["restricted_note"]) == ("OK", "KZZ_UNUSABLE",
                                              "the patient's KZZ does not work")
