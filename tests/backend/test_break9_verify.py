"""Issue 12, break 9: pkcard.verify used as a library.

The chains are checked at verification time (not at the token's own ``iat``),
``iat`` stays within the verifier's skew, and a certificate without its
subject ``serialNumber`` binding (the KZZ's patient, the PK's holder) is refused.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from tokenrig import HOLDER, KZZ_SERIAL, NOW, PATIENT, REGULAR_SERIAL, Card, Pki, make_token

from pkcard.backend.devpki import KeyKind, issue_card_cert
from pkcard.errors import RefusalReason, TokenRefused
from pkcard.token import CardRole
from pkcard.verify import InMemoryNonceStore, SessionScope, TokenVerifier

CLIENT = "ws-ljubljana-01"
MAX_LIFETIME = 600


def refused(verifier: TokenVerifier, token: str) -> RefusalReason:
    with pytest.raises(TokenRefused) as info:
        verifier.verify(token, CLIENT)
    return info.value.reason


def _regular_until(pki: Pki, not_after_offset: timedelta) -> Card:
    issued = issue_card_cert(pki.dev.pk_ca, "Dr Ana Test", HOLDER, KeyKind.EC_P256,
                             not_before=NOW - timedelta(days=30),
                             not_after=NOW + not_after_offset)
    return Card(REGULAR_SERIAL, CardRole.REGULAR, issued)


@pytest.fixture
def nonce(nonces: InMemoryNonceStore) -> bytes:
    return nonces.issue(CLIENT, NOW)


def test_break9_leaf_expired_5_minutes_ago_with_iat_backdated_8_minutes_is_refused(
    verifier: TokenVerifier, test_pki: Pki, nonce: bytes
) -> None:
    """The measured attack: accepted before, because the chain was checked at iat."""
    expired = _regular_until(test_pki, -timedelta(minutes=5))
    iat = NOW - timedelta(minutes=8)
    token = make_token(test_pki, expired, nonce, now=iat,
                       exp=int(iat.timestamp()) + MAX_LIFETIME)
    assert refused(verifier, token) in {RefusalReason.CLOCK_SKEW, RefusalReason.CHAIN_INVALID}


def test_break9_chain_is_checked_at_verification_time(
    verifier: TokenVerifier, test_pki: Pki, nonce: bytes
) -> None:
    """A leaf valid at iat (within the skew) but expired now is refused."""
    expired = _regular_until(test_pki, -timedelta(seconds=20))
    token = make_token(test_pki, expired, nonce, now=NOW - timedelta(seconds=45))
    assert refused(verifier, token) is RefusalReason.CHAIN_INVALID


def test_break9_iat_older_than_the_skew_is_refused(
    verifier: TokenVerifier, test_pki: Pki, nonce: bytes
) -> None:
    iat = NOW - timedelta(minutes=8)
    token = make_token(test_pki, test_pki.regular, nonce, now=iat,
                       exp=int(iat.timestamp()) + MAX_LIFETIME)
    assert refused(verifier, token) is RefusalReason.CLOCK_SKEW


def test_break9_iat_inside_the_skew_is_still_accepted(
    verifier: TokenVerifier, test_pki: Pki, nonce: bytes
) -> None:
    token = make_token(test_pki, test_pki.regular, nonce, now=NOW - timedelta(seconds=50))
    assert verifier.verify(token, CLIENT).scope is SessionScope.FULL


@pytest.mark.parametrize("patient_id", [PATIENT, "987654321"])
def test_break9_kzz_certificate_without_serial_number_is_refused(
    verifier: TokenVerifier, test_pki: Pki, nonce: bytes, patient_id: str
) -> None:
    unbound = issue_card_cert(test_pki.dev.kzz_ca, "KZZ", None, KeyKind.EC_P256,
                              not_before=NOW - timedelta(days=1),
                              not_after=NOW + timedelta(days=9))
    token = make_token(test_pki, test_pki.regular, nonce,
                       kzz=Card(KZZ_SERIAL, CardRole.REGULAR, unbound), patient_id=patient_id)
    assert refused(verifier, token) is RefusalReason.KZZ_PROOF_INVALID


def test_break9_kzz_certificate_naming_the_card_not_the_patient_is_refused(
    verifier: TokenVerifier, test_pki: Pki, nonce: bytes
) -> None:
    """A serialNumber equal to kzzSerial binds no patient: any patientId would pass."""
    by_card = issue_card_cert(test_pki.dev.kzz_ca, "KZZ", KZZ_SERIAL, KeyKind.EC_P256,
                              not_before=NOW - timedelta(days=1),
                              not_after=NOW + timedelta(days=9))
    token = make_token(test_pki, test_pki.regular, nonce,
                       kzz=Card(KZZ_SERIAL, CardRole.REGULAR, by_card), patient_id="987654321")
    assert refused(verifier, token) is RefusalReason.KZZ_PROOF_INVALID


def test_break9_pk_certificate_without_serial_number_is_refused(
    verifier: TokenVerifier, test_pki: Pki, nonce: bytes
) -> None:
    unbound = issue_card_cert(test_pki.dev.pk_ca, "Dr Ana Test", None, KeyKind.EC_P256,
                              not_before=NOW - timedelta(days=1),
                              not_after=NOW + timedelta(days=9))
    card = Card(REGULAR_SERIAL, CardRole.REGULAR, unbound)
    assert refused(verifier, make_token(test_pki, card, nonce)) is RefusalReason.HOLDER_MISMATCH
