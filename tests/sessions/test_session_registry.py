"""SessionRegistry in process: which reader events end which sessions (a hypothesis model)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pkcard.daemon.events import SessionEndedEvent
from pkcard.daemon.sessions import SessionInfo, SessionRegistry
from pkcard.errors import CardRemoved, SessionEnded, SessionEndReason, SessionNotFound
from pkcard.kzz import HealthInsuranceCard
from pkcard.pk import ProfessionalCard
from pkcard.readers import ReaderEvent, ReaderEventKind
from pkcard.simcard.card import load_card
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.token import ProofMethod, session_claims

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
READERS = ("reader-a", "reader-b", "reader-c")
EXAMPLES = 1000 if os.environ.get("HYPOTHESIS_PROFILE") == "slow" else 100
PK = ProfessionalCard.over(InProcessConnection(load_card("pk-regular"))).read_card()
KZZ = HealthInsuranceCard.over(InProcessConnection(load_card("kzz"))).read_card()
CLAIMS = session_claims(pk=PK, nonce=b"\x01" * 32, workstation_id="ws-1", now=NOW,
                        authorizations=("I002",), restricted=ProofMethod.RESTRICTED_EMERGENCY,
                        restricted_reason="emergency care")


def info(session_id: str, pk_reader: str, kzz_reader: str | None) -> SessionInfo:
    return SessionInfo(session_id, pk_reader, kzz_reader, PK,
                       None if kzz_reader is None else KZZ, CLAIMS, NOW)


def test_a_removal_while_opening_opens_nothing() -> None:
    ended: list[SessionEndedEvent] = []
    registry = SessionRegistry(ended.append)
    marks = registry.removal_marks(["reader-a", "reader-b"])
    registry.on_reader_event(ReaderEvent(ReaderEventKind.CARD_REMOVED, "reader-b"))
    with pytest.raises(CardRemoved):
        registry.add(info("s1", "reader-a", "reader-b"), NOW, marks)
    with pytest.raises(SessionNotFound):
        registry.active("s1")
    assert ended == []


def test_a_service_loss_while_opening_opens_nothing() -> None:
    registry = SessionRegistry(lambda _: None)
    marks = registry.removal_marks(["reader-a"])
    registry.on_reader_event(ReaderEvent(ReaderEventKind.SERVICE_LOST, ""))
    with pytest.raises(CardRemoved):
        registry.add(info("s1", "reader-a", None), NOW, marks)


def test_ended_sessions_are_forgotten_beyond_the_retention() -> None:
    registry = SessionRegistry(lambda _: None, ended_retention=2)
    for n in range(3):
        registry.add(info(f"s{n}", "reader-a", None), NOW, registry.removal_marks([]))
        registry.end(f"s{n}", SessionEndReason.CLOSED)
    with pytest.raises(SessionNotFound):
        registry.active("s0")
    with pytest.raises(SessionEnded):
        registry.active("s2")


class RegistryModel(RuleBasedStateMachine):
    """Sessions end exactly when one of their readers loses its card, the reader or the
    service, or they are closed; each ending is reported once, with the right reason."""

    def __init__(self) -> None:
        super().__init__()
        self.reported: list[SessionEndedEvent] = []
        self.registry = SessionRegistry(self.reported.append, max_sessions=1000)
        self.open: dict[str, tuple[str, str | None]] = {}
        self.expected: dict[str, SessionEndReason] = {}
        self.count = 0

    @rule(pk=st.sampled_from(READERS), kzz=st.none() | st.sampled_from(READERS))
    def open_session(self, pk: str, kzz: str | None) -> None:
        if kzz == pk:
            return
        self.count += 1
        sid = f"s{self.count}"
        readers = [pk] if kzz is None else [pk, kzz]
        self.registry.add(info(sid, pk, kzz), NOW, self.registry.removal_marks(readers))
        self.open[sid] = (pk, kzz)

    @rule(kind=st.sampled_from(list(ReaderEventKind)), reader=st.sampled_from(READERS))
    def reader_event(self, kind: ReaderEventKind, reader: str) -> None:
        self.registry.on_reader_event(ReaderEvent(kind, reader))
        for sid, (pk, kzz) in list(self.open.items()):
            reason: SessionEndReason | None = None
            if kind is ReaderEventKind.SERVICE_LOST:
                reason = SessionEndReason.SERVICE_LOST
            elif kind is ReaderEventKind.READER_REMOVED and reader in (pk, kzz):
                reason = SessionEndReason.READER_REMOVED
            elif kind is ReaderEventKind.CARD_REMOVED and reader == pk:
                reason = SessionEndReason.PK_REMOVED
            elif kind is ReaderEventKind.CARD_REMOVED and reader == kzz:
                reason = SessionEndReason.KZZ_REMOVED
            if reason is not None:
                del self.open[sid]
                self.expected[sid] = reason

    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        if not self.open:
            return
        sid = data.draw(st.sampled_from(sorted(self.open)))
        assert self.registry.end(sid, SessionEndReason.CLOSED)
        del self.open[sid]
        self.expected[sid] = SessionEndReason.CLOSED

    @invariant()
    def states_agree(self) -> None:
        for sid in self.open:
            assert self.registry.active(sid).session_id == sid
        for sid, reason in self.expected.items():
            with pytest.raises(SessionEnded) as ended:
                self.registry.active(sid)
            assert ended.value.end_reason is reason
        assert {e.session_id: e.end_reason for e in self.reported} == self.expected
        assert len(self.reported) == len(self.expected)


RegistryModel.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=30,
                                           deadline=None)
test_registry_model = RegistryModel.TestCase
