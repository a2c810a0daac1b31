"""The watcher over the real pcscd: card and reader events, pcscd restarts."""

from __future__ import annotations

import pytest
from pcsc_cards import ECHO_PK_ATR, EchoCard, EventLog

from pkcard.errors import CardRemoved
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.readers import ReaderEventKind
from pkcard.simcard.pcscd_harness import DEFAULT_READERS, PcscdHarness, VirtualReader

pytestmark = pytest.mark.pcsc

Kind = ReaderEventKind


def test_insert_and_remove_events(pcscd_env: PcscdHarness) -> None:
    log = EventLog()
    name = pcscd_env.reader_name(0)
    with PcscReaderSystem() as system:
        system.start_watching(log)
        pcscd_env.insert(0, EchoCard())
        inserted = log.wait_for(Kind.CARD_INSERTED, name)
        assert inserted.atr == ECHO_PK_ATR
        pcscd_env.remove(0, wait=False)
        log.wait_for(Kind.CARD_REMOVED, name)
        system.stop_watching()
        system.stop_watching()  # idempotent
    assert [e.kind for e in log.events if e.reader == name] == [
        Kind.CARD_INSERTED,
        Kind.CARD_REMOVED,
    ]


def test_transmit_after_removal_raises_card_removed(pcscd_env: PcscdHarness) -> None:
    log = EventLog()
    name = pcscd_env.reader_name(1)
    pcscd_env.insert(1, EchoCard())
    with PcscReaderSystem() as system:
        connection = system.connect(name)
        system.start_watching(log)
        pcscd_env.remove(1, wait=False)
        log.wait_for(Kind.CARD_REMOVED, name)
        with pytest.raises(CardRemoved):
            connection.transmit(bytes.fromhex("00B00000"))
        connection.close()


def test_card_pulled_mid_command(pcscd_env: PcscdHarness) -> None:
    pcscd_env.insert(2, EchoCard())
    with PcscReaderSystem() as system, system.connect(pcscd_env.reader_name(2)) as connection:
        assert connection.transmit(bytes.fromhex("00B00000")) == b"\x90\x00"
        pcscd_env.pull_on_next_apdu(2)
        with pytest.raises(CardRemoved):
            connection.transmit(bytes.fromhex("00B00000"))


def test_recovers_after_pcscd_restart(pcscd_env: PcscdHarness) -> None:
    log = EventLog()
    name = pcscd_env.reader_name(0)
    card = EchoCard()
    pcscd_env.insert(0, card)
    with PcscReaderSystem() as system:
        assert system.list_readers()  # the context exists before the restart
        system.start_watching(log)
        pcscd_env.restart_pcscd(reinsert=False)
        log.wait_for(Kind.SERVICE_RESTORED)
        # the same system object: new context on the next call, no new process
        states = {s.reader.name: s for s in system.list_readers()}
        assert set(pcscd_env.reader_names) <= set(states)
        pcscd_env.insert(0, card)
        with system.connect(name) as connection:
            assert connection.transmit(bytes.fromhex("00B00000")) == b"\x90\x00"
        log.wait_for(Kind.CARD_INSERTED, name)
    kinds = log.kinds()
    lost = kinds.index(Kind.SERVICE_LOST)
    restored = kinds.index(Kind.SERVICE_RESTORED)
    assert lost < restored
    assert Kind.CARD_INSERTED in kinds[restored:]


def test_reader_added_and_removed_across_restart(pcscd_env: PcscdHarness) -> None:
    log = EventLog()
    extra = VirtualReader("Gemalto IDBridge CT710", 0x8C81)
    with PcscReaderSystem() as system:
        system.start_watching(log)
        pcscd_env.restart_pcscd(readers=(DEFAULT_READERS[0], extra))
        log.wait_for(Kind.READER_ADDED, extra.slot_name(0))
        readers = {s.reader.name: s.reader for s in system.list_readers()}
        assert pcscd_env.reader_name(1) == extra.slot_name(0)
        assert readers[extra.slot_name(0)].capabilities.display is True
        assert DEFAULT_READERS[1].slot_name(0) not in readers
