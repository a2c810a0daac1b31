"""Token attacks beyond the session tests: chain shape, cross-card signatures, nested duplicates.

tests/backend/test_token_verify.py already covers alg swaps, jku/jwk/crit and
other header parameters, duplicate top-level keys and foreign CAs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from tokenrig import (
    HOLDER,
    NOW,
    Card,
    DictRegistry,
    FakeClock,
    Pki,
    encode_part,
    forge,
    make_token,
    split,
)

from pkcard.backend.devpki import DevPki, KeyKind, issue_card_cert
from pkcard.errors import RefusalReason, TokenRefused
from pkcard.token import Environment
from pkcard.verify import InMemoryNonceStore, TokenVerifier

CLIENT = "ws-ljubljana-01"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.create(Environment.TEST)


@pytest.fixture
def nonces() -> InMemoryNonceStore:
    return InMemoryNonceStore()


@pytest.fixture
def verifier(pki: Pki, nonces: InMemoryNonceStore) -> TokenVerifier:
    return TokenVerifier(pki.anchors(), DictRegistry.for_pki(pki), nonces, FakeClock(NOW),
                         environment=Environment.TEST, restricted_authorizations={"I002"})


@pytest.fixture
def nonce(nonces: InMemoryNonceStore) -> bytes:
    return nonces.issue(CLIENT, NOW)


def refused(verifier: TokenVerifier, token: str) -> RefusalReason:
    with pytest.raises(TokenRefused) as info:
        verifier.verify(token, CLIENT)
    assert token not in str(info.value)
    return info.value.reason


def _der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()


def test_x5c_in_the_wrong_order_is_refused(verifier: TokenVerifier, pki: Pki,
                                           nonce: bytes) -> None:
    header, payload, _ = split(make_token(pki, pki.regular, nonce))
    header["x5c"] = [_der_b64(pki.dev.pk_ca.cert), *header["x5c"]]
    reason = refused(verifier, forge(header, payload, pki.regular))
    assert reason in {RefusalReason.ALG_KEY_MISMATCH, RefusalReason.CHAIN_INVALID,
                      RefusalReason.KEY_USAGE, RefusalReason.BAD_SIGNATURE}


def test_x5c_with_an_attacker_ca_gains_nothing(verifier: TokenVerifier, pki: Pki,
                                               nonces: InMemoryNonceStore) -> None:
    """An extra CA in x5c is ignored: it adds no trust, and a leaf it issued is refused."""
    attacker = DevPki.create(Environment.TEST, NOW - timedelta(days=400))
    own = issue_card_cert(attacker.pk_ca, "Dr Ana Test", HOLDER, KeyKind.EC_P256,
                          not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=30))
    genuine = make_token(pki, pki.regular, nonces.issue(CLIENT, NOW))
    header, payload, _ = split(genuine)
    header["x5c"] = [*header["x5c"], _der_b64(attacker.pk_ca.cert)]
    extra = forge(header, payload, pki.regular)
    session = verifier.verify(extra, CLIENT)  # the extra certificate is ignored, not trusted
    assert session.card.serial == pki.regular.serial
    assert session.leaf_sha256 == hashlib.sha256(pki.regular.cert_der).digest()
    # A leaf of the attacker's CA, with the attacker's CA in x5c, never verifies.
    header2, payload2, _ = split(make_token(pki, pki.regular, nonces.issue(CLIENT, NOW)))
    header2["x5c"] = [_der_b64(own.cert), _der_b64(attacker.pk_ca.cert)]
    forged_card = Card(pki.regular.serial, pki.regular.role, own)
    assert refused(verifier, forge(header2, payload2, forged_card)) is RefusalReason.CHAIN_INVALID


def test_signature_made_by_another_card_is_refused(verifier: TokenVerifier, pki: Pki,
                                                   nonce: bytes) -> None:
    """A valid ES256 signature, but by the KZZ's key, under the regular PK's certificate."""
    header, payload, _ = split(make_token(pki, pki.regular, nonce))
    assert refused(verifier, forge(header, payload, pki.kzz)) is RefusalReason.BAD_SIGNATURE


def test_signature_of_another_cards_token_moved_onto_this_one(verifier: TokenVerifier,
                                                              pki: Pki, nonces: InMemoryNonceStore
                                                              ) -> None:
    mine = make_token(pki, pki.regular, nonces.issue(CLIENT, NOW))
    other = make_token(pki, pki.backup, nonces.issue(CLIENT, NOW))
    spliced = ".".join([*mine.split(".")[:2], other.split(".")[2]])
    assert refused(verifier, spliced) in {RefusalReason.BAD_SIGNATURE,
                                          RefusalReason.ALG_KEY_MISMATCH}


def test_duplicate_keys_nested_and_escaped_are_refused(verifier: TokenVerifier, pki: Pki,
                                                       nonce: bytes) -> None:
    header, payload, _ = split(make_token(pki, pki.regular, nonce))
    raw = json.dumps(payload, separators=(",", ":"))
    # "nonc\u0065" is "nonce" after JSON unescaping: still a duplicate
    escaped = raw[:-1] + ',"nonc\\u0065":"AAAA"}'
    assert refused(verifier, forge(header, escaped, pki.regular)) is \
        RefusalReason.DUPLICATE_JSON_KEY
    header_raw = json.dumps(header, separators=(",", ":"))[:-1] + ',"typ":"pkcard-session+jwt"}'
    assert refused(verifier, forge(header_raw, payload, pki.regular)) is \
        RefusalReason.DUPLICATE_JSON_KEY


@pytest.mark.parametrize("param", ["jku", "jwk", "crit", "x5u", "b64", "zip"])
def test_dangerous_header_parameters_are_refused_even_with_a_valid_signature(
    verifier: TokenVerifier, pki: Pki, nonce: bytes, param: str
) -> None:
    header, payload, _ = split(make_token(pki, pki.regular, nonce))
    header[param] = {"jku": "https://attacker.example/jwks", "crit": ["b64"], "b64": False,
                     "zip": "DEF"}.get(param, {"kty": "EC"})
    assert refused(verifier, forge(header, payload, pki.regular)) is RefusalReason.BAD_HEADER
    assert encode_part(payload)  # the payload itself was valid
