"""Fixtures of the signature tests: a real ``pkcardd --simulated`` process.

Hypothesis profiles: ``default`` 200 examples; ``slow`` 5000, with
``HYPOTHESIS_PROFILE=slow``. No deadlines (no timing assertions).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.daemon.daemon_harness import PK_READER, RunningDaemon, make_root, start_daemon


@pytest.fixture(scope="module")
def signing_daemon() -> Iterator[RunningDaemon]:
    """One simulated daemon for a test module (default config: APDU driver, test PK CAs)."""
    root = make_root()
    daemon = start_daemon(root)
    yield daemon
    daemon.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def doctor(signing_daemon: RunningDaemon) -> RunningDaemon:
    """The module's daemon with a fresh pk-regular in the PIN-pad reader."""
    signing_daemon.insert(PK_READER, "pk-regular")
    return signing_daemon
