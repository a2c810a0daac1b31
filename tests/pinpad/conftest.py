"""Fixtures for the PIN-pad tests: simulated PIN-pad readers holding simulated cards."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings
from padrig import PadRig, make_rig

settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def rig() -> Callable[..., PadRig]:
    """``rig(reader_info, profile="pk-regular")``: one reader with one fresh card."""
    return make_rig
