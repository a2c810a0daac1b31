"""Stateful test: the backend's regular/backup card lifecycle against a plain model."""

from __future__ import annotations

import hashlib
import tempfile
from enum import IntEnum
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from tokenrig import (
    BACKUP_SERIAL,
    EXAMPLES,
    HOLDER,
    NOW,
    PASSWORD,
    REGULAR_SERIAL,
    FakeClock,
    Pki,
    make_token,
)

from pkcard.backend.core import SessionBackend
from pkcard.backend.registry import REACTIVATION_TRIES, Registry
from pkcard.errors import PinBlocked, RefusalReason, RegistryConflict, TokenRefused, WrongPin
from pkcard.secret import Secret
from pkcard.token import CardRole, Environment
from pkcard.verify import CardStatus

PKI = Pki.create(Environment.TEST)
CLIENT = "ws-ljubljana-01"


class Outcome(IntEnum):
    OK = 1
    ACTIVATED = 2


def expected_refusal(role: CardRole, status: CardStatus,
                     confirmed: bool = True) -> RefusalReason | None:
    if status is CardStatus.REVOKED:
        return RefusalReason.CARD_REVOKED
    if role is CardRole.BACKUP:  # issue 15: a backup not active switches only when confirmed
        if status is not CardStatus.ACTIVE and not confirmed:
            return RefusalReason.BACKUP_SWITCH_NOT_CONFIRMED
        return None
    if status is CardStatus.INACTIVE:
        return RefusalReason.REGULAR_CARD_DEACTIVATED
    return None


class CardLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.registry = Registry(Path(self.dir.name) / "states.sqlite", scrypt_n=2**8)
        self.clock = FakeClock(NOW)
        self.backend = SessionBackend(self.registry, PKI.anchors(), self.clock,
                                      environment=Environment.TEST)
        self.registry.add_holder(HOLDER, "Dr Ana Test", NOW)
        for card in (PKI.regular, PKI.backup):
            self.registry.add_card(
                card.serial, HOLDER, card.role, NOW,
                auth_cert_sha256=hashlib.sha256(card.cert_der).digest(),
                reactivation_password=Secret(PASSWORD) if card.role is CardRole.REGULAR
                else None)
        self.registry.grant(HOLDER, "I002", NOW)
        self.status = {CardRole.REGULAR: CardStatus.ACTIVE, CardRole.BACKUP: CardStatus.STANDBY}
        self.tries = REACTIVATION_TRIES

    def teardown(self) -> None:
        self.registry.close()
        self.dir.cleanup()

    @rule(role=st.sampled_from(CardRole), confirmed=st.booleans())
    def use_card(self, role: CardRole, confirmed: bool) -> None:
        card = PKI.regular if role is CardRole.REGULAR else PKI.backup
        self.clock.advance(1)
        nonce = self.backend.issue_challenge(CLIENT).nonce
        extra = {} if role is CardRole.REGULAR or confirmed else {"backup_switch": None}
        token = make_token(PKI, card, nonce, now=self.clock.now, **extra)
        refusal = expected_refusal(role, self.status[role], confirmed)
        if refusal is not None:
            with pytest.raises(TokenRefused) as info:
                self.backend.redeem(token, CLIENT)
            assert info.value.reason is refusal
            return
        redemption = self.backend.redeem(token, CLIENT)
        # a backup switches every time it is not active (issue 15: as often as needed)
        activates = role is CardRole.BACKUP and self.status[role] is not CardStatus.ACTIVE
        assert redemption.backup_activated is activates
        if activates:
            self.status[CardRole.BACKUP] = CardStatus.ACTIVE
            if self.status[CardRole.REGULAR] is CardStatus.ACTIVE:
                self.status[CardRole.REGULAR] = CardStatus.INACTIVE

    @rule(right=st.booleans())
    def reactivate(self, right: bool) -> None:
        password = Secret(PASSWORD if right else "Wrong-pass-1")
        if self.status[CardRole.REGULAR] is CardStatus.REVOKED:
            with pytest.raises(RegistryConflict):
                self.registry.reactivate(REGULAR_SERIAL, password, NOW)
        elif self.tries == 0:
            with pytest.raises(PinBlocked):
                self.registry.reactivate(REGULAR_SERIAL, password, NOW)
        elif not right:
            self.tries -= 1
            with pytest.raises(PinBlocked if self.tries == 0 else WrongPin) as info:
                self.registry.reactivate(REGULAR_SERIAL, password, NOW)
            assert getattr(info.value, "tries_left", 0) == self.tries
        else:
            assert self.registry.reactivate(REGULAR_SERIAL, password, NOW) == REACTIVATION_TRIES
            self.tries = REACTIVATION_TRIES
            self.status[CardRole.REGULAR] = CardStatus.ACTIVE
            if self.status[CardRole.BACKUP] is CardStatus.ACTIVE:
                self.status[CardRole.BACKUP] = CardStatus.INACTIVE

    @rule(role=st.sampled_from(CardRole))
    def revoke(self, role: CardRole) -> None:
        serial = REGULAR_SERIAL if role is CardRole.REGULAR else BACKUP_SERIAL
        if self.status[role] is CardStatus.REVOKED:
            return
        self.registry.revoke_card(serial, NOW)
        self.status[role] = CardStatus.REVOKED

    @invariant()
    def registry_matches_model(self) -> None:
        assert self.registry.card(REGULAR_SERIAL).status is self.status[CardRole.REGULAR]
        assert self.registry.card(BACKUP_SERIAL).status is self.status[CardRole.BACKUP]

    @invariant()
    def at_most_one_card_active(self) -> None:
        assert list(self.status.values()).count(CardStatus.ACTIVE) <= 1


CardLifecycle.TestCase.settings = settings(
    max_examples=max(EXAMPLES // 10, 20), stateful_step_count=12, deadline=None)
test_card_lifecycle = CardLifecycle.TestCase
