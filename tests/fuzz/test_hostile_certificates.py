"""Hostile certificates through every path that loads one from untrusted bytes.

Each certificate of :mod:`fuzz.hostile_certs` breaks one part ``cryptography``
decodes lazily (names, extensions, serial, validity, key, version, signature
algorithm). Whatever path reads it, a card (KZZ and PK, over real APDUs to the
simulated card), a token's ``x5c`` or ``kzzCert``, or a CMS signature, the
outcome is a typed pkcard error or a parsed certificate, never a TypeError,
ValueError or other exception escaping from ``cryptography``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from tokenrig import NOW, DictRegistry, FakeClock, Pki, forge, make_claims, split

import pkcard.cms
import pkcard.simcard.card
from fuzz.hostile_certs import MUTATIONS, hostile_certificates
from fuzz.targets import TARGETS
from pkcard.backend.devpki import KeyKind, card_signer, issue_card_cert
from pkcard.certs import parse_certificate
from pkcard.cms import sign_detached, verify_detached
from pkcard.errors import (
    CertificateError,
    FormatError,
    RefusalReason,
    SignatureRejected,
    SignatureRejection,
    TokenRefused,
)
from pkcard.kzz import HealthInsuranceCard
from pkcard.pk import ProfessionalCard
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import KeyUse
from pkcard.token import Environment, ProofMethod, build_token
from pkcard.verify import InMemoryNonceStore, TokenVerifier

CLIENT = "ws-ljubljana-01"
NAMES = sorted(MUTATIONS)
# The crash input of issue #11 for the ``kzz`` fuzz target: the card's certificate answer is
# replaced so that its subject holds a BIT STRING attribute under another OID than
# x500UniqueIdentifier (cryptography raised TypeError in parse_certificate).
KZZ_CRASH = bytes.fromhex("000f0000 00000010 00000000 000f0000 002b0000")


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.create(Environment.TEST)


@pytest.fixture(scope="module")
def pk_hostile(pki: Pki) -> dict[str, bytes]:
    """Hostile variants of the regular PK's certificate, re-signed by the PK CA."""
    return hostile_certificates(pki.regular.auth.cert, pki.dev.pk_ca.key)


@pytest.fixture(scope="module")
def kzz_hostile(pki: Pki) -> dict[str, bytes]:
    return hostile_certificates(pki.kzz.auth.cert, pki.dev.kzz_ca.key)


def test_the_kzz_crash_input_of_issue_11() -> None:
    TARGETS["kzz"](KZZ_CRASH)


def test_every_part_is_covered(pk_hostile: dict[str, bytes]) -> None:
    """Most variants are refused; those cryptography accepts still parse to a typed result."""
    refused = set()
    for name, der in pk_hostile.items():
        try:
            parse_certificate(der)
        except CertificateError:
            refused.add(name)
    for part in ("subject", "issuer", "ext", "validity", "key", "version"):
        assert any(name.startswith(part) for name in refused), part


@pytest.mark.parametrize("name", NAMES)
def test_parse_certificate(name: str, pk_hostile: dict[str, bytes]) -> None:
    try:
        info = parse_certificate(pk_hostile[name])
    except CertificateError:
        return
    assert info.der == pk_hostile[name]
    assert info.subject
    assert info.issuer


def _serving(monkeypatch: pytest.MonkeyPatch, der: bytes, use: KeyUse) -> None:
    """Simulated cards built from now on hold ``der`` as their ``use`` certificate."""
    original = pkcard.simcard.card._certificate_der

    def served(spec: Any) -> bytes:
        return der if spec.use == use else original(spec)

    monkeypatch.setattr(pkcard.simcard.card, "_certificate_der", served)


def _card(profile: str) -> InProcessConnection:
    return InProcessConnection(SimulatedCard.from_profile(load_profile(profile)))


