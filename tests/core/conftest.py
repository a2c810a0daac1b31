"""Hypothesis profiles for the core codec tests.

``default``: 200 examples, no deadline (no timing assertions in tests).
``slow``: 5000 examples; select with ``HYPOTHESIS_PROFILE=slow``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
