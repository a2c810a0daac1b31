"""Fixtures for the PK/KZZ application tests (helpers live in cardrig.py)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from cardrig import KzzRig, PkRig, make_card
from hypothesis import HealthCheck, settings

from pkcard.kzz import HealthInsuranceCard
from pkcard.pk import ProfessionalCard

# The same profiles as tests/core and tests/pinpad: HYPOTHESIS_PROFILE=slow for long runs.
settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def pk() -> Callable[[str], PkRig]:
    def build(name: str = "pk-regular") -> PkRig:
        card, spy = make_card(name)
        return PkRig(card, spy, ProfessionalCard.over(spy))

    return build


@pytest.fixture
def kzz() -> Callable[[str], KzzRig]:
    def build(name: str = "kzz") -> KzzRig:
        card, spy = make_card(name)
        return KzzRig(card, spy, HealthInsuranceCard.over(spy))

    return build
