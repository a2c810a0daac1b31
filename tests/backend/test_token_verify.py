"""pkcard.verify: every refusal with its reason, over tokens signed with real keys."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenrig import (
    EXAMPLES,
    HOLDER,
    NOW,
    PATIENT,
    REGULAR_SERIAL,
    Card,
    DictRegistry,
    FakeClock,
    Pki,
    b64url_encode,
    encode_part,
    forge,
    make_token,
    split,
)

from pkcard.backend.devpki import KeyKind, issue_card_cert
from pkcard.errors import RefusalReason, TokenRefused
from pkcard.token import CardRole, Environment, JwsAlgorithm, ProofMethod
from pkcard.verify import (
    CardRecord,
    CardStatus,
    InMemoryNonceStore,
    SessionScope,
    TokenVerifier,
    VerifiedSession,
)

P256_N = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
CLIENT = "ws-ljubljana-01"


def refused(verifier: TokenVerifier, token: str, client: str = CLIENT) -> RefusalReason:
    with pytest.raises(TokenRefused) as info:
        verifier.verify(token, client)
    return info.value.reason


@pytest.fixture
def nonce(nonces: InMemoryNonceStore) -> bytes:
    return nonces.issue(CLIENT, NOW)


# --- accepted tokens ---------------------------------------------------------


def test_es256_kzz_token_is_accepted_with_full_scope(verifier, test_pki, nonce):
    session = verifier.verify(make_token(test_pki, test_pki.regular, nonce), CLIENT)
    assert session.scope is SessionScope.FULL
    assert session.algorithm is JwsAlgorithm.ES256
    assert session.granted == {"I002", "I003"}
    assert session.claims.patient_id == PATIENT
    assert session.card.serial == REGULAR_SERIAL


def test_ps256_token_from_an_rsa_card_is_accepted(verifier, test_pki, nonce):
    session = verifier.verify(make_token(test_pki, test_pki.backup, nonce), CLIENT)
    assert session.algorithm is JwsAlgorithm.PS256
    assert split(make_token(test_pki, test_pki.backup, nonce))[0]["alg"] == "PS256"


def test_restricted_token_gets_only_the_restricted_scope(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce,
                       restricted=ProofMethod.RESTRICTED_EMERGENCY)
    session = verifier.verify(token, CLIENT)
    assert session.scope is SessionScope.RESTRICTED
    assert session.granted == {"I002"}
    assert session.claims.patient_id is None


def test_restricted_token_without_restricted_codes_is_refused(test_pki, dict_registry, nonces,
                                                              clock):
    strict = TokenVerifier(test_pki.anchors(), dict_registry, nonces, clock,
                           environment=Environment.TEST)
    nonce = nonces.issue(CLIENT, NOW)
    token = make_token(test_pki, test_pki.regular, nonce,
                       restricted=ProofMethod.RESTRICTED_PATIENT_ABSENT)
    assert refused(strict, token) is RefusalReason.NO_AUTHORIZATION


def test_restricted_token_needs_a_reason(verifier, test_pki, nonce):
    header, payload, _ = split(make_token(test_pki, test_pki.regular, nonce,
                                          restricted=ProofMethod.RESTRICTED_KZZ_UNUSABLE))
    del payload["restrictedReason"]
    assert refused(verifier, forge(header, payload, test_pki.regular)) is \
        RefusalReason.CLAIMS_INVALID


def test_restricted_token_may_not_carry_a_kzz_proof(verifier, test_pki, nonce):
    header, payload, _ = split(make_token(test_pki, test_pki.regular, nonce))
    payload["proofMethod"] = "restricted-emergency"
    payload["restrictedReason"] = "emergency"
    assert refused(verifier, forge(header, payload, test_pki.regular)) is \
        RefusalReason.CLAIMS_INVALID


# --- structure, encoding, header -----------------------------------------------


def test_tampered_payload_is_refused(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce)
    header, payload, signature = split(token)
    payload["authorizations"] = ["I002", "I003", "I009"]
    tampered = forge(header, payload, None, signature)
    assert refused(verifier, tampered) is RefusalReason.BAD_SIGNATURE


def test_signature_of_another_token_is_refused(verifier, test_pki, nonces, nonce):
    other = make_token(test_pki, test_pki.regular, nonces.issue(CLIENT, NOW))
    token = make_token(test_pki, test_pki.regular, nonce)
    spliced = token.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]
    assert refused(verifier, spliced) is RefusalReason.BAD_SIGNATURE


def test_alg_none_is_refused(verifier, test_pki, nonce):
    header, payload, _ = split(make_token(test_pki, test_pki.regular, nonce))
    header["alg"] = "none"
    assert refused(verifier, forge(header, payload, None, b"x")) is RefusalReason.ALG_NOT_ALLOWED


def test_hs256_with_the_public_certificate_as_key_is_refused(verifier, test_pki, nonce):
    header, payload, _ = split(make_token(test_pki, test_pki.regular, nonce))
    header["alg"] = "HS256"
    data = f"{encode_part(header)}.{encode_part(payload)}".encode()
    mac = hmac.new(test_pki.regular.cert_der, data, hashlib.sha256).digest()
    assert refused(verifier, forge(header, payload, None, mac)) is RefusalReason.ALG_NOT_ALLOWED


@pytest.mark.parametrize(("card_name", "claimed"), [("regular", "PS256"), ("backup", "ES256")])
def test_algorithm_swap_is_refused(verifier, test_pki, nonce, card_name, claimed):
    card = getattr(test_pki, card_name)
    header, payload, _ = split(make_token(test_pki, card, nonce))
    header["alg"] = claimed
    assert refused(verifier, forge(header, payload, card)) is RefusalReason.ALG_KEY_MISMATCH


@pytest.mark.parametrize("param", ["jku", "jwk", "crit", "x5u", "kid", "x5t#S256"])
def test_header_parameters_outside_the_allow_list_are_refused(verifier, test_pki, nonce, param):
    header, payload, _ = split(make_token(test_pki, test_pki.regular, nonce))
    header[param] = ["alg"] if param == "crit" else "https://attacker.example/key"
    assert refused(verifier, forge(header, payload, test_pki.regular)) is RefusalReason.BAD_HEADER


def test_wrong_typ_is_refused(verifier, test_pki, nonce):
    header, payload, _ = split(make_token(test_pki, test_pki.regular, nonce))
    header["typ"] = "JWT"
    assert refused(verifier, forge(header, payload, test_pki.regular)) is RefusalReason.BAD_HEADER


def test_duplicate_json_keys_are_refused(verifier, test_pki, nonce):
    header, payload, _ = split(make_token(test_pki, test_pki.regular, nonce))
    body = encode_part(payload)
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    duplicated = raw[:-1] + ',"actorId":"99999"}'
    assert refused(verifier, forge(header, duplicated, test_pki.regular)) is \
        RefusalReason.DUPLICATE_JSON_KEY
    header_raw = '{"alg":"ES256","alg":"ES256","typ":"pkcard-session+jwt","x5c":[]}'
    assert refused(verifier, forge(header_raw, payload, test_pki.regular)) is \
        RefusalReason.DUPLICATE_JSON_KEY


def test_unknown_claims_are_refused(verifier, test_pki, nonce):
    header, payload, _ = split(make_token(test_pki, test_pki.regular, nonce))
    payload["admin"] = True
    assert refused(verifier, forge(header, payload, test_pki.regular)) is \
        RefusalReason.CLAIMS_INVALID


def test_other_token_version_is_refused(verifier, test_pki, nonce):
    header, payload, _ = split(make_token(test_pki, test_pki.regular, nonce))
    payload["version"] = 2
    assert refused(verifier, forge(header, payload, test_pki.regular)) is \
        RefusalReason.VERSION_UNSUPPORTED


@pytest.mark.parametrize("mangle", [
    lambda t: t + "=",
    lambda t: t.replace(".", "=.", 1),
    lambda t: t + ".e30",
    lambda t: t.split(".", 1)[1],
    lambda t: "e30..sig",
    lambda t: t.replace(t[5], "+", 1),
    lambda t: t + " ",
])
def test_malformed_encodings_are_refused(verifier, test_pki, nonce, mangle):
    token = mangle(make_token(test_pki, test_pki.regular, nonce))
    assert refused(verifier, token) in {RefusalReason.MALFORMED, RefusalReason.BAD_SIGNATURE}


def test_oversized_tokens_are_refused(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce)
    header, payload, signature = token.split(".")
    assert refused(verifier, token + "A" * 20000) is RefusalReason.TOO_LARGE
    assert refused(verifier, f"{header}.{payload}{'A' * 7000}.{signature}") is \
        RefusalReason.TOO_LARGE


# --- certificates ---------------------------------------------------------------


def test_certificate_from_another_ca_is_refused(verifier, prod_pki, test_pki, nonce):
    foreign = Card(REGULAR_SERIAL, CardRole.REGULAR, prod_pki.regular.auth)
    header, payload, _ = split(make_token(test_pki, foreign, nonce))
    assert refused(verifier, forge(header, payload, foreign)) is RefusalReason.CHAIN_INVALID


def test_expired_certificate_is_refused(verifier, test_pki, nonce):
    expired = issue_card_cert(test_pki.dev.pk_ca, "Dr Ana Test", HOLDER, KeyKind.EC_P256,
                              not_before=NOW - timedelta(days=800),
                              not_after=NOW - timedelta(days=1))
    card = Card(REGULAR_SERIAL, CardRole.REGULAR, expired)
    assert refused(verifier, make_token(test_pki, card, nonce)) is RefusalReason.CHAIN_INVALID


def test_certificate_without_digital_signature_is_refused(verifier, test_pki, nonce):
    issued = issue_card_cert(test_pki.dev.pk_ca, "Dr Ana Test", HOLDER, KeyKind.EC_P256,
                             not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=9),
                             digital_signature=False)
    card = Card(REGULAR_SERIAL, CardRole.REGULAR, issued)
    assert refused(verifier, make_token(test_pki, card, nonce)) is RefusalReason.KEY_USAGE


def test_ca_certificate_as_leaf_is_refused(verifier, test_pki, nonce):
    ca_as_card = Card(REGULAR_SERIAL, CardRole.REGULAR, test_pki.dev.pk_ca)
    assert refused(verifier, make_token(test_pki, ca_as_card, nonce)) in {
        RefusalReason.CHAIN_INVALID, RefusalReason.KEY_USAGE}


def test_another_registered_card_certificate_is_refused(test_pki, nonces, clock, nonce):
    registry = DictRegistry.for_pki(test_pki)
    record = registry.cards[REGULAR_SERIAL]
    registry.cards[REGULAR_SERIAL] = CardRecord(record.serial, record.holder_id, record.role,
                                                record.status, b"\x00" * 32)
    verifier = TokenVerifier(test_pki.anchors(), registry, nonces, clock,
                             environment=Environment.TEST)
    token = make_token(test_pki, test_pki.regular, nonce)
    assert refused(verifier, token) is RefusalReason.CARD_CERT_MISMATCH


def test_chain_cache_honours_certificate_validity(verifier, test_pki, nonces, clock):
    short = issue_card_cert(test_pki.dev.pk_ca, "Dr Ana Test", HOLDER, KeyKind.EC_P256,
                            not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(hours=1))
    card = Card(REGULAR_SERIAL, CardRole.REGULAR, short)
    registry_free = TokenVerifier(test_pki.anchors(), DictRegistry.for_pki(test_pki), nonces,
                                  clock, environment=Environment.TEST)
    first = nonces.issue(CLIENT, NOW)
    with pytest.raises(TokenRefused) as info:  # cached chain, then a registry refusal
        registry_free.verify(make_token(test_pki, card, first), CLIENT)
    assert info.value.reason is RefusalReason.CARD_CERT_MISMATCH
    clock.advance(2 * 3600)  # the same certificate chain, now expired
    later = nonces.issue(CLIENT, clock.now)
    token = make_token(test_pki, card, later, now=clock.now)
    assert refused(registry_free, token) is RefusalReason.CHAIN_INVALID


def test_actor_must_match_the_certificate_holder(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce, actor_id="20002")
    assert refused(verifier, token) is RefusalReason.HOLDER_MISMATCH


# --- malformed signatures (Wycheproof-style) -----------------------------------


def _es256_with(token: str, signature: bytes) -> str:
    return token.rsplit(".", 1)[0] + "." + b64url_encode(signature)


def _int32(value: int) -> bytes:
    return value.to_bytes(32, "big")


@pytest.mark.parametrize("make_sig", [
    lambda r, s: _int32(0) + _int32(0),
    lambda r, s: _int32(r) + _int32(0),
    lambda r, s: _int32(0) + _int32(s),
    lambda r, s: _int32(P256_N) + _int32(s),
    lambda r, s: _int32(r) + _int32(P256_N),
    lambda r, s: _int32(r + P256_N) + _int32(s) if r + P256_N < 2**256 else b"\xff" * 64,
    lambda r, s: _int32(r) + _int32(s) + b"\x00",
    lambda r, s: b"\x00" + _int32(r) + _int32(s),
    lambda r, s: _int32(r) + _int32(s)[:-1],
    utils.encode_dss_signature,
    lambda r, s: b"",
    lambda r, s: _int32(s) + _int32(r),
], ids=["r=s=0", "s=0", "r=0", "r=n", "s=n", "r+n", "65 bytes", "leading zero", "63 bytes",
        "DER", "empty", "swapped"])
def test_malformed_ecdsa_signatures_are_refused(verifier, test_pki, nonce, make_sig):
    token = make_token(test_pki, test_pki.regular, nonce)
    raw = split(token)[2]
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    bad = make_sig(r, s)
    if not bad:
        assert refused(verifier, token.rsplit(".", 1)[0] + ".") is RefusalReason.MALFORMED
        return
    assert refused(verifier, _es256_with(token, bad)) is RefusalReason.BAD_SIGNATURE
    # the intact token still passes: the refusals above were about the signature
    assert verifier.verify(token, CLIENT).granted


@pytest.mark.parametrize("scheme", ["pkcs1", "pss-salt-0", "pss-max-salt", "truncated"])
def test_wrong_rsa_signature_schemes_are_refused(verifier, test_pki, nonce, scheme):
    token = make_token(test_pki, test_pki.backup, nonce)
    data = token.rsplit(".", 1)[0].encode()
    key = test_pki.backup.auth.key
    assert isinstance(key, rsa.RSAPrivateKey)
    if scheme == "pkcs1":
        sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    elif scheme == "truncated":
        sig = split(token)[2][:-1]
    else:
        salt = 0 if scheme == "pss-salt-0" else padding.PSS.MAX_LENGTH
        sig = key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt),
                       hashes.SHA256())
    assert refused(verifier, _es256_with(token, sig)) is RefusalReason.BAD_SIGNATURE


# --- nonces -------------------------------------------------------------------------


def test_reused_nonce_is_refused(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce)
    verifier.verify(token, CLIENT)
    assert refused(verifier, token) is RefusalReason.NONCE_REUSED


def test_expired_nonce_is_refused(verifier, test_pki, nonce, clock):
    clock.advance(121)
    token = make_token(test_pki, test_pki.regular, nonce, now=clock.now)
    assert refused(verifier, token) is RefusalReason.NONCE_EXPIRED


def test_nonce_not_issued_is_refused(verifier, test_pki):
    token = make_token(test_pki, test_pki.regular, b"\x42" * 32)
    assert refused(verifier, token) is RefusalReason.NONCE_UNKNOWN


def test_token_redeemed_by_another_client_is_refused(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce)
    assert refused(verifier, token, "ws-maribor-07") is RefusalReason.NONCE_FOREIGN_CLIENT
    assert verifier.verify(token, CLIENT).granted  # the owner's challenge was not burnt


def test_forged_token_does_not_burn_the_nonce(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce)
    header, payload, signature = split(token)
    payload["iss"] = "attacker"
    assert refused(verifier, forge(header, payload, None, signature)) is \
        RefusalReason.BAD_SIGNATURE
    assert verifier.verify(token, CLIENT).granted


@pytest.mark.parametrize("restricted", [None, ProofMethod.RESTRICTED_EMERGENCY])
def test_a_verified_session_is_a_complete_frozen_record(verifier, test_pki, nonce, restricted):
    """The verifier builds its results without __init__: they equal the constructor's."""
    session = verifier.verify(make_token(test_pki, test_pki.regular, nonce,
                                         restricted=restricted), CLIENT)
    assert set(vars(session)) == {field.name for field in dataclasses.fields(VerifiedSession)}
    assert session == VerifiedSession(**vars(session))
    assert session.claims == dataclasses.replace(session.claims)  # __init__ checks pass
    assert not session.activates_backup
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.scope = SessionScope.FULL  # type: ignore[misc]


