"""Pkcs11PkDriver behaviour that only a real PKCS#11 module shows (SoftHSM2)."""

from __future__ import annotations

import hashlib
from typing import Any

import PyKCS11
import pytest
from pkcs11rig import SoftHsmGolden

import pkcard.pkcs11
from pkcard.cardinfo import CardInfo
from pkcard.certs import (
    KeyAlgorithm,
    SignatureScheme,
    parse_certificate,
    verify_card_signature,
)
from pkcard.errors import (
    ApduError,
    CardRemoved,
    CardReset,
    KeyNeedsPin,
    KeyNotFound,
    NotSupported,
    ProfileError,
    WrongPin,
)
from pkcard.pin import PinRef, PinState
from pkcard.pk import KeySlot, ProfessionalCard
from pkcard.pkcs11 import KeyId, Pkcs11Module, Pkcs11PkDriver, TokenSelector
from pkcard.secret import Secret
from pkcard.simcard.profile import load_profile
from pkcard.simcard.softhsm import (
    _certificate_template,
    _data_template,
    _fill,
    _key_template,
    card_files,
    provision_pk,
)
from pkcard.simcard.spec import KeyUse, SecretRef

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


def _count_finds(driver: Pkcs11PkDriver, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every C_FindObjects the driver's card and signature sessions make."""
    calls: list[object] = []
    for token in (driver._card, driver._signature):
        assert token is not None
        session = token.session
        real = session.findObjects

        def counted(template: object, real: Any = real) -> Any:
            calls.append(template)
            return real(template)

        monkeypatch.setattr(session, "findObjects", counted)
    return calls


def test_card_data_and_certificates_are_read_once_per_session(
    softhsm_golden: SoftHsmGolden, softhsm_module: Pkcs11Module,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver, app = _regular(softhsm_golden, softhsm_module)
    finds = _count_finds(driver, monkeypatch)
    first = (driver.read_card_info(), driver.read_holder(),
             driver.read_certificate(KeySlot.AUTHENTICATION),
             driver.read_certificate(KeySlot.SIGNATURE))
    looked_up = len(finds)
    assert looked_up == 4
    profile = load_profile("pk-regular")
    for _ in range(3):
        app.sign(DIGEST, Secret(profile.secret_value(SecretRef.SPIN)))
        again = (driver.read_card_info(), driver.read_holder(),
                 driver.read_certificate(KeySlot.AUTHENTICATION),
                 driver.read_certificate(KeySlot.SIGNATURE))
        assert again == first
    assert len(finds) == looked_up + 3  # only the private key, after each C_Login
    driver.close()


def _swap_card_token(module: Pkcs11Module, label: str, old_puk: str, name: str) -> None:
    """Another card in the same slot under the same label: the old one's sessions end,
    the token is initialised again and filled with profile ``name``'s card objects."""
    profile = load_profile(name)
    slot = module.find(TokenSelector(label=label)).slot
    lib = module.lib
    lib.closeAllSessions(slot)
    lib.initToken(slot, old_puk, label)
    session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    session.login(old_puk, PyKCS11.CKU_SO)
    session.initPin(profile.secret_value(SecretRef.PIN))
    session.logout()
    session.closeSession()
    card_info, holder = card_files(profile)
    auth = profile.key(KeyUse.AUTHENTICATION)
    _fill(lib, slot, profile.secret_value(SecretRef.PIN), [
        _key_template(auth, KeyId.AUTH), _certificate_template(auth, KeyId.AUTH),
        _data_template("EF.CardInfo", card_info), _data_template("EF.Holder", holder),
    ])


def test_a_card_swapped_between_calls_is_a_reset_and_nothing_cached_survives(
    softhsm_golden: SoftHsmGolden, softhsm_module: Pkcs11Module
) -> None:
    tokens = softhsm_golden.tokens["pk-regular"]
    driver = Pkcs11PkDriver(softhsm_module, TokenSelector(label=tokens.card_label))
    app = ProfessionalCard(driver)
    regular = load_profile("pk-regular")
    before = (driver.read_card_info(), driver.read_certificate(KeySlot.AUTHENTICATION))
    assert before[0].serial == regular.card_info.serial
    app.verify(PinRef.PIN, Secret(regular.secret_value(SecretRef.PIN)))

    _swap_card_token(softhsm_module, tokens.card_label, regular.secret_value(SecretRef.PUK),
                     "pk-nurse")

    with pytest.raises(CardReset):
        app.read_card()  # never the cached EF.CardInfo of the card that left
    nurse = load_profile("pk-nurse")
    info = driver.read_card_info()
    certificate = driver.read_certificate(KeySlot.AUTHENTICATION)
    assert info.serial == nurse.card_info.serial != before[0].serial
    assert certificate is not None
    assert certificate != before[1]
    assert app.verified == frozenset()
    with pytest.raises(KeyNeedsPin):
        app.authenticate(DIGEST)  # the old card's login went with it
    app.verify(PinRef.PIN, Secret(nurse.secret_value(SecretRef.PIN)))
    signature = app.authenticate(DIGEST)
    parsed = parse_certificate(certificate)
    scheme = (SignatureScheme.EC_RAW if parsed.key_algorithm is KeyAlgorithm.EC_P256
              else SignatureScheme.RSA_PSS)
    assert verify_card_signature(parsed, DIGEST, signature, scheme)  # the new card's key
    driver.close()


def _count_module_calls(module: Pkcs11Module, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the driver's slot checks (C_GetSlotInfo) and flag reads (C_GetTokenInfo)."""
    calls: list[str] = []
    for name in ("token_present", "token_flags"):
        real = getattr(module, name)

        def counted(slot: int, real: Any = real, name: str = name) -> Any:
            calls.append(name)
            return real(slot)

        monkeypatch.setattr(module, name, counted)
    return calls


def test_one_signature_job_checks_the_slot_and_reads_the_flags_once(
    softhsm_golden: SoftHsmGolden, softhsm_module: Pkcs11Module,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pkcardd's signature job (card info, KPEP certificate, status, SPIN, signature) runs in
    one driver transaction: the slot is checked once (not at every cached read) and the
    signature token's flags are read once before the SPIN (issue #14, G3); a refused SPIN
    still reads the flags again after the login, for its tries left."""
    driver, app = _regular(softhsm_golden, softhsm_module)
    profile = load_profile("pk-regular")
    spin = profile.secret_value(SecretRef.SPIN)
    with driver.transaction():  # warm: sessions open, card data cached
        app.card_info()
        app.certificate(KeySlot.SIGNATURE)
    calls = _count_module_calls(softhsm_module, monkeypatch)
    for _ in range(2):
        calls.clear()
        with driver.transaction():
            app.card_info()
            app.certificate(KeySlot.SIGNATURE)
            app.sign(DIGEST, Secret(spin))
        assert sorted(calls) == ["token_flags", "token_present"]
    calls.clear()
    wrong = spin[:-1] + str((int(spin[-1]) + 1) % 10)
    with driver.transaction(), pytest.raises(WrongPin) as refused:
        app.sign(DIGEST, Secret(wrong))
    assert refused.value.tries_left == 2  # the flags read after the refused C_Login
    assert calls.count("token_flags") == 2
    calls.clear()
    app.sign(DIGEST, Secret(spin))  # outside a transaction of its own: still one check each
    assert sorted(calls) == ["token_flags", "token_present"]
    driver.close()


def test_card_info_is_parsed_once_per_session(
    softhsm_golden: SoftHsmGolden, softhsm_module: Pkcs11Module,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every signature reads the card's serial: EF.CardInfo is parsed once per token session
    (issue #14, G3), and a card swapped in gets its own (the swap test above)."""
    parsed: list[bytes] = []
    real = pkcard.pkcs11.parse_card_info

    def counted(data: bytes) -> CardInfo:
        parsed.append(data)
        return real(data)

    monkeypatch.setattr(pkcard.pkcs11, "parse_card_info", counted)
    driver, app = _regular(softhsm_golden, softhsm_module)
    spin = load_profile("pk-regular").secret_value(SecretRef.SPIN)
    serials = set()
    for _ in range(3):
        with driver.transaction():
            serials.add(app.card_info().serial)
            app.sign(DIGEST, Secret(spin))
    assert serials == {load_profile("pk-regular").card_info.serial}
    assert len(parsed) == 1
    driver.close()  # the session ends: the next one parses again
    assert app.card_info().serial in serials
    assert len(parsed) == 2
    driver.close()
