"""Reliability test fixtures: hypothesis profiles (HYPOTHESIS_PROFILE=slow for long runs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# The repository root (bench/, fuzz/), the backend tests' PKI and forging helpers
# (tests/backend/tokenrig.py) and the daemon harness (tests/daemon/daemon_harness.py).
_TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_TESTS.parent), str(_TESTS / "backend"), str(_TESTS / "daemon")]