# --- times -----------------------------------------------------------------------------


def test_token_from_the_future_is_refused(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce, now=NOW + timedelta(minutes=5))
    assert refused(verifier, token) is RefusalReason.CLOCK_SKEW


def test_small_clock_skew_is_tolerated(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce, now=NOW + timedelta(seconds=30))
    assert verifier.verify(token, CLIENT).granted


def test_long_lived_token_is_refused(verifier, test_pki, nonce):
    iat = int(NOW.timestamp())
    token = make_token(test_pki, test_pki.regular, nonce, exp=iat + 11 * 60)
    assert refused(verifier, token) is RefusalReason.LIFETIME_TOO_LONG


@pytest.mark.parametrize("iat", [253402300800, 2**40 - 1000])  # after the year 9999
def test_times_past_what_datetime_holds_are_refused_with_a_reason(verifier, test_pki, nonce,
                                                                  iat):
    """Claims allow times up to 2**40 s: the time checks refuse them, they never raise."""
    for restricted in (None, ProofMethod.RESTRICTED_EMERGENCY):
        token = make_token(test_pki, test_pki.regular, nonce, exp=iat + 300, iat=iat,
                           restricted=restricted,
                           **({} if restricted else {"patient_proof_time": iat}))
        assert refused(verifier, token) is RefusalReason.CLOCK_SKEW
    token = make_token(test_pki, test_pki.regular, nonce, patient_proof_time=2**40 - 1)
    assert refused(verifier, token) is RefusalReason.CLAIMS_INVALID


