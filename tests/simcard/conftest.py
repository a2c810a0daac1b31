"""Fixtures for the simulated-card tests: cards over InProcessConnection, raw APDUs."""

from __future__ import annotations

import pytest
from simcard_terminal import MakeTerminal, Terminal

from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.profile import CardProfile, load_profile


@pytest.fixture
def terminal() -> MakeTerminal:
    """``terminal("pk-regular")``: a fresh card of that profile behind a terminal."""

    def make(profile: str | CardProfile) -> Terminal:
        prof = load_profile(profile) if isinstance(profile, str) else profile
        return Terminal(SimulatedCard.from_profile(prof))

    return make
