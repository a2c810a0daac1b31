"""Fixtures for the PK/KZZ application tests (helpers live in cardrig.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cardrig import KzzRig, PkRig, make_card

from pkcard.kzz import HealthInsuranceCard
from pkcard.pk import ProfessionalCard

# The same profiles as tests/core and tests/pinpad: HYPOTHESIS_PROFILE=slow for long runs.


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