def test_expired_token_is_refused(verifier, test_pki, nonce, clock):
    token = make_token(test_pki, test_pki.regular, nonce)
    clock.advance(300 + 61)
    assert refused(verifier, token) is RefusalReason.TOKEN_EXPIRED


# --- the KZZ proof ---------------------------------------------------------------------


def test_kzz_proof_over_another_challenge_is_refused(verifier, test_pki, nonces, nonce):
    other = nonces.issue(CLIENT, NOW)
    token = make_token(test_pki, test_pki.regular, nonce, proof_nonce=other)
    assert refused(verifier, token) is RefusalReason.KZZ_PROOF_INVALID


def test_kzz_proof_made_for_another_pk_card_is_refused(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce)
    header, payload, _ = split(token)
    payload["cardSerial"] = "PK0000100002"
    payload["cardRole"] = "backup"
    backup_token = forge(header, payload, test_pki.regular)
    assert refused(verifier, backup_token) is RefusalReason.KZZ_PROOF_INVALID


def test_kzz_certificate_from_the_pk_ca_is_refused(verifier, test_pki, nonce):
    pk_as_kzz = Card("KZ0000200001", CardRole.REGULAR, test_pki.regular.auth)
    token = make_token(test_pki, test_pki.regular, nonce, kzz=pk_as_kzz)
    assert refused(verifier, token) is RefusalReason.KZZ_CHAIN_INVALID


