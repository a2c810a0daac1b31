"""Fixtures of the session tests: a real backend and a real pkcardd (simulated readers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sessionrig import Rig, rig

from pkcard.daemon.simulation import DEFAULT_CARDS


@pytest.fixture(scope="module")
def simulated_rig() -> Iterator[Rig]:
    yield from rig(simulated=True)


@pytest.fixture
def sim(simulated_rig: Rig) -> Rig:
    """The module's rig with a fresh pk-regular and kzz in the simulated readers."""
    for reader, profile in DEFAULT_CARDS:
        simulated_rig.daemon.insert(reader, profile)
    return simulated_rig
