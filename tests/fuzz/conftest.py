"""Fuzz test fixtures: hypothesis profiles (HYPOTHESIS_PROFILE=slow), the daemon harness."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The repository root first: its fuzz/ package, not this tests/fuzz folder, is ``fuzz``.
# The hostile-request tests start real daemons with tests/daemon/daemon_harness.py; the
# hostile-certificate tests use the token helpers of tests/backend/tokenrig.py.
_TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_TESTS.parent), str(_TESTS / "daemon"), str(_TESTS / "backend")]


@pytest.fixture(scope="session", autouse=True)
def _stop_fuzz_servers() -> Iterator[None]:
    """The daemon and backend targets start servers in this process; stop them at the end."""
    yield
    from fuzz.targets import shutdown  # noqa: PLC0415 - after sys.path is set up

    shutdown()
