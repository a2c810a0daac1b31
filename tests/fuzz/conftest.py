"""Fuzz test fixtures: hypothesis profiles (HYPOTHESIS_PROFILE=slow), the daemon harness."""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root first: its fuzz/ package, not this tests/fuzz folder, is ``fuzz``.
# The hostile-request tests start real daemons with tests/daemon/daemon_harness.py; the
# hostile-certificate tests use the token helpers of tests/backend/tokenrig.py.
_TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_TESTS.parent), str(_TESTS / "daemon"), str(_TESTS / "backend")]