def test_kzz_certificate_of_another_patient_is_refused(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce, patient_id="987654321")
    assert refused(verifier, token) is RefusalReason.KZZ_PROOF_INVALID


def test_rsa_kzz_proof_verifies(verifier, test_pki, nonce):
    rsa_kzz = issue_card_cert(test_pki.dev.kzz_ca, "KZZ", PATIENT, KeyKind.RSA_2048,
                              not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=9))
    token = make_token(test_pki, test_pki.regular, nonce,
                       kzz=Card("KZ0000200001", CardRole.REGULAR, rsa_kzz))
    assert verifier.verify(token, CLIENT).scope is SessionScope.FULL


# --- environments ------------------------------------------------------------------


def _verifier_for(pki: Pki, clock: FakeClock, nonces: InMemoryNonceStore) -> TokenVerifier:
    return TokenVerifier(pki.anchors(), DictRegistry.for_pki(pki), nonces, clock,
                         environment=pki.environment)


def test_test_token_at_production_verifier_is_refused(test_pki, prod_pki, clock, nonces, nonce):
    production = _verifier_for(prod_pki, clock, nonces)
    token = make_token(test_pki, test_pki.regular, nonce)
    assert refused(production, token) is RefusalReason.ENVIRONMENT_MISMATCH
    lying = make_token(test_pki, test_pki.regular, nonce, environment=Environment.PRODUCTION)
    assert refused(production, lying) is RefusalReason.CHAIN_INVALID


