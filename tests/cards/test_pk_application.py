"""ProfessionalCard over simulated PKs (InProcessConnection): every operation and refusal."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date

import pytest
from cardrig import PkRig, make_card

from pkcard.cardinfo import CardRole, Environment
from pkcard.certs import KeyAlgorithm, SignatureScheme, verify_card_signature
from pkcard.errors import (
    ApduError,
    CardDead,
    CardReset,
    FormatError,
    KeyNeedsPin,
    KeyNotFound,
    LastTryNotConfirmed,
    MalformedPin,
    NotSupported,
    PinBlocked,
    PinDisabled,
    PinRule,
    SecurityStatusNotSatisfied,
    TransportPinActive,
    WeakPin,
    WrongCardKind,
    WrongPin,
)
from pkcard.pin import PinRef, PinState, PinStatus
from pkcard.pk import ProfessionalCard
from pkcard.pk_driver import KeySlot, Profession
from pkcard.pk_iso import IsoPkDriver
from pkcard.secret import Secret
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.spec import SecretRef

Build = Callable[..., PkRig]
DIGEST = hashlib.sha256(b"pkcard test document").digest()
WRONG_PIN = "47195283"
NEW_PIN = "60718293"


def S(value: str) -> Secret:
    return Secret(value)


# --- card data ----------------------------------------------------------------


def test_read_regular_card(pk: Build) -> None:
    rig = pk("pk-regular")
    data = rig.app.read_card()
    assert data.holder_name == "Ana Testna"
    assert data.holder_id == "90001"
    assert data.profession is Profession.DOCTOR
    assert data.card_serial == "PK0000100001"
    assert data.valid_from == date(2025, 3, 1)
    assert data.valid_until == date(2030, 2, 28)
    assert data.role is CardRole.REGULAR
    assert data.environment is Environment.TEST
    assert data.issuer == "pkcard TEST PK CA"
    assert data.auth_certificate.key_algorithm is KeyAlgorithm.EC_P256
    assert data.kpep_certificate is not None
    assert data.kpep_certificate.key_algorithm is KeyAlgorithm.RSA
    assert not hasattr(data, "birth_date")
    assert rig.spy.transactions == 1
    assert all(s.in_transaction for s in rig.spy.sent)


def test_read_other_profiles(pk: Build) -> None:
    nurse = pk("pk-nurse").app.read_card()
    assert nurse.profession is Profession.NURSE
    assert nurse.kpep_certificate is None
    backup = pk("pk-backup").app.read_card()
    assert backup.role is CardRole.BACKUP
    assert backup.auth_certificate.key_algorithm is KeyAlgorithm.RSA
    prod = pk("pk-regular-prod").app.read_card()
    assert prod.environment is Environment.PRODUCTION


def test_read_through_forced_get_response_and_exact_le(pk: Build) -> None:
    framed = pk("pk-regular-framing").app.read_card()
    plain = pk("pk-regular").app.read_card()
    assert framed.auth_certificate == plain.auth_certificate
    assert framed.kpep_certificate == plain.kpep_certificate
    assert framed.holder_name == plain.holder_name


def test_expiry_warnings_from_card(pk: Build) -> None:
    data = pk("pk-regular").app.read_card()
    assert data.expiry_warnings(date(2026, 11, 25)) == ()
    soon = data.expiry_warnings(data.valid_until.replace(day=1))
    assert any(w.kind.name == "CARD_REPLACEMENT_DUE" for w in soon)


def test_card_info_alone_in_one_transaction(pk: Build) -> None:
    rig = pk("pk-regular")
    info = rig.app.card_info()
    assert info.serial == "PK0000100001"
    assert info.role is CardRole.REGULAR
    assert info.environment is Environment.TEST
    assert info.valid_until == date(2030, 2, 28)
    assert rig.spy.transactions == 1
    assert all(s.in_transaction for s in rig.spy.sent)
    with pytest.raises(WrongCardKind):
        ProfessionalCard.over(make_card("kzz")[1]).card_info()


def test_certificate_by_slot(pk: Build) -> None:
    rig = pk("pk-regular")
    data = rig.app.read_card()
    assert data.kpep_certificate is not None
    assert rig.app.certificate(KeySlot.SIGNATURE) == data.kpep_certificate.der
    assert rig.app.certificate(KeySlot.AUTHENTICATION) == data.auth_certificate.der
    assert pk("pk-nurse").app.certificate(KeySlot.SIGNATURE) is None


def test_pk_app_refuses_a_kzz() -> None:
    _card, spy = make_card("kzz")
    with pytest.raises(WrongCardKind):
        ProfessionalCard.over(spy).read_card()


# --- status ---------------------------------------------------------------------


def test_statuses_regular(pk: Build) -> None:
    rig = pk("pk-regular")
    statuses = {s.ref: s for s in rig.app.pin_statuses()}
    assert statuses[PinRef.PIN] == PinStatus(PinRef.PIN, PinState.VERIFIABLE, 3, 3)
    assert statuses[PinRef.PUK] == PinStatus(PinRef.PUK, PinState.VERIFIABLE, 5, 5)
    assert statuses[PinRef.SPIN].state is PinState.VERIFIABLE
    assert statuses[PinRef.TPIN].state is PinState.DISABLED
    assert statuses[PinRef.REACTIVATION].tries_left == 5
    assert rig.spy.secret_commands() == []


def test_statuses_transport_blocked_nurse(pk: Build) -> None:
    transport = {s.ref: s.state for s in pk("pk-transport").app.pin_statuses()}
    assert transport[PinRef.SPIN] is PinState.TRANSPORT
    assert transport[PinRef.TPIN] is PinState.VERIFIABLE
    blocked = pk("pk-blocked").app.pin_status(PinRef.PIN)
    assert blocked == PinStatus(PinRef.PIN, PinState.BLOCKED, 0, 3)
    nurse = pk("pk-nurse").app
    assert {s.ref for s in nurse.pin_statuses()} == {PinRef.PIN, PinRef.PUK, PinRef.REACTIVATION}
    with pytest.raises(NotSupported):
        nurse.pin_status(PinRef.SPIN)


def test_status_reads_never_spend_a_try(pk: Build) -> None:
    rig = pk("pk-regular")
    with pytest.raises(WrongPin):
        rig.app.verify(PinRef.PIN, S(WRONG_PIN))
    for _ in range(10):
        assert rig.app.pin_status(PinRef.PIN).tries_left == 2
        rig.app.pin_statuses()
    assert rig.card.tries_left(SecretRef.PIN) == 2


# --- verify -----------------------------------------------------------------------


def test_verify_right(pk: Build) -> None:
    rig = pk("pk-regular")
    status = rig.app.verify(PinRef.PIN, S(rig.secret(SecretRef.PIN)))
    assert status.state is PinState.VERIFIED
    assert rig.card.is_verified(SecretRef.PIN)
    assert PinRef.PIN in rig.app.verified
    assert rig.app.pin_status(PinRef.PIN).state is PinState.VERIFIED
    assert rig.spy.transactions == 2
    assert all(s.in_transaction for s in rig.spy.sent)


def test_wrong_pin_down_to_blocked_with_last_try_guard(pk: Build) -> None:
    rig = pk("pk-regular")
    with pytest.raises(WrongPin) as first:
        rig.app.verify(PinRef.PIN, S(WRONG_PIN))
    assert first.value.tries_left == 2
    with pytest.raises(WrongPin) as second:
        rig.app.verify(PinRef.PIN, S(WRONG_PIN))
    assert second.value.tries_left == 1
    sent_before = len(rig.spy.secret_commands())
    with pytest.raises(LastTryNotConfirmed) as guard:
        rig.app.verify(PinRef.PIN, S(rig.secret(SecretRef.PIN)))
    assert guard.value.tries_left == 1
    assert len(rig.spy.secret_commands()) == sent_before
    assert rig.card.tries_left(SecretRef.PIN) == 1
    with pytest.raises(PinBlocked):
        rig.app.verify(PinRef.PIN, S(WRONG_PIN), confirm_last_try=True)
    assert rig.app.pin_status(PinRef.PIN).state is PinState.BLOCKED
    sent_before = len(rig.spy.secret_commands())
    with pytest.raises(PinBlocked):
        rig.app.verify(PinRef.PIN, S(rig.secret(SecretRef.PIN)), confirm_last_try=True)
    assert len(rig.spy.secret_commands()) == sent_before


def test_last_try_confirmed_and_right_resets_counter(pk: Build) -> None:
    rig = pk("pk-regular")
    for _ in range(2):
        with pytest.raises(WrongPin):
            rig.app.verify(PinRef.PIN, S(WRONG_PIN))
    status = rig.app.verify(PinRef.PIN, S(rig.secret(SecretRef.PIN)), confirm_last_try=True)
    assert status.state is PinState.VERIFIED
    assert rig.card.tries_left(SecretRef.PIN) == 3


@pytest.mark.parametrize("value", ["", "123", "12a45", "123456789", " 5839267"])
def test_malformed_pin_sends_nothing(pk: Build, value: str) -> None:
    rig = pk("pk-regular")
    with pytest.raises(MalformedPin):
        rig.app.verify(PinRef.PIN, S(value))
    assert rig.spy.sent == []
    assert rig.card.tries_left(SecretRef.PIN) == 3
    assert PinRef.PIN not in rig.app.verified


def test_verify_puk_or_tpin_directly_is_not_supported(pk: Build) -> None:
    rig = pk("pk-regular")
    for ref in (PinRef.PUK, PinRef.TPIN):
        with pytest.raises(NotSupported):
            rig.app.verify(ref, S("73920584"))
    assert rig.spy.sent == []


def test_reactivation_password(pk: Build) -> None:
    rig = pk("pk-regular")
    with pytest.raises(WrongPin) as wrong:
        rig.app.present_reactivation_password(S("Wrong!pass-99"))
    assert wrong.value.tries_left == 4
    status = rig.app.present_reactivation_password(S(rig.secret(SecretRef.REACTIVATION)))
    assert status.state is PinState.VERIFIED
    with pytest.raises(MalformedPin):
        rig.app.present_reactivation_password(S("short"))


# --- change ----------------------------------------------------------------------


def test_change_pin(pk: Build) -> None:
    rig = pk("pk-regular")
    old = rig.secret(SecretRef.PIN)
    status = rig.app.change(PinRef.PIN, S(old), S(NEW_PIN))
    assert status.state is PinState.VERIFIED
    with pytest.raises(WrongPin):
        rig.app.verify(PinRef.PIN, S(old))
    assert rig.app.verify(PinRef.PIN, S(NEW_PIN)).state is PinState.VERIFIED


def test_change_with_wrong_old_counts_a_try(pk: Build) -> None:
    rig = pk("pk-regular")
    with pytest.raises(WrongPin) as info:
        rig.app.change(PinRef.PIN, S(WRONG_PIN), S(NEW_PIN))
    assert info.value.tries_left == 2


@pytest.mark.parametrize(
    ("new", "rule"),
    [
        ("1234", PinRule.SEQUENCE),
        ("9876", PinRule.SEQUENCE),
        ("1111", PinRule.REPEATED),
        ("311299", PinRule.DATE),
        ("120381", PinRule.BIRTH_DATE),  # the holder was born on 12 Mar 1981
        ("1203", PinRule.BIRTH_DATE),
        ("58392671", PinRule.SAME_AS_OLD),
        ("12a4", PinRule.DIGITS_ONLY),
        ("123", PinRule.LENGTH),
    ],
)
def test_weak_new_pin_refused_before_any_secret_apdu(pk: Build, new: str, rule: PinRule) -> None:
    rig = pk("pk-regular")
    with pytest.raises(WeakPin) as info:
        rig.app.change(PinRef.PIN, S(rig.secret(SecretRef.PIN)), S(new))
    assert info.value.rule is rule
    assert rig.spy.secret_commands() == []
    assert new not in str(info.value)


def test_change_spin_in_transport_state(pk: Build) -> None:
    rig = pk("pk-transport")
    with pytest.raises(TransportPinActive):
        rig.app.change(PinRef.SPIN, S("836194"), S("60718293"))
    assert rig.spy.secret_commands() == []


# --- unblock / PUK -------------------------------------------------------------------


def test_unblock(pk: Build) -> None:
    rig = pk("pk-blocked")
    status = rig.app.unblock(S(rig.secret(SecretRef.PUK)), S(NEW_PIN))
    assert status == PinStatus(PinRef.PIN, PinState.VERIFIABLE, 3, 3)
    assert rig.app.verify(PinRef.PIN, S(NEW_PIN)).state is PinState.VERIFIED


def test_unblock_weak_new_pin(pk: Build) -> None:
    rig = pk("pk-blocked")
    with pytest.raises(WeakPin) as info:
        rig.app.unblock(S(rig.secret(SecretRef.PUK)), S("3456789"))
    assert info.value.rule is PinRule.SEQUENCE
    assert rig.spy.secret_commands() == []


def test_puk_exhausted_is_dead(pk: Build) -> None:
    rig = pk("pk-blocked")
    wrong_puk = "40719382"
    for left in (4, 3, 2, 1):
        with pytest.raises(WrongPin) as info:
            rig.app.unblock(S(wrong_puk), S(NEW_PIN))
        assert info.value.tries_left == left
    with pytest.raises(LastTryNotConfirmed):
        rig.app.unblock(S(rig.secret(SecretRef.PUK)), S(NEW_PIN))
    with pytest.raises(CardDead):
        rig.app.unblock(S(wrong_puk), S(NEW_PIN), confirm_last_try=True)
    assert rig.card.is_dead
    statuses = {s.ref: s.state for s in rig.app.pin_statuses()}
    assert statuses[PinRef.PIN] is PinState.DEAD
    assert statuses[PinRef.PUK] is PinState.DEAD
    sent = len(rig.spy.secret_commands())
    with pytest.raises(CardDead):
        rig.app.verify(PinRef.PIN, S(rig.secret(SecretRef.PIN)), confirm_last_try=True)
    with pytest.raises(CardDead):
        rig.app.unblock(S(rig.secret(SecretRef.PUK)), S(NEW_PIN), confirm_last_try=True)
    assert len(rig.spy.secret_commands()) == sent


# --- signature activation and signing ---------------------------------------------------


def test_activate_signature_then_sign(pk: Build) -> None:
    rig = pk("pk-transport")
    with pytest.raises(WrongPin) as wrong:
        rig.app.activate_signature(S("470193"), S("60718293"))
    assert wrong.value.tries_left == 2
    status = rig.app.activate_signature(S(rig.secret(SecretRef.TPIN)), S("60718293"))
    assert status.state is PinState.VERIFIABLE
    assert rig.app.pin_status(PinRef.TPIN).state is PinState.DISABLED
    with pytest.raises(PinDisabled):
        rig.app.activate_signature(S(rig.secret(SecretRef.TPIN)), S("71829304"))
    kpep = rig.app.read_card().kpep_certificate
    assert kpep is not None
    signature = rig.app.sign(DIGEST, S("60718293"))
    assert verify_card_signature(kpep, DIGEST, signature, SignatureScheme.RSA_PKCS1)


def test_activation_policy(pk: Build) -> None:
    rig = pk("pk-transport")
    tpin = rig.secret(SecretRef.TPIN)
    for new, rule in [
        (tpin, PinRule.SAME_AS_OLD),
        ("123456", PinRule.SEQUENCE),
        ("4719", PinRule.LENGTH),
    ]:
        with pytest.raises(WeakPin) as info:
            rig.app.activate_signature(S(tpin), S(new))
        assert info.value.rule is rule
    assert rig.spy.secret_commands() == []


def test_sign_needs_spin_each_time(pk: Build) -> None:
    rig = pk("pk-regular")
    spin = rig.secret(SecretRef.SPIN)
    kpep = rig.app.read_card().kpep_certificate
    assert kpep is not None
    for _ in range(2):
        signature = rig.app.sign(DIGEST, S(spin))
        assert verify_card_signature(kpep, DIGEST, signature, SignatureScheme.RSA_PKCS1)
        assert not rig.card.is_verified(SecretRef.SPIN)
        assert PinRef.SPIN not in rig.app.verified
    with pytest.raises(WrongPin):
        rig.app.sign(DIGEST, S("60718293"))


def test_a_refused_spin_drops_the_verified_spin_like_the_card(pk: Build) -> None:
    """One rule for every guarded operation: a refused secret is no longer verified."""
    rig = pk("pk-regular")
    rig.app.verify(PinRef.SPIN, S(rig.secret(SecretRef.SPIN)))
    assert PinRef.SPIN in rig.app.verified
    with pytest.raises(WrongPin):
        rig.app.sign(DIGEST, S("60718293"))
    assert not rig.card.is_verified(SecretRef.SPIN)
    assert PinRef.SPIN not in rig.app.verified


def test_the_iso_driver_reports_a_missing_key_typed(pk: Build) -> None:
    """6A88 from the card becomes KeyNotFound; 6982 stays a KeyNeedsPin with its status word."""
    rig = pk("pk-nurse")
    driver = IsoPkDriver.over(rig.spy)
    with driver.transaction():
        driver.select()
        with pytest.raises(KeyNotFound) as missing:
            driver.compute_signature(DIGEST)
        assert not isinstance(missing.value, ApduError)
        with pytest.raises(KeyNeedsPin) as locked:
            driver.internal_authenticate(DIGEST)
        assert isinstance(locked.value, SecurityStatusNotSatisfied)
        assert locked.value.sw == 0x6982


def test_sign_refusals(pk: Build) -> None:
    rig = pk("pk-transport")
    with pytest.raises(TransportPinActive):
        rig.app.sign(DIGEST, S("60718293"))
    assert rig.spy.secret_commands() == []
    nurse = pk("pk-nurse")
    with pytest.raises(NotSupported):
        nurse.app.sign(DIGEST, S("60718293"))
    regular = pk("pk-regular")
    with pytest.raises(FormatError):
        regular.app.sign(b"short", S(regular.secret(SecretRef.SPIN)))
    assert regular.spy.sent == []


# --- authentication -------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["pk-regular", "pk-backup"])
def test_authenticate_needs_pin(pk: Build, profile: str) -> None:
    rig = pk(profile)
    cert = rig.app.read_card().auth_certificate
    with pytest.raises(SecurityStatusNotSatisfied):
        rig.app.authenticate(DIGEST)
    rig.app.verify(PinRef.PIN, S(rig.secret(SecretRef.PIN)))
    signature = rig.app.authenticate(DIGEST)
    assert verify_card_signature(cert, DIGEST, signature, cert.auth_scheme)


# --- resets ----------------------------------------------------------------------------


def test_card_reset_drops_cached_verified_state(pk: Build) -> None:
    rig = pk("pk-regular")
    rig.app.verify(PinRef.PIN, S(rig.secret(SecretRef.PIN)))
    assert PinRef.PIN in rig.app.verified
    inner = rig.spy.inner
    assert isinstance(inner, InProcessConnection)
    inner.reset_by_other_party()
    with pytest.raises(CardReset):
        rig.app.pin_status(PinRef.PIN)
    assert rig.app.verified == frozenset()
    assert rig.app.pin_status(PinRef.PIN).state is PinState.VERIFIABLE
    with pytest.raises(SecurityStatusNotSatisfied):
        rig.app.authenticate(DIGEST)


# --- transactions ------------------------------------------------------------------------


def test_each_operation_is_one_transaction(pk: Build) -> None:
    rig = pk("pk-transport")
    app, spy = rig.app, rig.spy
    pin, puk, tpin = (rig.secret(r) for r in (SecretRef.PIN, SecretRef.PUK, SecretRef.TPIN))
    app.read_card()  # caches the birth date the policy needs
    operations = [
        app.pin_statuses,
        lambda: app.verify(PinRef.PIN, S(pin)),
        lambda: app.authenticate(DIGEST),
        lambda: app.change(PinRef.PIN, S(pin), S(NEW_PIN)),
        lambda: app.unblock(S(puk), S(pin)),
        lambda: app.activate_signature(S(tpin), S("503817")),
        lambda: app.sign(DIGEST, S("503817")),
    ]
    for operation in operations:
        before_tx, before_sent = spy.transactions, len(spy.sent)
        operation()
        assert spy.transactions == before_tx + 1
        assert len(spy.sent) > before_sent
        assert all(s.in_transaction for s in spy.sent[before_sent:])
    assert spy.depth == 0


def test_a_session_holds_several_operations_in_one_transaction_and_one_select(
    pk: Build,
) -> None:
    rig = pk("pk-regular")
    app, spy = rig.app, rig.spy
    with app.session():
        serial = app.card_info().serial
        statuses = app.pin_statuses()
        assert spy.depth == 1
    assert serial == "PK0000100001"
    assert [s.ref for s in statuses] == list(PinRef)
    assert spy.transactions == 1
    assert spy.depth == 0
    selects = [s for s in spy.sent if (s.ins, s.p1) == (0xA4, 0x04)]
    assert len(selects) == 1
    assert spy.sent[0] == selects[0]
    assert all(s.in_transaction for s in spy.sent)
    # The next session selects the application again, whatever happened in between.
    before = len(spy.sent)
    app.pin_status(PinRef.PIN)
    assert spy.transactions == 2
    assert (spy.sent[before].ins, spy.sent[before].p1) == (0xA4, 0x04)


def test_a_reset_inside_a_session_drops_the_verified_states_and_ends_it(pk: Build) -> None:
    rig = pk("pk-regular")
    app, spy = rig.app, rig.spy
    app.verify(PinRef.PIN, S(rig.secret(SecretRef.PIN)))
    assert PinRef.PIN in app.verified
    inner = spy.inner
    assert isinstance(inner, InProcessConnection)

    def card_info_then_statuses_across_a_reset() -> None:
        with app.session():
            app.card_info()
            inner.reset_by_other_party()
            app.pin_statuses()

    with pytest.raises(CardReset):
        card_info_then_statuses_across_a_reset()
    assert app.verified == frozenset()
    assert spy.depth == 0
    # A new session works and selects again.
    before = len(spy.sent)
    assert app.pin_status(PinRef.PIN).state is PinState.VERIFIABLE
    assert (spy.sent[before].ins, spy.sent[before].p1) == (0xA4, 0x04)
