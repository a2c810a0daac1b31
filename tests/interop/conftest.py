"""Foreign and low-level gRPC clients against a real pkcardd (tests/daemon's harness)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_TESTS / "daemon")]
