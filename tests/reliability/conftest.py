"""Reliability test fixtures: hypothesis profiles (HYPOTHESIS_PROFILE=slow for long runs)."""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root (bench/, fuzz/), the backend tests' PKI and forging helpers
# (tests/backend/tokenrig.py), the daemon harness (tests/daemon/daemon_harness.py) and the
# session rig's backend (tests/sessions/sessionrig.py).
_TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_TESTS.parent), str(_TESTS / "backend"), str(_TESTS / "daemon"),
                str(_TESTS / "sessions")]
