"""Pkcs11PkDriver behaviour that only a real PKCS#11 module shows (SoftHSM2)."""

from __future__ import annotations

import hashlib

import pytest
from pkcs11rig import SoftHsmGolden

from pkcard.errors import (
    ApduError,
    CardRemoved,
    CardReset,
    KeyNeedsPin,
    KeyNotFound,
    NotSupported,
    ProfileError,
)
from pkcard.pin import PinRef, PinState
from pkcard.pk import ProfessionalCard
from pkcard.pkcs11 import Pkcs11Module, Pkcs11PkDriver, TokenSelector
from pkcard.secret import Secret
from pkcard.simcard.profile import load_profile
from pkcard.simcard.softhsm import provision_pk
from pkcard.simcard.spec import SecretRef

DIGEST = hashlib.sha256(b"softhsm").digest()


def _regular(
    golden: SoftHsmGolden, module: Pkcs11Module
) -> tuple[Pkcs11PkDriver, ProfessionalCard]:
    tokens = golden.tokens["pk-regular"]
    driver = Pkcs11PkDriver(
        module,
        TokenSelector(serial=tokens.card_serial),
        TokenSelector(label=tokens.signature_label),
    )
    return driver, ProfessionalCard(driver)


def test_tokens_are_listed_with_label_and_serial(
    softhsm_golden: SoftHsmGolden, softhsm_module: Pkcs11Module
) -> None:
    tokens = softhsm_golden.tokens["pk-regular"]
    found = softhsm_module.find(TokenSelector(serial=tokens.card_serial))
    assert found.label == "PK0000100001"
    assert found.slot_description.startswith("SoftHSM slot")
    assert not found.protected_authentication_path


def test_no_matching_token_is_card_removed(softhsm_module: Pkcs11Module) -> None:
    driver = Pkcs11PkDriver(softhsm_module, TokenSelector(serial="no-such-token"))
    with pytest.raises(CardRemoved):
        ProfessionalCard(driver).pin_status(PinRef.PIN)


def test_lost_session_is_a_reset(
    softhsm_golden: SoftHsmGolden, softhsm_module: Pkcs11Module
) -> None:
    driver, app = _regular(softhsm_golden, softhsm_module)
    profile = load_profile("pk-regular")
    app.verify(PinRef.PIN, Secret(profile.secret_value(SecretRef.PIN)))
    assert PinRef.PIN in app.verified
    slot = softhsm_module.find(
        TokenSelector(serial=softhsm_golden.tokens["pk-regular"].card_serial)
    )
    softhsm_module.lib.closeAllSessions(slot.slot)  # another party ends our sessions
    with pytest.raises(CardReset):
        app.authenticate(DIGEST)
    assert app.verified == frozenset()
    # the next operation opens a new session; the login went with the old one
    assert app.pin_status(PinRef.PIN).state is PinState.VERIFIABLE
    with pytest.raises(KeyNeedsPin) as refused:
        app.authenticate(DIGEST)
    assert not isinstance(refused.value, ApduError)  # a PKCS#11 token has no status word
    driver.close()


def test_signature_token_logged_out_after_each_signature(
    softhsm_golden: SoftHsmGolden, softhsm_module: Pkcs11Module
) -> None:
    driver, app = _regular(softhsm_golden, softhsm_module)
    profile = load_profile("pk-regular")
    app.sign(DIGEST, Secret(profile.secret_value(SecretRef.SPIN)))
    with pytest.raises(KeyNeedsPin) as refused:
        driver.compute_signature(DIGEST)  # straight to the driver: no SPIN, no signature
    assert not isinstance(refused.value, ApduError)
    driver.close()


def test_provisioning_refuses_a_transport_spin(softhsm_module: Pkcs11Module) -> None:
    with pytest.raises(ProfileError):
        provision_pk(softhsm_module, load_profile("pk-transport"))


def test_a_missing_key_is_typed_without_a_status_word(
    softhsm_golden: SoftHsmGolden, softhsm_module: Pkcs11Module
) -> None:
    tokens = softhsm_golden.tokens["pk-regular"]
    card_only = Pkcs11PkDriver(softhsm_module, TokenSelector(serial=tokens.card_serial))
    with pytest.raises(KeyNotFound) as missing:
        card_only.compute_signature(DIGEST)  # no signature token: no KPEP key
    assert not isinstance(missing.value, ApduError)
    with pytest.raises(NotSupported):
        ProfessionalCard(card_only).sign(DIGEST, Secret("000000"))
    card_only.close()
