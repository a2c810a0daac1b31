"""SimulatedReaderSystem and InProcessConnection."""

from __future__ import annotations

import threading

import pytest

from pkcard.errors import CardRemoved, CardReset, ReaderNotFound
from pkcard.readers import CardKind, ReaderEvent, ReaderEventKind, ReaderInfo, ReaderModel
from pkcard.simcard.card import SimulatedCard, load_card
from pkcard.simcard.inprocess import (
    PINPAD_READER,
    TWIN_READER,
    InProcessConnection,
    SimulatedReaderSystem,
)
from pkcard.simcard.spec import SecretRef
from pkcard.transport import ReaderCapabilities, SmartCardConnection

PINPAD = PINPAD_READER.name
TWIN = TWIN_READER.name
SELECT_PK = bytes.fromhex("00A4040C09F0504B43415244504B")


def verify_pin(conn: SmartCardConnection, card: SimulatedCard) -> bytes:
    block = card.profile.secret_value(SecretRef.PIN).encode().ljust(8, b"\xff")
    return conn.transmit(b"\x00\x20\x00\x81\x08" + block)


def test_default_readers_and_card_kinds() -> None:
    system = SimulatedReaderSystem()
    states = {s.reader.name: s for s in system.list_readers()}
    assert set(states) == {PINPAD, TWIN}
    assert states[PINPAD].reader.model == ReaderModel.IDBRIDGE_CT700
    assert states[PINPAD].reader.capabilities.pin_pad is True
    assert states[TWIN].reader.model == ReaderModel.IDBRIDGE_CT30
    assert states[TWIN].reader.capabilities.pin_pad is False
    assert not states[PINPAD].card_present
    assert states[PINPAD].card_kind == CardKind.NONE
    system.insert(PINPAD, load_card("pk-regular"))
    system.insert(TWIN, load_card("kzz"))
    states = {s.reader.name: s for s in system.list_readers()}
    assert states[PINPAD].card_kind == CardKind.PK
    assert states[TWIN].card_kind == CardKind.KZZ
    assert states[TWIN].atr[4:12] == b"PKCARDKZ"


def test_events_are_delivered_synchronously() -> None:
    system = SimulatedReaderSystem()
    events: list[ReaderEvent] = []
    card = load_card("pk-regular")
    system.insert(PINPAD, card)
    system.start_watching(events.append)
    assert events == [ReaderEvent(ReaderEventKind.CARD_INSERTED, PINPAD, card.atr)]
    assert system.remove(PINPAD) is card
    assert events[-1] == ReaderEvent(ReaderEventKind.CARD_REMOVED, PINPAD)
    assert system.remove(PINPAD) is None
    system.insert(TWIN, card)
    assert events[-1].kind == ReaderEventKind.CARD_INSERTED
    system.add_reader(
        ReaderInfo("Generic reader (simulated)", ReaderModel.GENERIC, ReaderCapabilities())
    )
    assert events[-1] == ReaderEvent(ReaderEventKind.READER_ADDED, "Generic reader (simulated)")
    system.remove_reader(TWIN)
    assert [e.kind for e in events[-2:]] == [
        ReaderEventKind.CARD_REMOVED,
        ReaderEventKind.READER_REMOVED,
    ]
    system.stop_watching()
    count = len(events)
    system.insert(PINPAD, card)
    assert len(events) == count
    system.close()


def test_connect_errors() -> None:
    system = SimulatedReaderSystem()
    with pytest.raises(ReaderNotFound):
        system.connect("no such reader")
    with pytest.raises(CardRemoved):
        system.connect(PINPAD)
    with pytest.raises(ReaderNotFound):
        system.insert("no such reader", load_card("kzz"))


def test_removal_ends_connections_and_verified_states() -> None:
    system = SimulatedReaderSystem()
    card = load_card("pk-regular")
    system.insert(PINPAD, card)
    conn = system.connect(PINPAD)
    assert conn.capabilities.pin_pad is True
    assert conn.transmit(SELECT_PK)[-2:] == b"\x90\x00"
    assert verify_pin(conn, card)[-2:] == b"\x90\x00"
    system.remove(PINPAD)
    with pytest.raises(CardRemoved):
        conn.transmit(SELECT_PK)
    assert not card.is_verified(SecretRef.PIN)
    system.insert(PINPAD, card)  # the same card back: old connections stay dead
    with pytest.raises(CardRemoved):
        conn.transmit(SELECT_PK)
    fresh = system.connect(PINPAD)
    assert fresh.transmit(b"\x00\x20\x00\x81")[-2:] == b"\x63\xc3"


def test_standalone_connection_pull_and_reset() -> None:
    card = load_card("pk-regular")
    conn = InProcessConnection(card)
    assert conn.atr == card.atr
    assert verify_pin(conn, card)[-2:] == b"\x90\x00"
    conn.reset_by_other_party()
    with pytest.raises(CardReset):
        conn.transmit(b"\x00\x20\x00\x81")
    assert conn.transmit(b"\x00\x20\x00\x81")[-2:] == b"\x63\xc3"  # works again, unverified
    conn.pull_card()
    with pytest.raises(CardRemoved):
        conn.transmit(b"\x00\x20\x00\x81")
    closed = InProcessConnection(card)
    closed.close()
    with pytest.raises(CardRemoved):
        closed.transmit(b"\x00\x20\x00\x81")


def test_transaction_is_exclusive_between_connections() -> None:
    system = SimulatedReaderSystem()
    system.insert(TWIN, load_card("kzz"))
    first = system.connect(TWIN)
    second = system.connect(TWIN)
    assert isinstance(second, InProcessConnection)
    assert isinstance(first, InProcessConnection)
    access = first._insertion.access  # the lock every transmit of this insertion takes

    def free_in_other_thread() -> bool:
        seen: list[bool] = []

        def probe() -> None:
            got = access.acquire(blocking=False)
            if got:
                access.release()
            seen.append(got)

        worker = threading.Thread(target=probe)
        worker.start()
        worker.join()
        return seen[0]

    assert free_in_other_thread()
    first.begin_transaction()
    assert not free_in_other_thread()
    first.end_transaction()
    assert free_in_other_thread()
    assert second.transmit(b"\x00\x84\x00\x00\x08")[-2:] == b"\x90\x00"
    with first.transaction():
        assert first.transmit(b"\x00\x84\x00\x00\x04")[-2:] == b"\x90\x00"
