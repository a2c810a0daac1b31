"""Shared fixtures for the real pcscd + vpcd path.

There is one pcscd per machine and several test runs at once: the session
fixture takes an exclusive flock on /tmp/pkcard-pcscd.lock (other runs wait),
only then kills any stray pcscd, and runs its own for the whole session.

Use ``pcscd_env`` in tests marked ``@pytest.mark.pcsc``. After each test every
card is pulled and pcscd is back on the default readers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from simcard.pcscd_harness import (
    DEFAULT_READERS,
    HarnessError,
    PcscdHarness,
    PcscdLock,
    missing_components,
)


def _unavailable(reason: str) -> None:
    """Skip loudly on a developer machine; fail in CI, where the path must run."""
    message = f"real pcscd path unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def _pcscd_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscdHarness]:
    missing = missing_components()
    if missing:
        _unavailable("missing " + ", ".join(missing))
    workdir: Path = tmp_path_factory.mktemp("pcscd")
    with PcscdLock() as lock:
        harness = PcscdHarness(workdir, lock)
        try:
            harness.start()
        except HarnessError as exc:
            harness.stop()
            _unavailable(str(exc))
        try:
            yield harness
        finally:
            harness.stop()


@pytest.fixture
def pcscd_env(_pcscd_session: PcscdHarness) -> Iterator[PcscdHarness]:
    """A running pcscd with the default vpcd readers and empty slots.

    ``reader_name(slot)``, ``slots``, ``insert(slot, card)``, ``remove(slot)``,
    ``pull_on_next_apdu(slot)`` and ``restart_pcscd(readers=None)``: see
    :class:`simcard.pcscd_harness.PcscdHarness`. Slots 0, 1, 2 are in the
    readers "Gemalto PC Twin Reader" (CT30), "Gemalto GemPC Pinpad" (CT700)
    and "Virtual PCD" (generic).
    """
    harness = _pcscd_session
    yield harness
    harness.remove_all(wait=True)
    if harness.readers != DEFAULT_READERS or not harness.running:
        harness.restart_pcscd(DEFAULT_READERS, reinsert=False)
