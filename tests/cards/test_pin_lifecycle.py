"""The PIN lifecycle state machine over InProcessConnection.

Bounded for CI; run ``pytest --hypothesis-profile=slow tests/cards`` for a long run.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from pinmodel import PinLifecycle

from pkcard.transport import SmartCardConnection
from simcard.card import SimulatedCard
from simcard.inprocess import InProcessConnection


class InProcessPinLifecycle(PinLifecycle):
    def open_connection(self, card: SimulatedCard) -> SmartCardConnection:
        return InProcessConnection(card)


def lifecycle_settings(max_examples: int, steps: int) -> settings:
    """Short bounded runs, unless the ``slow`` profile is loaded."""
    if settings.get_current_profile_name() == "slow":
        return settings(settings.get_profile("slow"), suppress_health_check=[HealthCheck.too_slow])
    return settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


InProcessPinLifecycle.TestCase.settings = lifecycle_settings(60, 30)
TestPinLifecycle = InProcessPinLifecycle.TestCase
