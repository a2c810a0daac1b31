"""Sharing one card: resets by another application, transactions."""

from __future__ import annotations

import threading

import pytest
from pcsc_cards import EchoCard
from smartcard import scard

from pkcard.errors import CardReset, ReaderBusy
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.simcard.pcscd_harness import PcscdHarness

pytestmark = pytest.mark.pcsc

PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1


def test_reset_by_another_application(pcscd_env: PcscdHarness) -> None:
    card = EchoCard()
    pcscd_env.insert(0, card)
    with PcscReaderSystem() as system, system.connect(pcscd_env.reader_name(0)) as connection:
        assert connection.transmit(bytes.fromhex("00B00000")) == b"\x90\x00"
        # another application resets the card through its own handle
        status, hcontext = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        assert status == scard.SCARD_S_SUCCESS
        status, hcard, _ = scard.SCardConnect(
            hcontext, pcscd_env.reader_name(0), scard.SCARD_SHARE_SHARED, PROTOCOLS
        )
        assert status == scard.SCARD_S_SUCCESS
        status, _ = scard.SCardReconnect(
            hcard, scard.SCARD_SHARE_SHARED, PROTOCOLS, scard.SCARD_RESET_CARD
        )
        assert status == scard.SCARD_S_SUCCESS
        scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(hcontext)
        assert card.resets >= 1
        with pytest.raises(CardReset):
            connection.transmit(bytes.fromhex("00B00000"))
        # acknowledged: the same connection works again
        assert connection.transmit(bytes.fromhex("00B00000")) == b"\x90\x00"


def test_exclusive_holder_makes_connect_busy(pcscd_env: PcscdHarness) -> None:
    pcscd_env.insert(1, EchoCard())
    name = pcscd_env.reader_name(1)
    status, hcontext = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert status == scard.SCARD_S_SUCCESS
    status, hcard, _ = scard.SCardConnect(hcontext, name, scard.SCARD_SHARE_EXCLUSIVE, PROTOCOLS)
    assert status == scard.SCARD_S_SUCCESS
    try:
        with PcscReaderSystem() as system, pytest.raises(ReaderBusy):
            system.connect(name)
    finally:
        scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(hcontext)


def test_second_transaction_waits_for_the_first(pcscd_env: PcscdHarness) -> None:
    pcscd_env.insert(2, EchoCard())
    name = pcscd_env.reader_name(2)
    order: list[str] = []
    with PcscReaderSystem() as system:
        first = system.connect(name)
        second = system.connect(name)
        first.begin_transaction()

        def take_second() -> None:
            second.begin_transaction()
            order.append("second began")
            second.end_transaction()

        waiter = threading.Thread(target=take_second, daemon=True)
        waiter.start()
        waiter.join(0.3)  # give it the chance to (wrongly) get in
        order.append("first ends")
        first.end_transaction()
        waiter.join(10)
        assert not waiter.is_alive()
        first.close()
        second.close()
    assert order == ["first ends", "second began"]
