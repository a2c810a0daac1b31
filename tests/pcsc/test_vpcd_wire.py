"""The vpcd card side against a fake vpcd reader on loopback (no pcscd needed)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcsc_cards import ECHO_PK_ATR, EchoCard

from simcard.vpcd import SlotError, VpcdCardSlot, VpcdControl


class FakeReader:
    """The reader side of vpcd: listens, accepts one card, sends messages."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port: int = self.server.getsockname()[1]
        self.client: socket.socket | None = None

    def accept(self) -> None:
        self.server.settimeout(5)
        self.client, _ = self.server.accept()
        self.client.settimeout(5)

    def send(self, payload: bytes) -> None:
        assert self.client is not None
        self.client.sendall(struct.pack(">H", len(payload)) + payload)

    def receive(self) -> bytes | None:
        assert self.client is not None
        header = self._exact(2)
        if header is None:
            return None
        return self._exact(struct.unpack(">H", header)[0])

    def _exact(self, size: int) -> bytes | None:
        assert self.client is not None
        data = b""
        while len(data) < size:
            chunk = self.client.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.close()


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
