"""The daemon's own per-call limit (limits.call_timeout_s) on the reader workers."""

from __future__ import annotations

import threading

import pytest

from pkcard.daemon.workers import ReaderWorkers
from pkcard.errors import CallTimeout
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import PINPAD_READER, SimulatedReaderSystem
from pkcard.simcard.profile import load_profile
from pkcard.transport import SmartCardConnection

# What grpc's ServicerContext.time_remaining() gives for a call without a deadline:
# gpr_inf_future (2**63 - 1 seconds) minus now, far beyond what a thread wait accepts.
NO_DEADLINE = float(2**63 - 1) - 1.7e9


@pytest.fixture
def readers() -> SimulatedReaderSystem:
    system = SimulatedReaderSystem((PINPAD_READER,))
    system.insert(PINPAD_READER.name, SimulatedCard.from_profile(load_profile("pk-regular")))
    return system


def test_a_call_without_deadline_is_served(readers: SimulatedReaderSystem) -> None:
    workers = ReaderWorkers(readers)
    try:
        atr = workers.run(PINPAD_READER.name, lambda c: c.atr, timeout=NO_DEADLINE)
        assert b"PKCARDPK" in atr
        assert b"PKCARDPK" in workers.run(PINPAD_READER.name, lambda c: c.atr, timeout=None)
    finally:
        workers.stop()


def _stuck(release: threading.Event) -> tuple[threading.Event, object]:
    started = threading.Event()

    def operation(connection: SmartCardConnection) -> bytes:
        started.set()
        release.wait(30)
        return connection.atr

    return started, operation


@pytest.mark.parametrize("timeout", [None, NO_DEADLINE])
def test_the_daemon_limit_bounds_a_call_without_deadline(
    readers: SimulatedReaderSystem, timeout: float | None
) -> None:
    workers = ReaderWorkers(readers, call_timeout=0.2)
    release = threading.Event()
    _, operation = _stuck(release)
    try:
        with pytest.raises(CallTimeout):
            workers.run(PINPAD_READER.name, operation, timeout=timeout)  # type: ignore[arg-type]
    finally:
        release.set()
        workers.stop()


def test_a_client_deadline_shorter_than_the_limit_is_honoured(
    readers: SimulatedReaderSystem,
) -> None:
    workers = ReaderWorkers(readers, call_timeout=3600.0)
    release = threading.Event()
    _, operation = _stuck(release)
    try:
        with pytest.raises(CallTimeout):
            workers.run(PINPAD_READER.name, operation, timeout=0.2)  # type: ignore[arg-type]
    finally:
        release.set()
        workers.stop()
