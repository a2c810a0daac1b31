"""The vpcd card side against a fake vpcd reader on loopback (no pcscd needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcsc_cards import ECHO_PK_ATR, EchoCard, FakeReader

from pkcard.simcard.vpcd import SlotError, VpcdCardSlot, VpcdControl


@pytest.fixture
def reader() -> Iterator[FakeReader]:
    fake = FakeReader()
    yield fake
    fake.close()


def test_controls_and_apdus(reader: FakeReader) -> None:
    card = EchoCard()
    with VpcdCardSlot(reader.port) as slot:
        slot.insert(card)
        reader.accept()
        assert slot.inserted
        reader.send(bytes([VpcdControl.GET_ATR]))
        assert reader.receive() == ECHO_PK_ATR
        reader.send(bytes([VpcdControl.POWER_OFF]))
        reader.send(bytes([VpcdControl.POWER_ON]))
        reader.send(bytes([VpcdControl.RESET]))
        reader.send(bytes.fromhex("00010203 02 CAFE"))
        assert reader.receive() == bytes.fromhex("CAFE9000")
        assert (card.power_offs, card.resets, card.commands) == (1, 1, 1)
    assert not slot.inserted


def test_remove_closes_the_connection(reader: FakeReader) -> None:
    slot = VpcdCardSlot(reader.port)
    slot.insert(EchoCard())
    reader.accept()
    slot.remove()
    assert not slot.inserted
    assert reader.receive() is None
    slot.remove()  # idempotent


def test_pull_on_next_apdu(reader: FakeReader) -> None:
    with VpcdCardSlot(reader.port) as slot:
        slot.insert(EchoCard())
        reader.accept()
        slot.pull_on_next_apdu()
        reader.send(bytes([VpcdControl.GET_ATR]))  # controls still answered
        assert reader.receive() == ECHO_PK_ATR
        reader.send(bytes.fromhex("00B0000000"))
        assert reader.receive() is None


def test_reader_closing_means_card_out(reader: FakeReader) -> None:
    slot = VpcdCardSlot(reader.port)
    slot.insert(EchoCard())
    reader.accept()
    assert reader.client is not None
    reader.client.close()
    reader.client = None
    slot.remove()
    assert not slot.inserted


def test_insert_twice_and_no_listener(reader: FakeReader) -> None:
    with VpcdCardSlot(reader.port) as slot:
        slot.insert(EchoCard())
        with pytest.raises(SlotError):
            slot.insert(EchoCard())
    port = reader.port
    reader.close()
    with pytest.raises(SlotError):
        VpcdCardSlot(port).insert(EchoCard())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=6, max_size=260), min_size=1, max_size=5))
def test_any_apdu_sizes_round_trip(apdus: list[bytes]) -> None:
    fake = FakeReader()
    try:
        with VpcdCardSlot(fake.port) as slot:
            slot.insert(EchoCard())
            fake.accept()
            for apdu in apdus:
                fake.send(apdu)
                expected = EchoCard().execute(apdu)
                assert fake.receive() == expected
    finally:
        fake.close()


class CrashingCard(EchoCard):
    def execute(self, apdu: bytes) -> bytes:
        raise RuntimeError("card OS bug")


def test_a_crashing_card_answers_6f00(reader: FakeReader) -> None:
    with VpcdCardSlot(reader.port) as slot:
        slot.insert(CrashingCard())
        reader.accept()
        reader.send(bytes.fromhex("00B0000000"))
        assert reader.receive() == b"\x6f\x00"
        assert slot.inserted
