"""Daemon parts without a process: events fan-out, reader workers, config, clinic context."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pkcard.clinic import ClinicContext
from pkcard.daemon.config import ConfigError, ReaderBackend, load_config, parse_config
from pkcard.daemon.events import EventHub
from pkcard.daemon.peers import InsecureSocketDir, ensure_private_dir
from pkcard.daemon.workers import CallCancelled, ReaderWorkers
from pkcard.errors import CallTimeout, DaemonBusy, InvalidRequest, ReaderNotFound
from pkcard.readers import ReaderEvent, ReaderEventKind
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER, SimulatedReaderSystem
from pkcard.simcard.profile import load_profile
from pkcard.transport import SmartCardConnection


@pytest.fixture
def readers() -> SimulatedReaderSystem:
    system = SimulatedReaderSystem((PINPAD_READER, TWIN_READER))
    system.insert(PINPAD_READER.name, SimulatedCard.from_profile(load_profile("pk-regular")))
    return system


def _toggle(readers: SimulatedReaderSystem, times: int) -> None:
    card = SimulatedCard.from_profile(load_profile("kzz"))
    for _ in range(times):
        readers.insert(TWIN_READER.name, card)
        readers.remove(TWIN_READER.name)


def test_slow_subscriber_is_dropped_and_others_keep_their_events(
    readers: SimulatedReaderSystem,
) -> None:
    hub = EventHub(readers, queue_size=4, max_subscribers=4)
    hub.start()
    slow = hub.subscribe()
    fast = hub.subscribe()
    received: list[ReaderEvent] = []
    for _ in range(5):  # 10 events: the slow one's queue of 4 overflows, the fast one drains
        _toggle(readers, 1)
        for _ in range(2):
            event = fast.next_event(lambda: True)
            assert event is not None
            received.append(event)
    assert [e.kind for e in received] == [ReaderEventKind.CARD_INSERTED,
                                          ReaderEventKind.CARD_REMOVED] * 5
    assert hub.subscriber_count == 1
    with pytest.raises(DaemonBusy, match="did not read events fast enough"):
        slow.next_event(lambda: True)
    hub.stop()


def test_snapshot_then_live_events_and_subscriber_limit(readers: SimulatedReaderSystem) -> None:
    hub = EventHub(readers, queue_size=8, max_subscribers=1)
    hub.start()
    with hub.subscribe() as subscription:
        assert {s.reader.name for s in subscription.snapshot} == {PINPAD_READER.name,
                                                                  TWIN_READER.name}
        with pytest.raises(DaemonBusy):
            hub.subscribe()
        readers.remove(PINPAD_READER.name)
        event = subscription.next_event(lambda: True)
        assert event == ReaderEvent(ReaderEventKind.CARD_REMOVED, PINPAD_READER.name)
        assert subscription.next_event(lambda: False) is None  # caller gone
    assert hub.subscriber_count == 0
    hub.stop()


def test_worker_skips_jobs_whose_deadline_passed(readers: SimulatedReaderSystem) -> None:
    workers = ReaderWorkers(readers)
    touched: list[str] = []
    with pytest.raises(CallTimeout):
        workers.run(PINPAD_READER.name, lambda c: touched.append("x"), timeout=0.0)
    with pytest.raises(CallCancelled):
        workers.run(PINPAD_READER.name, lambda c: touched.append("x"), is_active=lambda: False)
    assert touched == []
    assert workers.run(PINPAD_READER.name, lambda c: c.atr) == readers.card_in(
        PINPAD_READER.name).atr  # type: ignore[union-attr]
    with pytest.raises(ReaderNotFound):
        workers.run("nope", lambda c: None)
    workers.stop()


def test_operations_on_one_reader_never_interleave(readers: SimulatedReaderSystem) -> None:
    workers = ReaderWorkers(readers)
    inside = threading.Semaphore(1)
    overlaps: list[int] = []

    def operation(connection: SmartCardConnection) -> None:
        if not inside.acquire(blocking=False):
            overlaps.append(1)
            return
        connection.transmit(bytes.fromhex("00A4040C09F0504B434152445042"))
        inside.release()

    threads = [threading.Thread(target=workers.run, args=(PINPAD_READER.name, operation))
               for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    workers.stop()
    assert overlaps == []


def test_config_parsing(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('socket_dir = "/tmp/x"\nreader_system = "simulated"\n'
                    "[access]\nusers = [0]\ngroups = []\n[limits]\nworker_threads = 4\n")
    config = load_config(path)
    assert config.socket_path == Path("/tmp/x/pkcardd.sock")
    assert config.reader_backend is ReaderBackend.SIMULATED
    assert config.access.uids == frozenset({0})
    assert config.limits.worker_threads == 4
    assert config.access.allows(0, 0)
    assert not config.access.allows(12345, 12345)
    for bad in ({"nonsense": 1}, {"reader_system": "usb"}, {"limits": {"grace_seconds": -1}},
                {"tcp": {"address": "127.0.0.1:1"}}, {"access": {"users": ["no-such-user-x"]}}):
        with pytest.raises(ConfigError):
            parse_config(bad)


def test_clinic_context_validation() -> None:
    context = ClinicContext.from_metadata([("x-pkcard-workplace-id", "amb-3"), ("other", "x")])
    assert context == ClinicContext(workplace_id="amb-3")
    assert context.to_metadata() == (("x-pkcard-workplace-id", "amb-3"),)
    for bad in ("", "a" * 129, "line\nbreak", "\x00"):
        with pytest.raises(InvalidRequest):
            ClinicContext(user_id=bad)
    with pytest.raises(InvalidRequest):
        ClinicContext.from_metadata([("x-pkcard-user-id", "a"), ("x-pkcard-user-id", "b")])


def test_private_dir_checks(tmp_path: Path) -> None:
    created = tmp_path / "new"
    ensure_private_dir(created)
    assert created.stat().st_mode & 0o777 == 0o700
    created.chmod(0o770)
    with pytest.raises(InsecureSocketDir, match="too open"):
        ensure_private_dir(created)
    created.chmod(0o750)
    with pytest.raises(InsecureSocketDir, match="too open"):
        ensure_private_dir(created, max_mode=0o700)


def test_workers_of_unplugged_readers_are_retired_at_the_limit(
    readers: SimulatedReaderSystem,
) -> None:
    workers = ReaderWorkers(readers, max_readers=1)
    card = SimulatedCard.from_profile(load_profile("kzz"))
    readers.insert(TWIN_READER.name, card)
    assert workers.run(PINPAD_READER.name, lambda c: len(c.atr)) > 0
    with pytest.raises(DaemonBusy):  # the pad reader is still attached: its worker stays
        workers.run(TWIN_READER.name, lambda c: None)
    readers.remove_reader(PINPAD_READER.name)
    assert workers.run(TWIN_READER.name, lambda c: c.atr) == card.atr
    workers.stop()


def test_stop_leaves_a_worker_stuck_on_a_silent_card_behind(
    readers: SimulatedReaderSystem,
) -> None:
    """A card that never answers must not keep shutdown (or the process) waiting for ever."""
    workers = ReaderWorkers(readers)
    started, release = threading.Event(), threading.Event()

    def silent_card(connection: SmartCardConnection) -> None:
        started.set()
        release.wait(30)  # the card "never" answers

    outcome: list[BaseException] = []

    def call() -> None:
        try:
            workers.run(PINPAD_READER.name, silent_card, timeout=0.2)
        except CallTimeout as exc:  # the caller stops waiting at its deadline
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(10)
    readers.insert(TWIN_READER.name, SimulatedCard.from_profile(load_profile("kzz")))
    assert workers.run(TWIN_READER.name, lambda c: c.atr)  # other readers still served
    stuck = workers.stop(timeout=0.5)
    assert stuck == [PINPAD_READER.name]
    release.set()
    caller.join(10)
    assert not caller.is_alive()
    assert len(outcome) == 1