def test_production_token_at_test_verifier_is_refused(test_pki, prod_pki, clock, nonces, nonce):
    test_verifier = _verifier_for(test_pki, clock, nonces)
    token = make_token(prod_pki, prod_pki.regular, nonce)
    assert refused(test_verifier, token) is RefusalReason.ENVIRONMENT_MISMATCH
    lying = make_token(prod_pki, prod_pki.regular, nonce, environment=Environment.TEST)
    assert refused(test_verifier, lying) is RefusalReason.CHAIN_INVALID


def test_production_token_at_production_verifier_is_accepted(prod_pki, clock, nonces, nonce):
    production = _verifier_for(prod_pki, clock, nonces)
    assert production.verify(make_token(prod_pki, prod_pki.regular, nonce), CLIENT).granted


def test_anchors_of_another_environment_are_rejected_at_construction(test_pki, clock, nonces):
    with pytest.raises(ValueError, match="environment"):
        TokenVerifier(test_pki.anchors(), DictRegistry(), nonces, clock,
                      environment=Environment.PRODUCTION)


# --- registry ------------------------------------------------------------------------


def _with_status(test_pki: Pki, status: CardStatus, role: CardRole = CardRole.REGULAR):
    registry = DictRegistry.for_pki(test_pki)
    record = registry.cards[REGULAR_SERIAL]
    registry.cards[REGULAR_SERIAL] = CardRecord(record.serial, record.holder_id, role, status,
                                                record.auth_cert_sha256)
    return registry


