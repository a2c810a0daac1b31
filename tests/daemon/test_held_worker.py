"""The reader worker's held connection over in-process simulated readers (``--simulated``).

The real pcscd path is tests/reliability/test_held_connection.py; these check
the same rules where pkcardd --simulated uses them, without pcscd.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pkcard.daemon.workers import ReaderWorkers
from pkcard.errors import CardRemoved, CardReset
from pkcard.simcard.card import load_card
from pkcard.simcard.inprocess import TWIN_READER, InProcessConnection, SimulatedReaderSystem
from pkcard.transport import CardContinuity, SmartCardConnection

READER = TWIN_READER.name


@pytest.fixture
def system() -> SimulatedReaderSystem:
    readers = SimulatedReaderSystem()
    readers.insert(READER, load_card("pk-regular"))
    return readers


@pytest.fixture
def heard(system: SimulatedReaderSystem) -> Iterator[tuple[ReaderWorkers, list[object]]]:
    workers = ReaderWorkers(system, idle_release_s=600.0)
    events: list[object] = []
    workers.add_listener(lambda reader, what: events.append((reader, what)))
    yield workers, events
    assert workers.stop(timeout=10) == []


def _same(connection: SmartCardConnection) -> SmartCardConnection:
    return connection


def test_jobs_share_one_connection(heard: tuple[ReaderWorkers, list[object]]) -> None:
    workers, events = heard
    first = workers.run(READER, _same)
    assert all(workers.run(READER, _same) is first for _ in range(3))
    assert events == []


def test_a_reset_between_jobs_is_reported_and_the_job_runs(
    heard: tuple[ReaderWorkers, list[object]]
) -> None:
    workers, events = heard
    connection = workers.run(READER, _same)
    assert isinstance(connection, InProcessConnection)
    connection.reset_by_other_party()
    assert workers.run(READER, _same) is connection  # acknowledged, still held
    assert events == [(READER, CardContinuity.RESET)]


def test_a_reset_inside_a_job_is_reported_and_the_caller_gets_card_reset(
    heard: tuple[ReaderWorkers, list[object]]
) -> None:
    workers, events = heard

    def reset_then_use(connection: SmartCardConnection) -> bytes:
        assert isinstance(connection, InProcessConnection)
        connection.reset_by_other_party()
        return connection.transmit(bytes.fromhex("00A4040C00"))

    held = workers.run(READER, _same)
    with pytest.raises(CardReset):
        workers.run(READER, reset_then_use)
    assert events == [(READER, CardContinuity.RESET)]
    assert workers.run(READER, _same) is held


def test_a_swapped_card_gets_a_new_connection(
    system: SimulatedReaderSystem, heard: tuple[ReaderWorkers, list[object]]
) -> None:
    workers, events = heard
    old = workers.run(READER, _same)
    nurse = load_card("pk-nurse")
    system.insert(READER, nurse)  # the old card is taken out first
    new = workers.run(READER, _same)
    assert new is not old
    assert isinstance(new, InProcessConnection)
    assert new.card is nurse
    assert events == [(READER, CardContinuity.GONE)]


def test_a_pulled_card_is_card_removed_and_the_reader_recovers(
    system: SimulatedReaderSystem, heard: tuple[ReaderWorkers, list[object]]
) -> None:
    workers, events = heard
    workers.run(READER, _same)
    system.remove(READER)
    with pytest.raises(CardRemoved):
        workers.run(READER, _same)
    assert events == [(READER, CardContinuity.GONE)]
    system.insert(READER, load_card("kzz"))
    assert workers.run(READER, lambda c: c.atr) == load_card("kzz").atr
