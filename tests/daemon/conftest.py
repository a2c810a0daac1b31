"""Fixtures that run a real ``pkcardd --simulated`` process on a private socket.

Hypothesis profiles: ``default`` 200 examples; ``slow`` 5000, with
``HYPOTHESIS_PROFILE=slow``. No deadlines (no timing assertions).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import KZZ_READER, PK_READER, RunningDaemon, make_root, start_daemon


@pytest.fixture(scope="module")
def pkcardd() -> Iterator[RunningDaemon]:
    """One simulated daemon for a test module."""
    root = make_root()
    daemon = start_daemon(root)
    yield daemon
    daemon.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh_cards(pkcardd: RunningDaemon) -> RunningDaemon:
    """The module's daemon with a fresh pk-regular and kzz in their readers."""
    pkcardd.insert(PK_READER, "pk-regular")
    pkcardd.insert(KZZ_READER, "kzz")
    return pkcardd


@pytest.fixture
def private_root() -> Iterator[Path]:
    root = make_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)


