"""The PIN lifecycle state machine over InProcessConnection.

Bounded for CI (60 runs of 30 steps); ``HYPOTHESIS_PROFILE=slow`` runs 1000 of 60 steps.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from pinmodel import PinLifecycle

from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.transport import SmartCardConnection


class InProcessPinLifecycle(PinLifecycle):
    def open_connection(self, card: SimulatedCard) -> SmartCardConnection:
        return InProcessConnection(card)


def lifecycle_settings(max_examples: int, steps: int) -> settings:
    """Short bounded runs; 16 times the runs and twice the steps under the ``slow`` profile."""
    if settings.get_current_profile_name() == "slow":
        max_examples, steps = max_examples * 16, steps * 2
    return settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


InProcessPinLifecycle.TestCase.settings = lifecycle_settings(60, 30)
TestPinLifecycle = InProcessPinLifecycle.TestCase
