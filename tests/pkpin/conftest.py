"""Fixtures for pkpin's tests: a real pkcardd process, and the test cards' secrets."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from daemon_harness import PK_READER, RunningDaemon, make_root, start_daemon

settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))




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
