"""Faults of the card as the host sees them: pulls mid-operation, broken and endless answers.

Only :class:`pkcard.errors.PkcardError` may come out of the card applications,
a PIN is presented at most once per request, and no error text holds a secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard.errors import CardRemoved, PkcardError, ProtocolError
from pkcard.kzz import HealthInsuranceCard
from pkcard.pin import PinRef
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.faults import Fault, FaultPlan, FaultRule, FaultyConnection
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef

PIN_INS = frozenset({0x20, 0x24, 0x2C})
NEW_PIN = "482915"
WRONG_PIN = "13572468"

Operation = Callable[[SimulatedCard, ProfessionalCard], object]


class Rig:
    """A fresh PK behind a fault plan; the holder data is read before any fault is armed."""

    def __init__(self, profile: str = "pk-regular") -> None:
        self.plan = FaultPlan()
        self.card = SimulatedCard.from_profile(load_profile(profile))
        connection = FaultyConnection(InProcessConnection(self.card), self.plan)
        self.app = ProfessionalCard.over(connection)
        self.app.read_card()  # the PIN policy's birth date: read before faults are armed
        self.plan.sent.clear()

    def arm(self, rule: FaultRule) -> None:
        self.plan.rules.append(rule)

    def pin(self) -> str:
        return self.card.profile.secret_value(SecretRef.PIN)

    def secret_bodies(self) -> int:
        """Commands that carried a secret (status reads have no body)."""
        return sum(1 for s in self.plan.sent if s.ins in PIN_INS and s.body_length)


def change_right(rig: Rig) -> object:
    return rig.app.change(PinRef.PIN, Secret(rig.pin()), Secret(NEW_PIN))


def change_wrong(rig: Rig) -> object:
    return rig.app.change(PinRef.PIN, Secret(WRONG_PIN), Secret(NEW_PIN))


def verify_right(rig: Rig) -> object:
    return rig.app.verify(PinRef.PIN, Secret(rig.pin()))


def verify_wrong(rig: Rig) -> object:
    return rig.app.verify(PinRef.PIN, Secret(WRONG_PIN))


def read_pk(rig: Rig) -> object:
    return rig.app.read_card()


def statuses(rig: Rig) -> object:
    return rig.app.pin_statuses()


PIN_OPERATIONS = {"change-right": change_right, "change-wrong": change_wrong,
                  "verify-right": verify_right, "verify-wrong": verify_wrong}
ALL_OPERATIONS = {**PIN_OPERATIONS, "read": read_pk, "statuses": statuses}


def command_count(operation: Callable[[Rig], object]) -> int:
    rig = Rig()
    with contextlib.suppress(PkcardError):
        operation(rig)
    return len(rig.plan.sent)


def _assert_no_secret(exc: BaseException, *values: str) -> None:
    text = f"{exc}{exc!r}{exc.args!r}"
    for value in values:
        assert value not in text


@pytest.mark.parametrize("fault", [Fault.PULL_BEFORE, Fault.PULL_AFTER])
@pytest.mark.parametrize("name", sorted(PIN_OPERATIONS))
def test_card_pulled_at_every_command_of_a_pin_operation(name: str, fault: Fault) -> None:
    operation = PIN_OPERATIONS[name]
    steps = command_count(operation)
    assert steps >= 2  # select + status + the secret's command at least
    for step in range(steps):
        rig = Rig()
        tries_before = rig.card.tries_left(SecretRef.PIN)
        rig.arm(FaultRule(fault, skip=step))
        with pytest.raises(CardRemoved) as caught:
            operation(rig)
        _assert_no_secret(caught.value, rig.pin(), NEW_PIN, WRONG_PIN)
        assert rig.secret_bodies() <= 1, "the PIN was presented twice for one request"
        assert rig.card.tries_left(SecretRef.PIN) >= tries_before - 1
        assert rig.app.verified == frozenset()  # the host forgets what it had verified


def test_pulled_after_a_change_the_card_kept_the_new_pin_and_nothing_was_retried() -> None:
    """The outcome of a pulled CHANGE is unknown to the host: it must not resend it."""
    rig = Rig()
    rig.arm(FaultRule(Fault.PULL_AFTER, ins=0x24))
    with pytest.raises(CardRemoved):
        change_right(rig)
    assert rig.secret_bodies() == 1
    fresh = ProfessionalCard.over(InProcessConnection(rig.card))
    fresh.verify(PinRef.PIN, Secret(NEW_PIN))  # the card did change it


BROKEN_ANSWERS = [Fault.TRUNCATED, Fault.EMPTY, Fault.ENDLESS_61, Fault.WRONG_LE_LOOP]


@pytest.mark.parametrize("fault", BROKEN_ANSWERS)
@pytest.mark.parametrize("name", sorted(ALL_OPERATIONS))
def test_broken_answers_are_protocol_errors(name: str, fault: Fault) -> None:
    operation = ALL_OPERATIONS[name]
    for step in range(command_count(operation)):
        rig = Rig()
        rig.arm(FaultRule(fault, skip=step))
        with pytest.raises(ProtocolError) as caught:
            operation(rig)
        _assert_no_secret(caught.value, rig.pin(), NEW_PIN, WRONG_PIN)
        assert rig.secret_bodies() <= 1
        # bounded: the GET RESPONSE chain and the 6Cxx resends stop
        assert len(rig.plan.sent) <= command_count(operation) + 70


@pytest.mark.parametrize("fault", [Fault.OVERLONG, Fault.GARBAGE])
@pytest.mark.parametrize("name", sorted(ALL_OPERATIONS))
def test_overlong_and_garbage_answers_raise_only_pkcard_errors(name: str, fault: Fault) -> None:
    operation = ALL_OPERATIONS[name]
    for step in range(command_count(operation)):
        rig = Rig()
        rig.arm(FaultRule(fault, skip=step))
        try:
            operation(rig)
        except PkcardError as exc:
            _assert_no_secret(exc, rig.pin(), NEW_PIN, WRONG_PIN)
        assert rig.secret_bodies() <= 1


@given(seed=st.integers(0, 2**32 - 1), step=st.integers(0, 12), count=st.integers(0, 3))
def test_garbage_at_any_point_of_a_kzz_read(seed: int, step: int, count: int) -> None:
    plan = FaultPlan([FaultRule(Fault.GARBAGE, skip=step, count=count)], seed=seed)
    card = SimulatedCard.from_profile(load_profile("kzz"))
    app = HealthInsuranceCard.over(FaultyConnection(InProcessConnection(card), plan))
    with contextlib.suppress(PkcardError):
        app.read_card()


@given(seed=st.integers(0, 2**32 - 1), step=st.integers(0, 8), count=st.integers(0, 4))
def test_garbage_during_a_pin_change_spends_at_most_one_try(
    seed: int, step: int, count: int
) -> None:
    rig = Rig()
    rig.plan.seed = seed
    rig.plan.__post_init__()
    tries = rig.card.tries_left(SecretRef.PIN)
    rig.arm(FaultRule(Fault.GARBAGE, skip=step, count=count))
    try:
        change_wrong(rig)
    except PkcardError as exc:
        _assert_no_secret(exc, rig.pin(), NEW_PIN, WRONG_PIN)
    assert rig.secret_bodies() <= 1
    assert rig.card.tries_left(SecretRef.PIN) >= tries - 1
