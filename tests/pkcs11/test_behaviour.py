"""One PK behavioural suite over every backend: APDU (in-process, pcscd) and PKCS#11 (SoftHSM2).

The test ids name the backend (``[softhsm2]``). Cases a backend cannot model
are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pkcs11rig import OPENSC_NO_AUTHENTICATION, SOFTHSM_NEVER_LOCKS, Backend

from pkcard.certs import SignatureScheme, verify_card_signature
from pkcard.cms import sign_detached, verify_detached
from pkcard.errors import (
    ApduError,
    CardDead,
    KeyNeedsPin,
    LastTryNotConfirmed,
    NotSupported,
    PinBlocked,
    SecurityStatusNotSatisfied,
    TransportPinActive,
    WrongPin,
)
from pkcard.pin import PinRef, PinState
from pkcard.secret import Secret
from pkcard.simcard.spec import KeyUse, SecretRef

OpenPk = Callable[..., Backend]

DIGEST = hashlib.sha256(b"pkcard behavioural suite").digest()
TEST_PK_CA = Path(__file__).resolve().parents[2] / "fixtures/pki/ca/test-pk/ca-cert.pem"
WRONG_PIN = "47195283"
WRONG_PUK = "10293847"
NEW_PIN = "60718293"


def assert_tries(pk: Backend, seen: int, expected: int, max_tries: int) -> None:
    """Tries left after wrong tries: exact, or a bound where the module sets no COUNT_LOW.

    OpenSC's default driver learns no maximum try count, so after a wrong try
    its flags still say "untouched" until the final try.
    """
    if pk.counts_low:
        assert seen == expected
    else:
        assert expected <= seen <= max_tries


def assert_needs_pin(refused: KeyNeedsPin, pk: Backend) -> None:
    """One typed error on every backend; only an APDU card has a status word (6982)."""
    apdu = pk.name.startswith("apdu-")
    assert isinstance(refused, SecurityStatusNotSatisfied) is apdu
    assert isinstance(refused, ApduError) is apdu


def needs_authentication(pk: Backend) -> None:
    if not pk.authenticates:
        pytest.skip(OPENSC_NO_AUTHENTICATION)


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


def test_read_card_matches_the_profile(open_pk: OpenPk) -> None:
    pk = open_pk("pk-regular")
    data = pk.app.read_card()
    assert data.card_serial == pk.profile.card_info.serial
    assert pk.profile.holder is not None
    assert data.holder_name == pk.profile.holder.name
    assert data.holder_id == pk.profile.holder.holder_id
    assert data.auth_certificate.der == _der(pk.profile.key(KeyUse.AUTHENTICATION).certificate_path)
    assert data.kpep_certificate is not None
    assert data.kpep_certificate.der == _der(pk.profile.key(KeyUse.SIGNATURE).certificate_path)


def test_nurse_has_no_kpep(open_pk: OpenPk) -> None:
    pk = open_pk("pk-nurse")
    assert pk.app.read_card().kpep_certificate is None
    with pytest.raises(NotSupported):
        pk.app.pin_status(PinRef.SPIN)
    refs = {status.ref for status in pk.app.pin_statuses()}
    assert {PinRef.PIN, PinRef.PUK} <= refs
    assert PinRef.SPIN not in refs


def test_pin_statuses_fresh_card(open_pk: OpenPk) -> None:
    pk = open_pk("pk-regular")
    states = {status.ref: status for status in pk.app.pin_statuses()}
    assert states[PinRef.PIN].state is PinState.VERIFIABLE
    assert states[PinRef.PIN].tries_left == 3
    assert states[PinRef.PUK].tries_left == 5
    assert states[PinRef.SPIN].state is PinState.VERIFIABLE
    assert states[PinRef.TPIN].state is PinState.DISABLED
    assert (PinRef.REACTIVATION in states) is pk.has_password


def test_verify_right_pin(open_pk: OpenPk) -> None:
    pk = open_pk()
    status = pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN))
    assert status.state is PinState.VERIFIED
    assert pk.app.pin_status(PinRef.PIN).state is PinState.VERIFIED


def test_wrong_pin_is_refused_and_counted(open_pk: OpenPk) -> None:
    pk = open_pk()
    with pytest.raises(WrongPin) as refused:
        pk.app.verify(PinRef.PIN, Secret(WRONG_PIN))
    assert_tries(pk, refused.value.tries_left, 2, 3)
    assert WRONG_PIN not in str(refused.value)
    status = pk.app.pin_status(PinRef.PIN)
    assert status.state is PinState.VERIFIABLE
    assert_tries(pk, status.tries_left, 2, 3)


def test_right_pin_after_a_wrong_one(open_pk: OpenPk) -> None:
    pk = open_pk()
    with pytest.raises(WrongPin):
        pk.app.verify(PinRef.PIN, Secret(WRONG_PIN))
    assert pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN)).state is PinState.VERIFIED


def test_wrong_pin_drops_verified_state(open_pk: OpenPk) -> None:
    pk = open_pk()
    pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN))
    with pytest.raises(WrongPin):
        pk.app.verify(PinRef.PIN, Secret(WRONG_PIN))
    assert pk.app.pin_status(PinRef.PIN).state is PinState.VERIFIABLE
    with pytest.raises(KeyNeedsPin) as refused:
        pk.app.authenticate(DIGEST)
    assert_needs_pin(refused.value, pk)


def test_change_pin(open_pk: OpenPk) -> None:
    pk = open_pk()
    status = pk.app.change(PinRef.PIN, pk.secret(SecretRef.PIN), Secret(NEW_PIN))
    assert status.usable
    with pytest.raises(WrongPin):
        pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN))
    assert pk.app.verify(PinRef.PIN, Secret(NEW_PIN)).state is PinState.VERIFIED


def test_change_pin_with_wrong_old_pin(open_pk: OpenPk) -> None:
    pk = open_pk()
    with pytest.raises(WrongPin) as refused:
        pk.app.change(PinRef.PIN, Secret(WRONG_PIN), Secret(NEW_PIN))
    assert_tries(pk, refused.value.tries_left, 2, 3)
    assert pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN)).state is PinState.VERIFIED


def test_unblock_with_puk(open_pk: OpenPk) -> None:
    pk = open_pk()
    status = pk.app.unblock(pk.secret(SecretRef.PUK), Secret(NEW_PIN))
    assert status.state is PinState.VERIFIABLE
    assert status.tries_left == 3
    with pytest.raises(WrongPin):
        pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN))
    assert pk.app.verify(PinRef.PIN, Secret(NEW_PIN)).state is PinState.VERIFIED


def test_unblock_with_wrong_puk(open_pk: OpenPk) -> None:
    pk = open_pk()
    with pytest.raises(WrongPin) as refused:
        pk.app.unblock(Secret(WRONG_PUK), Secret(NEW_PIN))
    assert_tries(pk, refused.value.tries_left, 4, 5)
    assert WRONG_PUK not in str(refused.value)
    assert pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN)).state is PinState.VERIFIED


def test_authenticate_needs_the_pin(open_pk: OpenPk) -> None:
    pk = open_pk()
    with pytest.raises(KeyNeedsPin) as refused:
        pk.app.authenticate(DIGEST)
    assert_needs_pin(refused.value, pk)


@pytest.mark.parametrize("profile", ["pk-regular", "pk-backup"])  # EC P-256, RSA-2048
def test_authenticate_verifies_with_the_certificate(open_pk: OpenPk, profile: str) -> None:
    pk = open_pk(profile)
    needs_authentication(pk)
    cert = pk.app.read_card().auth_certificate
    pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN))
    signature = pk.app.authenticate(DIGEST)
    assert verify_card_signature(cert, DIGEST, signature, cert.auth_scheme)
    other = hashlib.sha256(b"something else").digest()
    assert not verify_card_signature(cert, other, signature, cert.auth_scheme)
    assert pk.app.authenticate(DIGEST)  # authentication does not consume the PIN


def test_sign_verifies_with_the_kpep_certificate(open_pk: OpenPk) -> None:
    pk = open_pk()
    cert = pk.app.read_card().kpep_certificate
    assert cert is not None
    signature = pk.app.sign(DIGEST, pk.secret(SecretRef.SPIN))
    assert verify_card_signature(cert, DIGEST, signature, SignatureScheme.RSA_PKCS1)
    # sole control: the SPIN is consumed by the signature
    assert PinRef.SPIN not in pk.app.verified
    assert pk.app.pin_status(PinRef.SPIN).state is PinState.VERIFIABLE


def test_sign_with_wrong_spin(open_pk: OpenPk) -> None:
    pk = open_pk()
    with pytest.raises(WrongPin) as refused:
        pk.app.sign(DIGEST, Secret(WRONG_PIN))
    assert_tries(pk, refused.value.tries_left, 2, 3)


def test_nurse_cannot_sign(open_pk: OpenPk) -> None:
    pk = open_pk("pk-nurse")
    with pytest.raises(NotSupported):
        pk.app.sign(DIGEST, Secret("69472538"))


def test_reactivation_password(open_pk: OpenPk) -> None:
    pk = open_pk()
    if not pk.has_password:
        with pytest.raises(NotSupported):
            pk.app.present_reactivation_password(pk.secret(SecretRef.REACTIVATION))
        return
    status = pk.app.present_reactivation_password(pk.secret(SecretRef.REACTIVATION))
    assert status.state is PinState.VERIFIED


def test_last_try_guard(open_pk: OpenPk) -> None:
    pk = open_pk()
    if not pk.enforces_tries:
        pytest.skip(SOFTHSM_NEVER_LOCKS)
    for _ in range(2):
        with pytest.raises(WrongPin):
            pk.app.verify(PinRef.PIN, Secret(WRONG_PIN))
    with pytest.raises(LastTryNotConfirmed):
        pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN))
    status = pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN), confirm_last_try=True)
    assert status.state is PinState.VERIFIED


def test_three_wrong_pins_block(open_pk: OpenPk) -> None:
    pk = open_pk()
    if not pk.enforces_tries:
        pytest.skip(SOFTHSM_NEVER_LOCKS)
    for _ in range(2):
        with pytest.raises(WrongPin):
            pk.app.verify(PinRef.PIN, Secret(WRONG_PIN))
    with pytest.raises(PinBlocked):
        pk.app.verify(PinRef.PIN, Secret(WRONG_PIN), confirm_last_try=True)
    assert pk.app.pin_status(PinRef.PIN).state is PinState.BLOCKED
    with pytest.raises(PinBlocked):
        pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN), confirm_last_try=True)
    status = pk.app.unblock(pk.secret(SecretRef.PUK), Secret(NEW_PIN))
    assert status.state is PinState.VERIFIABLE


def test_softhsm_never_locks(open_pk: OpenPk) -> None:
    """Documents the SoftHSM 2.6 limit the lockout cases skip for."""
    pk = open_pk()
    if pk.enforces_tries:
        pytest.skip("only the SoftHSM2 backend lacks lockout")
    for _ in range(5):
        with pytest.raises(WrongPin) as refused:
            pk.app.verify(PinRef.PIN, Secret(WRONG_PIN), confirm_last_try=True)
        assert refused.value.tries_left == 2  # CKF_USER_PIN_COUNT_LOW, never FINAL_TRY
    assert pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN)).state is PinState.VERIFIED


def test_cms_signature_verifies(open_pk: OpenPk) -> None:
    pk = open_pk()
    kpep = pk.app.read_card().kpep_certificate
    assert kpep is not None
    spin = pk.secret(SecretRef.SPIN)
    document = b"referral letter"
    signature = sign_detached(document, kpep.der, lambda d: pk.app.sign(d, spin))
    anchor = x509.load_pem_x509_certificate(TEST_PK_CA.read_bytes())
    info = verify_detached(signature, document, [anchor])
    assert info.signer.der == kpep.der


def test_no_secret_in_logs_or_errors(open_pk: OpenPk, caplog: pytest.LogCaptureFixture) -> None:
    pk = open_pk()
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for attempt in (
        lambda: pk.app.verify(PinRef.PIN, Secret(WRONG_PIN)),
        lambda: pk.app.unblock(Secret(WRONG_PUK), Secret(NEW_PIN)),
        lambda: pk.app.sign(DIGEST, Secret(WRONG_PIN)),
    ):
        with pytest.raises(WrongPin) as refused:
            attempt()
        texts += [str(refused.value), repr(refused.value)]
    pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN))
    pk.app.change(PinRef.PIN, pk.secret(SecretRef.PIN), Secret(NEW_PIN))
    everything = caplog.text + "".join(texts)
    for value in (WRONG_PIN, WRONG_PUK, NEW_PIN, pk.profile.secret_value(SecretRef.PIN)):
        assert value not in everything


NEW_SPIN = "60718294"


def test_activate_signature_from_transport(open_pk: OpenPk) -> None:
    pk = open_pk("pk-transport")
    assert pk.app.pin_status(PinRef.SPIN).state is PinState.TRANSPORT
    with pytest.raises(TransportPinActive):
        pk.app.sign(DIGEST, Secret(NEW_SPIN))
    status = pk.app.activate_signature(pk.secret(SecretRef.TPIN), Secret(NEW_SPIN))
    assert status.state is PinState.VERIFIABLE
    assert status.tries_left == 3
    assert pk.app.pin_status(PinRef.TPIN).state is PinState.DISABLED
    cert = pk.app.read_card().kpep_certificate
    assert cert is not None
    signature = pk.app.sign(DIGEST, Secret(NEW_SPIN))
    assert verify_card_signature(cert, DIGEST, signature, SignatureScheme.RSA_PKCS1)


def test_activate_with_wrong_tpin(open_pk: OpenPk) -> None:
    pk = open_pk("pk-transport")
    with pytest.raises(WrongPin) as refused:
        pk.app.activate_signature(Secret("105829"), Secret(NEW_SPIN))
    assert refused.value.tries_left == 2
    assert pk.app.pin_status(PinRef.SPIN).state is PinState.TRANSPORT


def test_exhausted_puk_kills_the_card(open_pk: OpenPk) -> None:
    pk = open_pk()
    if not pk.enforces_tries:
        pytest.skip(SOFTHSM_NEVER_LOCKS)
    for tries_left in (4, 3, 2):
        with pytest.raises(WrongPin) as refused:
            pk.app.unblock(Secret(WRONG_PUK), Secret(NEW_PIN))
        if pk.exact_counter:
            assert refused.value.tries_left == tries_left
        else:  # CKF_SO_PIN_COUNT_LOW: an upper bound (none at all without COUNT_LOW)
            assert tries_left <= refused.value.tries_left <= (4 if pk.counts_low else 5)
    with pytest.raises(WrongPin):
        pk.app.unblock(Secret(WRONG_PUK), Secret(NEW_PIN), confirm_last_try=True)
    with pytest.raises(CardDead):
        pk.app.unblock(Secret(WRONG_PUK), Secret(NEW_PIN), confirm_last_try=True)
    assert pk.app.pin_status(PinRef.PUK).state is PinState.DEAD
    assert pk.app.pin_status(PinRef.PIN).state is PinState.DEAD
    with pytest.raises(CardDead):
        pk.app.verify(PinRef.PIN, pk.secret(SecretRef.PIN))
