"""The PK/KZZ applications replayed against the recorded APDU transcripts."""

from __future__ import annotations

import pytest
from transcript_ops import OPERATIONS, REPLAY_PIN, Recorded, record

from pkcard.errors import TranscriptMismatch
from pkcard.kzz import KzzCardData
from pkcard.pin import PinRef, PinState, PinStatus
from pkcard.pk import PkCardData
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.transcript import parse_transcript, replay

BY_NAME = {op.name: op for op in OPERATIONS}


def replayed(op: Recorded, pin: str = REPLAY_PIN) -> object:
    transcript = parse_transcript(op.path.read_text(encoding="utf-8"))
    return replay(transcript, lambda conn: op.operation(conn, pin))


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_recording_matches_committed_transcript(op: Recorded) -> None:
    text, _result = record(op)
    assert text == op.path.read_text(encoding="utf-8")


def test_replay_read_pk() -> None:
    data = replayed(BY_NAME["pk-read-card"])
    assert isinstance(data, PkCardData)
    assert (data.holder_name, data.card_serial) == ("Ana Testna", "PK0000100001")
    assert data.kpep_certificate is not None


def test_replay_pin_statuses() -> None:
    statuses = replayed(BY_NAME["pk-pin-statuses"])
    assert isinstance(statuses, tuple)
    by_ref = {s.ref: s for s in statuses if isinstance(s, PinStatus)}
    assert by_ref[PinRef.SPIN].state is PinState.TRANSPORT
    assert by_ref[PinRef.TPIN] == PinStatus(PinRef.TPIN, PinState.VERIFIABLE, 3, 3)


def test_replay_verify() -> None:
    status = replayed(BY_NAME["pk-verify-pin"])
    assert isinstance(status, PinStatus)
    assert status.state is PinState.VERIFIED
    assert replayed(BY_NAME["pk-verify-wrong-pin"]) == 2


def test_replay_read_kzz() -> None:
    data = replayed(BY_NAME["kzz-read-card"])
    assert isinstance(data, KzzCardData)
    assert str(data.zzzs_number) == "900000011"


def test_replay_detects_a_different_host() -> None:
    statuses_against_read_card = Recorded(
        "pk-read-card", "pk-regular", BY_NAME["pk-pin-statuses"].operation
    )
    with pytest.raises(TranscriptMismatch):
        replayed(statuses_against_read_card)


def test_transcripts_hold_no_secret() -> None:
    secrets = set()
    for name in ("pk-regular", "pk-transport"):
        profile = load_profile(name)
        for ref in SecretRef:
            value = profile.secret(ref).value
            if value is not None:
                secrets.add(value.encode("ascii").hex().upper())
    for op in OPERATIONS:
        text = op.path.read_text(encoding="utf-8")
        assert not [s for s in secrets if s in text], op.name
