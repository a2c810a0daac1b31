"""A plain-Python model of the PK PIN rules and a state machine that checks card against model.

The model is written from docs/card-profile.md and the application's
documented behaviour (last-try guard, policy before any APDU), independently
of pkcard.pk. :class:`PinLifecycle` drives a :class:`ProfessionalCard` over a
:class:`SimulatedCard` with random operations and asserts, after every step,
that the outcome (return value or typed error) and the card's counters agree
with the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pkcard.errors import (
    CardDead,
    LastTryNotConfirmed,
    PinBlocked,
    PinDisabled,
    PinError,
    PinRule,
    SecurityStatusNotSatisfied,
    TransportPinActive,
    WeakPin,
    WrongPin,
)
from pkcard.pin import PinRef, PinState, PinStatus
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef, SecretState
from pkcard.transport import SmartCardConnection

PIN_POOL = ("58392671", "60718293", "71829304", "4719", "503817")
SPIN_POOL = ("69472538", "60718293", "503817")
PUK = "73920584"
WRONG_PUK = "40719382"
TPIN = "836194"
WRONG_TPIN = "470193"
DIGEST = hashlib.sha256(b"state machine").digest()
PROFILES = ("pk-regular", "pk-transport", "pk-blocked")

Outcome = tuple[type[BaseException] | None, int | None]  # error type and tries_left if WrongPin


@dataclass
class PinModel:
    pin: str
    pin_tries: int
    pin_verified: bool
    puk_tries: int
    spin: str | None
    spin_tries: int
    spin_active: bool
    tpin_tries: int
    tpin_disabled: bool

    @classmethod
    def of(cls, card: SimulatedCard) -> PinModel:
        profile = card.profile
        spin_active = card.secret_state(SecretRef.SPIN) == SecretState.ACTIVE
        return cls(
            pin=profile.secret_value(SecretRef.PIN),
            pin_tries=card.tries_left(SecretRef.PIN),
            pin_verified=False,
            puk_tries=card.tries_left(SecretRef.PUK),
            spin=profile.secret_value(SecretRef.SPIN) if spin_active else None,
            spin_tries=card.tries_left(SecretRef.SPIN),
            spin_active=spin_active,
            tpin_tries=card.tries_left(SecretRef.TPIN),
            tpin_disabled=card.secret_state(SecretRef.TPIN) == SecretState.DISABLED,
        )

    @property
    def dead(self) -> bool:
        return self.puk_tries == 0

    # Each method applies one operation to the model and returns the expected outcome.

    def _present_pin(self, right: bool, confirm: bool) -> Outcome | None:
        """The common checks and counting of a PIN presentation; None on success."""
        if self.dead:
            return CardDead, None
        if self.pin_tries == 0:
            return PinBlocked, None
        if self.pin_tries == 1 and not confirm and not self.pin_verified:
            return LastTryNotConfirmed, None
        if right:
            self.pin_tries, self.pin_verified = 3, True
            return None
        self.pin_tries -= 1
        self.pin_verified = False
        return (PinBlocked, None) if self.pin_tries == 0 else (WrongPin, self.pin_tries)

    def verify(self, right: bool, confirm: bool) -> Outcome:
        return self._present_pin(right, confirm) or (None, None)

    def change(self, right: bool, old: str, new: str, confirm: bool) -> Outcome:
        if new == old:
            return WeakPin, None
        refused = self._present_pin(right, confirm)
        if refused is not None:
            return refused
        self.pin = new
        return None, None

    def unblock(self, right: bool, new: str, confirm: bool) -> Outcome:
        if self.dead:
            return CardDead, None
        if self.puk_tries == 1 and not confirm:
            return LastTryNotConfirmed, None
        if right:
            self.pin, self.pin_tries, self.pin_verified, self.puk_tries = new, 3, False, 5
            return None, None
        self.puk_tries -= 1
        if self.puk_tries == 0:
            self.pin_tries, self.pin_verified = 0, False
            return CardDead, None
        return WrongPin, self.puk_tries

    def activate(self, right: bool, new: str, confirm: bool) -> Outcome:
        presented = TPIN if right else WRONG_TPIN
        if new == presented:
            return WeakPin, None
        if self.spin_active or self.tpin_disabled:
            return PinDisabled, None
        if self.tpin_tries == 0:
            return PinBlocked, None
        if self.tpin_tries == 1 and not confirm:
            return LastTryNotConfirmed, None
        if right:
            self.spin, self.spin_active, self.spin_tries = new, True, 3
            self.tpin_disabled, self.tpin_tries = True, 3  # the card resets the counter on success
            return None, None
        self.tpin_tries -= 1
        return (PinBlocked, None) if self.tpin_tries == 0 else (WrongPin, self.tpin_tries)

    def sign(self, right: bool, confirm: bool) -> Outcome:
        if not self.spin_active:
            return TransportPinActive, None
        if self.spin_tries == 0:
            return PinBlocked, None
        if self.spin_tries == 1 and not confirm:
            return LastTryNotConfirmed, None
        if right:
            self.spin_tries = 3
            return None, None
        self.spin_tries -= 1
        return (PinBlocked, None) if self.spin_tries == 0 else (WrongPin, self.spin_tries)

    def authenticate(self) -> Outcome:
        return (None, None) if self.pin_verified else (SecurityStatusNotSatisfied, None)

    def statuses(self) -> dict[PinRef, PinStatus]:
        def counted(ref: PinRef, tries: int, maximum: int, verified: bool = False) -> PinStatus:
            if verified:
                return PinStatus(ref, PinState.VERIFIED, maximum, maximum)
            if tries == 0:
                dead = self.dead and ref in (PinRef.PIN, PinRef.PUK)
                state = PinState.DEAD if dead else PinState.BLOCKED
                return PinStatus(ref, state, 0, maximum)
            return PinStatus(ref, PinState.VERIFIABLE, tries, maximum)

        spin = (
            counted(PinRef.SPIN, self.spin_tries, 3)
            if self.spin_active
            else PinStatus(PinRef.SPIN, PinState.TRANSPORT, 3, 3)
        )
        tpin = (
            PinStatus(PinRef.TPIN, PinState.DISABLED, 0, 3)
            if self.tpin_disabled
            else PinStatus(
                PinRef.TPIN,
                PinState.BLOCKED if self.tpin_tries == 0 else PinState.VERIFIABLE,
                self.tpin_tries,
                3,
            )
        )
        return {
            PinRef.PIN: counted(PinRef.PIN, self.pin_tries, 3, self.pin_verified),
            PinRef.PUK: counted(PinRef.PUK, self.puk_tries, 5),
            PinRef.SPIN: spin,
            PinRef.TPIN: tpin,
        }


def outcome_of(call: Callable[[], object]) -> Outcome:
    try:
        call()
    except WrongPin as exc:
        return WrongPin, exc.tries_left
    except (PinError, SecurityStatusNotSatisfied) as exc:
        return type(exc), None
    return None, None


class PinLifecycle(RuleBasedStateMachine):
    """Card and model agree at every step. Subclasses say how to reach the card."""

    def __init__(self) -> None:
        super().__init__()
        self.card: SimulatedCard | None = None
        self.conn: SmartCardConnection | None = None
        self.app: ProfessionalCard | None = None
        self.model: PinModel | None = None
        self.seen_dead = False

    # --- plumbing --------------------------------------------------------------

    @property
    def state(self) -> tuple[SimulatedCard, ProfessionalCard, PinModel]:
        assert self.card is not None
        assert self.app is not None
        assert self.model is not None
        return self.card, self.app, self.model

    def open_connection(self, card: SimulatedCard) -> SmartCardConnection:
        """A connection to ``card``, freshly inserted."""
        raise NotImplementedError

    def reinsert(self, card: SimulatedCard) -> None:
        """Take ``card`` out and put it back (it loses every verified state)."""
        card.power_off()

    def _open(self) -> None:
        assert self.card is not None
        if self.conn is not None:
            self.conn.close()
        self.conn = self.open_connection(self.card)
        self.app = ProfessionalCard.over(self.conn)

    def teardown(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def _check(self, expected: Outcome, call: Callable[[], object]) -> None:
        actual = outcome_of(call)
        assert actual == expected, f"card says {actual}, model says {expected}"

    def _wrong_pin(self) -> str:
        _card, _app, model = self.state
        return next(p for p in PIN_POOL if p != model.pin)

    # --- rules -------------------------------------------------------------------

    @initialize(profile=st.sampled_from(PROFILES))
    def insert(self, profile: str) -> None:
        self.card = SimulatedCard.from_profile(load_profile(profile))
        self.model = PinModel.of(self.card)
        self._open()

    @rule(right=st.booleans(), confirm=st.booleans())
    def verify(self, right: bool, confirm: bool) -> None:
        _card, app, model = self.state
        value = model.pin if right else self._wrong_pin()
        expected = model.verify(right, confirm)
        self._check(
            expected, lambda: app.verify(PinRef.PIN, Secret(value), confirm_last_try=confirm)
        )

    @rule(right=st.booleans(), new=st.sampled_from(PIN_POOL), confirm=st.booleans())
    def change(self, right: bool, new: str, confirm: bool) -> None:
        _card, app, model = self.state
        old = model.pin if right else self._wrong_pin()
        expected = model.change(right, old, new, confirm)
        self._check(
            expected,
            lambda: app.change(PinRef.PIN, Secret(old), Secret(new), confirm_last_try=confirm),
        )

    @rule(right=st.booleans(), new=st.sampled_from(PIN_POOL), confirm=st.booleans())
    def unblock(self, right: bool, new: str, confirm: bool) -> None:
        _card, app, model = self.state
        puk = PUK if right else WRONG_PUK
        expected = model.unblock(right, new, confirm)
        self._check(
            expected, lambda: app.unblock(Secret(puk), Secret(new), confirm_last_try=confirm)
        )

    @rule(right=st.booleans(), new=st.sampled_from(SPIN_POOL), confirm=st.booleans())
    def activate(self, right: bool, new: str, confirm: bool) -> None:
        _card, app, model = self.state
        tpin = TPIN if right else WRONG_TPIN
        expected = model.activate(right, new, confirm)
        self._check(
            expected,
            lambda: app.activate_signature(Secret(tpin), Secret(new), confirm_last_try=confirm),
        )

    @rule(right=st.booleans(), confirm=st.booleans())
    def sign(self, right: bool, confirm: bool) -> None:
        _card, app, model = self.state
        spin = model.spin if right and model.spin is not None else "99887766"
        expected = model.sign(right and model.spin is not None, confirm)
        self._check(expected, lambda: app.sign(DIGEST, Secret(spin), confirm_last_try=confirm))

    @rule()
    def authenticate(self) -> None:
        _card, app, model = self.state
        self._check(model.authenticate(), lambda: app.authenticate(DIGEST))

    @rule()
    def read_statuses(self) -> None:
        card, app, model = self.state
        before = {ref: card.tries_left(ref) for ref in SecretRef}
        statuses = {s.ref: s for s in app.pin_statuses() if s.ref is not PinRef.REACTIVATION}
        assert statuses == model.statuses()
        assert {ref: card.tries_left(ref) for ref in SecretRef} == before

    @rule()
    def remove_and_reinsert(self) -> None:
        card, _app, model = self.state
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.reinsert(card)
        model.pin_verified = False
        self._open()

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def counters_agree(self) -> None:
        if self.card is None or self.model is None:
            return
        card, model = self.card, self.model
        assert card.tries_left(SecretRef.PIN) == model.pin_tries
        assert card.tries_left(SecretRef.PUK) == model.puk_tries
        assert card.tries_left(SecretRef.SPIN) == model.spin_tries
        assert card.tries_left(SecretRef.TPIN) == model.tpin_tries
        assert card.is_verified(SecretRef.PIN) == model.pin_verified
        assert all(card.tries_left(ref) >= 0 for ref in SecretRef)
        assert card.is_dead == model.dead

    @invariant()
    def dead_stays_dead(self) -> None:
        if self.card is None:
            return
        if self.seen_dead:
            assert self.card.is_dead
        self.seen_dead = self.card.is_dead

    @invariant()
    def cache_is_never_ahead_of_the_card(self) -> None:
        if self.card is None or self.app is None:
            return
        if PinRef.PIN in self.app.verified:
            assert self.card.is_verified(SecretRef.PIN)


__all__ = ["PinLifecycle", "PinModel", "PinRule"]
