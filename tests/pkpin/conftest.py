"""Fixtures for pkpin's tests: a real pkcardd process, and the test cards' secrets."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from daemon_harness import PK_READER, RunningDaemon, make_root, start_daemon


@pytest.fixture(scope="module")
def pkcardd() -> Iterator[RunningDaemon]:
    """One ``pkcardd --simulated`` process for a test module."""
    root = make_root()
    daemon = start_daemon(root)
    yield daemon
    daemon.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def daemon(pkcardd: RunningDaemon) -> RunningDaemon:
    """The module's daemon with a fresh pk-regular in its PIN-pad reader."""
    pkcardd.insert(PK_READER, "pk-regular")
    return pkcardd