@pytest.mark.parametrize(("status", "reason"), [
    (CardStatus.REVOKED, RefusalReason.CARD_REVOKED),
    (CardStatus.INACTIVE, RefusalReason.REGULAR_CARD_DEACTIVATED),
    (CardStatus.STANDBY, RefusalReason.CARD_INACTIVE),
])
def test_card_status_refusals(test_pki, nonces, clock, nonce, status, reason):
    verifier = TokenVerifier(test_pki.anchors(), _with_status(test_pki, status), nonces, clock,
                             environment=Environment.TEST)
    with pytest.raises(TokenRefused) as info:
        verifier.verify(make_token(test_pki, test_pki.regular, nonce), CLIENT)
    assert info.value.reason is reason
    if reason is RefusalReason.REGULAR_CARD_DEACTIVATED:
        assert "pkpin reactivate" in info.value.detail


def test_card_role_must_match_registry(test_pki, nonces, clock, nonce):
    registry = _with_status(test_pki, CardStatus.ACTIVE, CardRole.BACKUP)
    verifier = TokenVerifier(test_pki.anchors(), registry, nonces, clock,
                             environment=Environment.TEST)
    token = make_token(test_pki, test_pki.regular, nonce)
    assert refused(verifier, token) is RefusalReason.CARD_ROLE_MISMATCH


