"""Reader listing, models and plain APDU exchange over the real pcscd path."""

from __future__ import annotations

import pytest
from pcsc_cards import ECHO_KZZ_ATR, ECHO_PK_ATR, EchoCard

from pkcard.errors import CardRemoved, ReaderNotFound
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.protocol import SmartCardProtocol
from pkcard.readers import CardKind, ReaderModel
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.profile import load_profile

pytestmark = pytest.mark.pcsc


def test_lists_every_reader_with_model_and_capabilities(pcscd_env: PcscdHarness) -> None:
    with PcscReaderSystem() as system:
        states = {state.reader.name: state for state in system.list_readers()}
    assert set(pcscd_env.reader_names) <= set(states)
    ct30 = states[pcscd_env.reader_name(0)].reader
    ct700 = states[pcscd_env.reader_name(1)].reader
    generic = states[pcscd_env.reader_name(2)].reader
    assert ct30.model is ReaderModel.IDBRIDGE_CT30
    assert ct30.capabilities.pin_pad is False
    assert ct700.model is ReaderModel.IDBRIDGE_CT700
    assert ct700.capabilities.pin_pad is True
    assert generic.model is ReaderModel.GENERIC
    assert all(not state.card_present for state in states.values())


def test_card_presence_atr_and_kind(pcscd_env: PcscdHarness) -> None:
    pcscd_env.insert(0, EchoCard(ECHO_PK_ATR))
    pcscd_env.insert(1, EchoCard(ECHO_KZZ_ATR))
    with PcscReaderSystem() as system:
        states = {state.reader.name: state for state in system.list_readers()}
    pk = states[pcscd_env.reader_name(0)]
    kzz = states[pcscd_env.reader_name(1)]
    assert (pk.card_present, pk.atr, pk.card_kind) == (True, ECHO_PK_ATR, CardKind.PK)
    assert (kzz.card_present, kzz.atr, kzz.card_kind) == (True, ECHO_KZZ_ATR, CardKind.KZZ)
    assert states[pcscd_env.reader_name(2)].card_kind is CardKind.NONE


def test_connect_and_transmit(pcscd_env: PcscdHarness) -> None:
    card = EchoCard()
    pcscd_env.insert(1, card)
    with PcscReaderSystem() as system, system.connect(pcscd_env.reader_name(1)) as connection:
        assert connection.atr == ECHO_PK_ATR
        assert connection.capabilities.pin_pad is True
        assert connection.transmit(bytes.fromhex("00010203 03 AABBCC")) == bytes.fromhex(
            "AABBCC9000"
        )
        assert connection.transmit(bytes.fromhex("00B00000")) == bytes.fromhex("9000")
    assert card.commands == 2


def test_close_leaves_the_card_powered(pcscd_env: PcscdHarness) -> None:
    card = EchoCard()
    pcscd_env.insert(0, card)
    with PcscReaderSystem() as system:
        first = system.connect(pcscd_env.reader_name(0))
        second = system.connect(pcscd_env.reader_name(0))
        first.transmit(bytes.fromhex("00B00000"))
        offs_before = card.power_offs
        first.close()
        first.close()  # idempotent
        assert second.transmit(bytes.fromhex("00B00000")) == b"\x90\x00"
        second.close()
    assert card.power_offs == offs_before


def test_connect_to_unknown_reader(pcscd_env: PcscdHarness) -> None:
    with PcscReaderSystem() as system, pytest.raises(ReaderNotFound):
        system.connect("No Such Reader 00 00")


def test_connect_to_empty_reader(pcscd_env: PcscdHarness) -> None:
    with PcscReaderSystem() as system, pytest.raises(CardRemoved):
        system.connect(pcscd_env.reader_name(2))


def test_simulated_pk_through_the_protocol_layer(pcscd_env: PcscdHarness) -> None:
    pk_aid = bytes.fromhex("F0504B43415244504B")
    card = SimulatedCard.from_profile(load_profile("pk-regular"))
    pcscd_env.insert(0, card)
    with PcscReaderSystem() as system:
        state = next(s for s in system.list_readers() if s.reader.name == pcscd_env.reader_name(0))
        assert state.card_kind is CardKind.PK
        with system.connect(pcscd_env.reader_name(0)) as connection:
            fci = SmartCardProtocol(connection).select(pk_aid)
    assert pk_aid in fci
