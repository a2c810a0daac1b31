"""Expiry warnings (pure function of dates) and certificate parsing/verification."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from pkcard.certs import (
    KeyAlgorithm,
    SignatureScheme,
    parse_certificate,
    verify_card_signature,
)
from pkcard.errors import FormatError
from pkcard.expiry import ExpiryKind, expiry_warnings

UNTIL = date(2027, 3, 31)


@pytest.mark.parametrize(
    ("today", "kinds"),
    [
        (UNTIL - timedelta(days=31), []),
        (UNTIL - timedelta(days=30), [ExpiryKind.CARD_REPLACEMENT_DUE]),
        (UNTIL, [ExpiryKind.CARD_REPLACEMENT_DUE]),
        (UNTIL + timedelta(days=1), [ExpiryKind.CARD_EXPIRED]),
    ],
)
def test_card_warnings(today: date, kinds: list[ExpiryKind]) -> None:
    found = expiry_warnings(today=today, card_valid_until=UNTIL)
    assert [w.kind for w in found] == kinds
    for warning in found:
        assert warning.days_left == (UNTIL - today).days
        assert warning.expires_on == UNTIL


def test_kpep_warnings_by_utc_day() -> None:
    not_after = datetime(2027, 6, 30, 23, 59, 59, tzinfo=UTC)
    card_far = date(2030, 1, 1)
    assert (
        expiry_warnings(
            today=date(2027, 4, 18), card_valid_until=card_far, kpep_not_after=not_after
        )
        == ()
    )
    due = expiry_warnings(
        today=date(2027, 4, 19), card_valid_until=card_far, kpep_not_after=not_after
    )
    assert [(w.kind, w.days_left) for w in due] == [(ExpiryKind.KPEP_RENEWAL_DUE, 72)]
    gone = expiry_warnings(
        today=date(2027, 7, 1), card_valid_until=card_far, kpep_not_after=not_after
    )
    assert [(w.kind, w.days_left) for w in gone] == [(ExpiryKind.KPEP_EXPIRED, -1)]


@given(
    today=st.dates(date(2020, 1, 1), date(2035, 1, 1)),
    until=st.dates(date(2020, 1, 1), date(2035, 1, 1)),
    kpep=st.dates(date(2020, 1, 1), date(2035, 1, 1)),
)
def test_warnings_are_consistent(today: date, until: date, kpep: date) -> None:
    found = {
        w.kind: w for w in expiry_warnings(today=today, card_valid_until=until, kpep_not_after=kpep)
    }
    card_left, kpep_left = (until - today).days, (kpep - today).days
    assert (ExpiryKind.CARD_EXPIRED in found) == (card_left < 0)
    assert (ExpiryKind.CARD_REPLACEMENT_DUE in found) == (0 <= card_left <= 30)
    assert (ExpiryKind.KPEP_EXPIRED in found) == (kpep_left < 0)
    assert (ExpiryKind.KPEP_RENEWAL_DUE in found) == (0 <= kpep_left <= 72)


# --- certificates ------------------------------------------------------------


def make_cert(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Dr. Test Zdravnik"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "12345"),
        ]
    )
    start = datetime(2025, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def test_parse_ec_certificate_and_verify_raw_signature() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = make_cert(key)
    info = parse_certificate(der)
    assert info.key_algorithm is KeyAlgorithm.EC_P256
    assert info.key_size == 256
    assert info.serial_number == 4242
    assert info.subject_serial == "12345"
    assert "Dr. Test Zdravnik" in info.subject
    assert info.sha256_fingerprint == hashlib.sha256(der).digest()
    assert info.not_after == datetime(2026, 1, 1, tzinfo=UTC)
    assert info.auth_scheme is SignatureScheme.EC_RAW
    digest = hashlib.sha256(b"challenge").digest()
    r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert verify_card_signature(info, digest, raw, SignatureScheme.EC_RAW)
    assert not verify_card_signature(
        info, hashlib.sha256(b"other").digest(), raw, SignatureScheme.EC_RAW
    )


def test_parse_rsa_certificate_and_verify_pss_and_pkcs1() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = parse_certificate(make_cert(key))
    assert info.key_algorithm is KeyAlgorithm.RSA
    assert info.key_size == 2048
    digest = hashlib.sha256(b"document").digest()
    prehashed = utils.Prehashed(hashes.SHA256())
    pss = key.sign(
        digest, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), prehashed
    )
    pkcs1 = key.sign(digest, padding.PKCS1v15(), prehashed)
    assert verify_card_signature(info, digest, pss, SignatureScheme.RSA_PSS)
    assert verify_card_signature(info, digest, pkcs1, SignatureScheme.RSA_PKCS1)
    assert not verify_card_signature(info, digest, pkcs1, SignatureScheme.RSA_PSS)


def test_malformed_certificate_is_a_format_error() -> None:
    with pytest.raises(FormatError):
        parse_certificate(b"\x30\x03\x02\x01\x01")