@pytest.mark.parametrize("name", NAMES)
def test_kzz_read_card(name: str, kzz_hostile: dict[str, bytes],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    _serving(monkeypatch, kzz_hostile[name], KeyUse.AUTHENTICATION)
    try:
        data = HealthInsuranceCard.over(_card("kzz")).read_card()
    except CertificateError:
        return
    assert data.certificate.der == kzz_hostile[name]


@pytest.mark.parametrize("use", [KeyUse.AUTHENTICATION, KeyUse.SIGNATURE])
@pytest.mark.parametrize("name", NAMES)
def test_pk_read_card(name: str, use: KeyUse, pk_hostile: dict[str, bytes],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    _serving(monkeypatch, pk_hostile[name], use)
    try:
        data = ProfessionalCard.over(_card("pk-regular")).read_card()
    except CertificateError:
        return
    got = data.auth_certificate if use is KeyUse.AUTHENTICATION else data.kpep_certificate
    assert got is not None
    assert got.der == pk_hostile[name]


@pytest.fixture
def verifier(pki: Pki) -> tuple[TokenVerifier, InMemoryNonceStore]:
    nonces = InMemoryNonceStore()
    return TokenVerifier(pki.anchors(), DictRegistry.for_pki(pki), nonces, FakeClock(NOW),
                        environment=Environment.TEST,
                        restricted_authorizations={"I002"}), nonces


def _verified_or_refused(verify: Callable[[], object]) -> None:
    """A token with a hostile certificate is refused, or (serials and times cryptography
    accepts, properly signed by the CA) verifies; nothing else escapes."""
    try:
        verify()
    except TokenRefused as exc:
        reason: RefusalReason | None = exc.reason
    else:
        reason = None
    assert reason is None or isinstance(reason, RefusalReason)


@pytest.mark.parametrize("name", NAMES)
def test_token_x5c(name: str, pki: Pki, pk_hostile: dict[str, bytes],
                   verifier: tuple[TokenVerifier, InMemoryNonceStore]) -> None:
    check, nonces = verifier
    nonce = nonces.issue(CLIENT, NOW)
    claims = make_claims(pki, pki.regular, nonce, restricted=ProofMethod.RESTRICTED_EMERGENCY)
    header, payload, _ = split(build_token(claims, [pki.regular.auth.cert], _signer(pki)))
    header["x5c"] = [base64.b64encode(pk_hostile[name]).decode()]
    token = forge(header, payload, pki.regular)
    _verified_or_refused(lambda: check.verify(token, CLIENT))


@pytest.mark.parametrize("name", NAMES)
def test_token_kzz_cert(name: str, pki: Pki, kzz_hostile: dict[str, bytes],
                        verifier: tuple[TokenVerifier, InMemoryNonceStore]) -> None:
    check, nonces = verifier
    nonce = nonces.issue(CLIENT, NOW)
    claims = make_claims(pki, pki.regular, nonce, kzz_cert=kzz_hostile[name])
    token = build_token(claims, [pki.regular.auth.cert], _signer(pki))
    _verified_or_refused(lambda: check.verify(token, CLIENT))


def _signer(pki: Pki) -> Callable[[bytes], bytes]:
    return card_signer(pki.regular.auth.key)


def test_build_token_with_an_unknown_key_type(pki: Pki, pk_hostile: dict[str, bytes]) -> None:
    """The daemon signs tokens over the PK's certificate; an unknown key is a typed error."""
    cert = x509.load_der_x509_certificate(pk_hostile["key-unknown-algorithm"])
    claims = make_claims(pki, pki.regular, bytes(32), restricted=ProofMethod.RESTRICTED_EMERGENCY)
    with pytest.raises(FormatError):
        build_token(claims, [cert], _signer(pki))


# --- CMS -----------------------------------------------------------------------

DOCUMENT = b"Izvid: hostile certificate test.\n"


@pytest.fixture(scope="module")
def rsa_signer(pki: Pki) -> tuple[rsa.RSAPrivateKey, dict[str, bytes]]:
    """An RSA KPEP-like card certificate and its hostile variants (same key)."""
    issued = issue_card_cert(pki.dev.pk_ca, "Dr Ana Test", "10001", KeyKind.RSA_2048,
                             not_before=NOW - timedelta(days=10),
                             not_after=NOW + timedelta(days=100))
    assert isinstance(issued.key, rsa.RSAPrivateKey)
    return issued.key, hostile_certificates(issued.cert, pki.dev.pk_ca.key)


def _pkcs1(key: rsa.RSAPrivateKey) -> Callable[[bytes], bytes]:
    return lambda digest: key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


@pytest.mark.parametrize("name", NAMES)
def test_cms_sign_with_a_hostile_certificate(
    name: str, rsa_signer: tuple[rsa.RSAPrivateKey, dict[str, bytes]]
) -> None:
    key, hostile = rsa_signer
    with contextlib.suppress(FormatError):  # CertificateError: refused before the card signs
        sign_detached(DOCUMENT, hostile[name], _pkcs1(key), signing_time=NOW)


# asn1crypto cannot read this issuer, so no SignerInfo can name it (the signer is then
# not found); the issuer is covered by the other paths.
@pytest.mark.parametrize("name", [n for n in NAMES if n != "issuer-bitstring-cn"])
def test_cms_verify_with_a_hostile_certificate(
    name: str, pki: Pki, rsa_signer: tuple[rsa.RSAPrivateKey, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signature whose included certificate is hostile, as an attacker would build it."""
    key, hostile = rsa_signer
    # build it as the signer would if it did not check its own certificate
    monkeypatch.setattr(pkcard.cms, "parse_certificate", lambda der: SimpleNamespace(der=der))
    signature = sign_detached(DOCUMENT, hostile[name], _pkcs1(key),
                              signing_time=NOW.astimezone(UTC))
    monkeypatch.undo()
    try:
        info = verify_detached(signature, DOCUMENT, [pki.dev.pk_ca.cert], at=NOW)
    except SignatureRejected as exc:
        rejection = exc.reason
    else:
        rejection = None
    if rejection is not None:
        assert isinstance(rejection, SignatureRejection)
        return
    assert info.signer.der == hostile[name]
    assert info.message_digest == hashlib.sha256(DOCUMENT).digest()
    assert isinstance(info.signing_time, datetime)
