"""GetPinStatus reads the PK's serial and its PIN statuses in one card transaction
(issue #14, G1), on the real pcscd + vpcd path.

Before, the serial (EF.CardInfo) and the statuses were two transactions: two
more pcscd round trips per call than the raw session the daemon is measured
against, and a gap in which another application could reach the card between
the serial the audit record names and the statuses the caller gets.
"""

from __future__ import annotations

import pytest

from pkcard.daemon import cards
from pkcard.daemon.workers import ReaderWorkers
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.pin import PinRef
from pkcard.pk import ProfessionalCard
from pkcard.simcard.card import load_card
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.transport import CardContinuity, SmartCardConnection

pytestmark = [pytest.mark.pcsc, pytest.mark.timeout(120, method="thread")]


class CountingConnection(SmartCardConnection):
    """A real PC/SC connection that records each transaction and APDU, in order."""

    def __init__(self, inner: SmartCardConnection) -> None:
        self.inner = inner
        self.events: list[str] = []

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def transmit(self, command: bytes) -> bytes:
        self.events.append("apdu")
        return self.inner.transmit(command)

    def check(self) -> CardContinuity:
        return self.inner.check()

    def begin_transaction(self) -> None:
        self.events.append("begin")
        self.inner.begin_transaction()

    def end_transaction(self) -> None:
        self.events.append("end")
        self.inner.end_transaction()

    def close(self) -> None:
        self.inner.close()


class CountingReaders(PcscReaderSystem):
    """pcscd's readers, each connection counted (the daemon's workers connect through it)."""

    def __init__(self) -> None:
        super().__init__()
        self.connections: list[CountingConnection] = []

    def connect(self, reader: str) -> CountingConnection:  # type: ignore[override]
        connection = CountingConnection(super().connect(reader))
        self.connections.append(connection)
        return connection


@pytest.fixture
def pk_reader(pcscd_env: PcscdHarness) -> str:
    pcscd_env.insert(0, load_card("pk-regular"))
    return pcscd_env.reader_name(0)


def test_serial_and_statuses_in_one_transaction(pk_reader: str) -> None:
    readers = CountingReaders()
    workers = ReaderWorkers(readers, idle_release_s=600.0)
    serials: list[str] = []
    job = cards.on_pk(cards.pin_statuses(None), serials.append)
    try:
        for _ in range(2):  # a fresh connection, then the held one
            result = workers.run(pk_reader, lambda c: job(ProfessionalCard.over(c)))
            assert result.serial == serials[-1]
            assert {status.ref for status in result.statuses} >= {PinRef.PIN}
    finally:
        assert workers.stop(timeout=30) == []
        readers.close()
    assert len(readers.connections) == 1  # held between the two calls
    events = readers.connections[0].events
    assert events.count("begin") == 2  # one per call
    assert events.count("end") == 2
    first_call = events[: events.index("end") + 1]
    assert first_call[0] == "begin"
    assert first_call.count("apdu") >= 4  # selects, EF.CardInfo and the statuses, all inside
    assert "begin" not in first_call[1:]  # serial and statuses: no second transaction
