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

from simcard.profile import load_profile
from simcard.spec import SecretRef

settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def secret_of(profile: str, ref: SecretRef) -> str:
    return load_profile(profile).secret_value(ref)


PIN = secret_of("pk-regular", SecretRef.PIN)
PUK = secret_of("pk-regular", SecretRef.PUK)
SPIN = secret_of("pk-regular", SecretRef.SPIN)
TPIN = secret_of("pk-transport", SecretRef.TPIN)
NEW_PIN = "47158293"  # passes the policy for every test holder
NEW_SPIN = "5817293"


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
