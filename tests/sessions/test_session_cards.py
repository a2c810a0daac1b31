"""The PK and KZZ session jobs in process, on simulated readers (PIN pad flow included).

The jobs run through the daemon's one card entry (CardBackends over ReaderWorkers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from pkcard.cardinfo import Environment
from pkcard.daemon.card_backends import CardBackends
from pkcard.daemon.pin_entry import PinEntryPolicy
from pkcard.daemon.session_cards import PinRequest, prepare_pk, prove_kzz, sign_token
from pkcard.daemon.workers import ReaderWorkers
from pkcard.errors import (
    EnvironmentMismatch,
    HostPinEntryRefused,
    PinNotVerified,
    SessionEnded,
    SessionEndReason,
    WrongCardKind,
)
from pkcard.kzz import HealthInsuranceCard
from pkcard.pin import PadEntry, PinRef, PinState
from pkcard.pk import ProfessionalCard
from pkcard.readers import ReaderEvent, ReaderEventKind
from pkcard.secret import Secret
from pkcard.simcard.card import load_card
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER, SimulatedReaderSystem
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.token import ProofMethod, kzz_proof_digest, session_claims
from pkcard.transcript import RecordingConnection


def _pin() -> str:
    return load_profile("pk-regular").secret_value(SecretRef.PIN)


@pytest.fixture
def readers() -> SimulatedReaderSystem:
    system = SimulatedReaderSystem((PINPAD_READER, TWIN_READER))
    system.insert(PINPAD_READER.name, load_card("pk-regular"))
    system.insert(TWIN_READER.name, load_card("kzz"))
    return system


@pytest.fixture
def backends(readers: SimulatedReaderSystem) -> Iterator[CardBackends]:
    workers = ReaderWorkers(readers)
    yield CardBackends((), workers)
    workers.stop()


def _request(pin: str | None, announce: Callable[[ReaderEvent], None] | None = None,
             reader: str = PINPAD_READER.name) -> PinRequest:
    presenter = PinEntryPolicy(announce=announce).presenter(reader)
    return PinRequest(presenter, PadEntry() if pin is None else Secret(pin), False)


def _pk_status(readers: SimulatedReaderSystem, reader: str) -> PinState:
    with readers.connect(reader) as connection:
        return ProfessionalCard.over(connection).pin_status(PinRef.PIN).state


def test_pin_pad_flow_announces_and_verifies(
    readers: SimulatedReaderSystem, backends: CardBackends,
) -> None:
    pad = readers.pin_pad(PINPAD_READER.name)
    assert pad is not None
    pad.keypad.type(_pin())
    announced: list[ReaderEventKind] = []
    job = prepare_pk(_request(None, lambda event: announced.append(event.kind)))
    data = backends.pk(PINPAD_READER.name, job).value
    assert data.card_serial == "PK0000100001"
    assert announced == [ReaderEventKind.PIN_ENTRY_STARTED, ReaderEventKind.PIN_ENTRY_FINISHED]
    assert _pk_status(readers, PINPAD_READER.name) is PinState.VERIFIED


def test_host_pin_for_a_pin_pad_reader_is_refused(
    readers: SimulatedReaderSystem, backends: CardBackends,
) -> None:
    job = prepare_pk(_request(_pin()))
    with pytest.raises(HostPinEntryRefused):
        backends.pk(PINPAD_READER.name, job)
    assert _pk_status(readers, PINPAD_READER.name) is PinState.VERIFIABLE


def test_no_pin_without_pad_is_refused_before_signing(
    readers: SimulatedReaderSystem, backends: CardBackends,
) -> None:
    readers.insert(TWIN_READER.name, load_card("pk-regular"))
    job = prepare_pk(_request(None, reader=TWIN_READER.name))
    with pytest.raises(PinNotVerified):
        backends.pk(TWIN_READER.name, job)


def test_kzz_job_checks_card_kind_and_swaps(
    readers: SimulatedReaderSystem, backends: CardBackends,
) -> None:
    nonce = b"\x07" * 32
    with pytest.raises(WrongCardKind):
        backends.kzz(PINPAD_READER.name, prove_kzz(nonce, "PK0000100001", Environment.TEST))
    first = backends.kzz(TWIN_READER.name,
                         prove_kzz(nonce, "PK0000100001", Environment.TEST)).value
    assert len(first.proof) == 64
    readers.insert(TWIN_READER.name, load_card("kzz-prod"))
    with pytest.raises(SessionEnded) as ended:
        backends.kzz(TWIN_READER.name,
                     prove_kzz(nonce, "PK0000100001", Environment.TEST, first.kzz))
    assert ended.value.end_reason is SessionEndReason.CARD_RESET
    assert kzz_proof_digest(nonce, "PK0000100001") != kzz_proof_digest(nonce, "PK0000100002")


def test_sign_token_refuses_another_pk_and_an_unverified_pin(
    readers: SimulatedReaderSystem, backends: CardBackends,
) -> None:
    with readers.connect(PINPAD_READER.name) as connection:
        pk = ProfessionalCard.over(connection).read_card()
    claims = session_claims(
        pk=pk, nonce=b"\x01" * 32, workstation_id="ws-1",
        now=datetime.now(UTC),
        authorizations=("I002",), restricted=ProofMethod.RESTRICTED_EMERGENCY,
        restricted_reason="emergency care")
    with pytest.raises(PinNotVerified):
        backends.pk(PINPAD_READER.name, sign_token(claims, pk))
    readers.insert(PINPAD_READER.name, load_card("pk-backup"))
    with pytest.raises(SessionEnded):
        backends.pk(PINPAD_READER.name, sign_token(claims, pk))


@pytest.mark.parametrize(("pk_environment", "kzz_profile"),
                         [(Environment.TEST, "kzz-prod"), (Environment.PRODUCTION, "kzz")])
def test_kzz_of_the_other_environment_is_refused_before_it_signs(
    readers: SimulatedReaderSystem, pk_environment: Environment, kzz_profile: str,
) -> None:
    readers.insert(TWIN_READER.name, load_card(kzz_profile))
    with readers.connect(TWIN_READER.name) as connection:
        recorder = RecordingConnection(connection, "kzz", 1)
        with pytest.raises(EnvironmentMismatch):
            prove_kzz(b"\x07" * 32, "PK0000100001", pk_environment)(
                HealthInsuranceCard.over(recorder))
    sent = [exchange.command for exchange in recorder.transcript.exchanges]
    assert sent, "the KZZ was read"
    assert [command for command in sent if command[1] == 0x88] == []  # no INTERNAL AUTHENTICATE
