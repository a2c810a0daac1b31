"""Fixtures for the PIN-pad tests: simulated PIN-pad readers holding simulated cards."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from padrig import PadRig, make_rig


@pytest.fixture
def rig() -> Callable[..., PadRig]:
    """``rig(reader_info, profile="pk-regular")``: one reader with one fresh card."""
    return make_rig
