"""The PK and KZZ applications over the real path: pyscard -> pcscd -> vpcd -> SimulatedCard."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from pinmodel import PinLifecycle

from pkcard.certs import SignatureScheme, verify_card_signature
from pkcard.errors import (
    CardDead,
    LastTryNotConfirmed,
    PinBlocked,
    PinDisabled,
    PinRule,
    SecurityStatusNotSatisfied,
    TransportPinActive,
    WeakPin,
    WrongPin,
)
from pkcard.kzz import HealthInsuranceCard
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.pin import PinRef, PinState
from pkcard.pk import ProfessionalCard
from pkcard.pk_driver import Profession
from pkcard.secret import Secret
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.transport import SmartCardConnection

pytestmark = pytest.mark.pcsc

SLOT = 1  # the CT700-like PIN-pad reader
DIGEST = hashlib.sha256(b"pkcard over pcscd").digest()
WRONG_PIN = "47195283"
NEW_PIN = "60718293"


@pytest.fixture
def system() -> Iterator[PcscReaderSystem]:
    with PcscReaderSystem() as readers:
        yield readers


def insert(
    env: PcscdHarness, system: PcscReaderSystem, profile: str
) -> tuple[SimulatedCard, SmartCardConnection]:
    card = SimulatedCard.from_profile(load_profile(profile))
    env.insert(SLOT, card)
    return card, system.connect(env.reader_name(SLOT))


def secret(card: SimulatedCard, ref: SecretRef) -> Secret:
    return Secret(card.profile.secret_value(ref))


def test_read_pk_and_authenticate(pcscd_env: PcscdHarness, system: PcscReaderSystem) -> None:
    card, conn = insert(pcscd_env, system, "pk-regular")
    with conn:
        app = ProfessionalCard.over(conn)
        data = app.read_card()
        assert data.holder_name == "Ana Testna"
        assert data.profession is Profession.DOCTOR
        assert data.kpep_certificate is not None
        with pytest.raises(SecurityStatusNotSatisfied):
            app.authenticate(DIGEST)
        app.verify(PinRef.PIN, secret(card, SecretRef.PIN))
        cert = data.auth_certificate
        assert verify_card_signature(cert, DIGEST, app.authenticate(DIGEST), cert.auth_scheme)
        signature = app.sign(DIGEST, secret(card, SecretRef.SPIN))
        assert verify_card_signature(
            data.kpep_certificate, DIGEST, signature, SignatureScheme.RSA_PKCS1
        )


def test_read_kzz_and_authenticate(pcscd_env: PcscdHarness, system: PcscReaderSystem) -> None:
    _card, conn = insert(pcscd_env, system, "kzz")
    with conn:
        app = HealthInsuranceCard.over(conn)
        data = app.read_card()
        assert str(data.zzzs_number) == "900000011"
        signature = app.authenticate(DIGEST)
        assert verify_card_signature(
            data.certificate, DIGEST, signature, data.certificate.auth_scheme
        )


def test_wrong_pin_to_blocked_unblock_and_puk_exhaustion(
    pcscd_env: PcscdHarness, system: PcscReaderSystem
) -> None:
    card, conn = insert(pcscd_env, system, "pk-regular")
    with conn:
        app = ProfessionalCard.over(conn)
        for left in (2, 1):
            with pytest.raises(WrongPin) as info:
                app.verify(PinRef.PIN, Secret(WRONG_PIN))
            assert info.value.tries_left == left
        with pytest.raises(LastTryNotConfirmed):
            app.verify(PinRef.PIN, Secret(WRONG_PIN))
        assert card.tries_left(SecretRef.PIN) == 1
        with pytest.raises(PinBlocked):
            app.verify(PinRef.PIN, Secret(WRONG_PIN), confirm_last_try=True)
        assert app.pin_status(PinRef.PIN).state is PinState.BLOCKED
        status = app.unblock(secret(card, SecretRef.PUK), Secret(NEW_PIN))
        assert (status.state, status.tries_left) == (PinState.VERIFIABLE, 3)
        assert app.verify(PinRef.PIN, Secret(NEW_PIN)).state is PinState.VERIFIED
        for left in (4, 3, 2, 1):
            with pytest.raises(WrongPin) as info:
                app.unblock(Secret("40719382"), Secret(NEW_PIN))
            assert info.value.tries_left == left
        with pytest.raises(LastTryNotConfirmed):
            app.unblock(Secret("40719382"), Secret(NEW_PIN))
        with pytest.raises(CardDead):
            app.unblock(Secret("40719382"), Secret(NEW_PIN), confirm_last_try=True)
        states = {s.ref: s.state for s in app.pin_statuses()}
        assert states[PinRef.PIN] is PinState.DEAD
        assert states[PinRef.PUK] is PinState.DEAD
        with pytest.raises(CardDead):
            app.verify(PinRef.PIN, Secret(NEW_PIN), confirm_last_try=True)


def test_signature_activation(pcscd_env: PcscdHarness, system: PcscReaderSystem) -> None:
    card, conn = insert(pcscd_env, system, "pk-transport")
    with conn:
        app = ProfessionalCard.over(conn)
        assert app.pin_status(PinRef.SPIN).state is PinState.TRANSPORT
        with pytest.raises(TransportPinActive):
            app.sign(DIGEST, Secret("503817"))
        with pytest.raises(WrongPin) as info:
            app.activate_signature(Secret("470193"), Secret("503817"))
        assert info.value.tries_left == 2
        status = app.activate_signature(secret(card, SecretRef.TPIN), Secret("503817"))
        assert status.state is PinState.VERIFIABLE
        assert app.pin_status(PinRef.TPIN).state is PinState.DISABLED
        with pytest.raises(PinDisabled):
            app.activate_signature(secret(card, SecretRef.TPIN), Secret("71829304"))
        kpep = app.read_card().kpep_certificate
        assert kpep is not None
        signature = app.sign(DIGEST, Secret("503817"))
        assert verify_card_signature(kpep, DIGEST, signature, SignatureScheme.RSA_PKCS1)


@pytest.mark.parametrize(
    ("new", "rule"),
    [
        ("3456789", PinRule.SEQUENCE),
        ("333333", PinRule.REPEATED),
        ("31122000", PinRule.DATE),
        ("120381", PinRule.BIRTH_DATE),
        ("58392671", PinRule.SAME_AS_OLD),
        ("12", PinRule.LENGTH),
        ("12ab", PinRule.DIGITS_ONLY),
    ],
)
def test_weak_pins_refused_with_rule(
    pcscd_env: PcscdHarness, system: PcscReaderSystem, new: str, rule: PinRule
) -> None:
    card, conn = insert(pcscd_env, system, "pk-regular")
    with conn:
        app = ProfessionalCard.over(conn)
        with pytest.raises(WeakPin) as info:
            app.change(PinRef.PIN, secret(card, SecretRef.PIN), Secret(new))
        assert info.value.rule is rule
        assert rule.name in str(info.value)
        assert new not in str(info.value)
        assert card.tries_left(SecretRef.PIN) == 3


def test_pin_lifecycle_machine_over_pcscd(
    pcscd_env: PcscdHarness, system: PcscReaderSystem
) -> None:
    reader = pcscd_env.reader_name(SLOT)

    class PcscPinLifecycle(PinLifecycle):
        def open_connection(self, card: SimulatedCard) -> SmartCardConnection:
            if not pcscd_env.card_present(SLOT):
                pcscd_env.insert(SLOT, card)
            return system.connect(reader)

        def reinsert(self, card: SimulatedCard) -> None:
            pcscd_env.remove(SLOT)
            card.power_off()

        def teardown(self) -> None:
            super().teardown()
            pcscd_env.remove(SLOT)

    run_state_machine_as_test(
        PcscPinLifecycle,
        settings=settings(
            max_examples=4,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