def test_unknown_card_is_refused(verifier, test_pki, nonce):
    unknown = Card("PK0000999999", CardRole.REGULAR, test_pki.regular.auth)
    assert refused(verifier, make_token(test_pki, unknown, nonce)) is RefusalReason.CARD_UNKNOWN


def test_withdrawn_authorizations_are_not_granted(test_pki, nonces, clock, nonce):
    registry = DictRegistry.for_pki(test_pki)
    registry.grants[HOLDER] = frozenset({"I003"})
    verifier = TokenVerifier(test_pki.anchors(), registry, nonces, clock,
                             environment=Environment.TEST)
    session = verifier.verify(make_token(test_pki, test_pki.regular, nonce), CLIENT)
    assert session.granted == {"I003"}
    registry.grants[HOLDER] = frozenset()
    second = nonces.issue(CLIENT, NOW)
    token = make_token(test_pki, test_pki.regular, second)
    assert refused(verifier, token) is RefusalReason.NO_AUTHORIZATION


def test_refusal_text_never_quotes_the_token(verifier, test_pki, nonce):
    token = make_token(test_pki, test_pki.regular, nonce)
    header, payload, signature = split(token)
    payload["iss"] = "x"
    with pytest.raises(TokenRefused) as info:
        verifier.verify(forge(header, payload, None, signature), CLIENT)
    text = str(info.value)
    for part in token.split("."):
        assert part[:16] not in text


def test_ec_key_on_another_curve_is_refused(verifier, test_pki, nonce):
    p384 = ec.generate_private_key(ec.SECP384R1())
    issued = issue_card_cert(test_pki.dev.pk_ca, "Dr Ana Test", HOLDER, KeyKind.EC_P256,
                             not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=9),
                             key=p384)
    card = Card(REGULAR_SERIAL, CardRole.REGULAR, issued)
    header, payload, _ = split(make_token(test_pki, test_pki.regular, nonce))
    header["x5c"] = [base64.b64encode(card.cert_der).decode()]
    data = f"{encode_part(header)}.{encode_part(payload)}".encode()
    der = p384.sign(data, ec.ECDSA(hashes.SHA256()))
    assert refused(verifier, forge(header, payload, None, der)) is RefusalReason.ALG_KEY_MISMATCH


# --- fuzzing: nothing but TokenRefused ever comes out --------------------------------


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_is_refused_cleanly(test_pki, text):
    verifier = TokenVerifier(test_pki.anchors(), DictRegistry.for_pki(test_pki),
                             InMemoryNonceStore(), FakeClock(), environment=Environment.TEST)
    with pytest.raises(TokenRefused):
        verifier.verify(text, CLIENT)


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_mutated_tokens_are_refused_cleanly(test_pki, data):
    store = InMemoryNonceStore()
    verifier = TokenVerifier(test_pki.anchors(), DictRegistry.for_pki(test_pki), store,
                             FakeClock(), environment=Environment.TEST)
    token = make_token(test_pki, test_pki.regular, store.issue(CLIENT, NOW))
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\"\x00é"))
    mutated = token[:position] + replacement + token[position + 1:]
    if mutated == token:
        return
    with pytest.raises(TokenRefused):
        verifier.verify(mutated, CLIENT)


def test_actor_must_match_the_certificate_even_when_the_registry_agrees(test_pki, nonces, clock,
                                                                        nonce):
    registry = DictRegistry.for_pki(test_pki)
    record = registry.cards[REGULAR_SERIAL]
    registry.cards[REGULAR_SERIAL] = CardRecord(record.serial, "20002", record.role,
                                                record.status, record.auth_cert_sha256)
    registry.grants["20002"] = frozenset({"I002"})
    verifier = TokenVerifier(test_pki.anchors(), registry, nonces, clock,
                             environment=Environment.TEST)
    token = make_token(test_pki, test_pki.regular, nonce, actor_id="20002")
    assert refused(verifier, token) is RefusalReason.HOLDER_MISMATCH
