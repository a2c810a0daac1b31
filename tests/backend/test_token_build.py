"""pkcard.token: claims model, strict codecs, signing input and the KZZ proof binding."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenrig import EXAMPLES, NOW, PATIENT, make_claims, split

from pkcard.backend.devpki import card_signer
from pkcard.errors import FormatError
from pkcard.token import (
    JWS_TYP,
    CardRole,
    Environment,
    Profession,
    ProofMethod,
    SessionClaims,
    b64_decode_strict,
    b64url_decode,
    b64url_encode,
    build_token,
    kzz_proof_digest,
    signing_input,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=300))
def test_b64url_round_trips(data):
    text = b64url_encode(data)
    assert "=" not in text
    assert b64url_decode(text) == data


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .",
               max_size=40))
def test_b64url_decode_accepts_only_canonical_text(text):
    try:
        data = b64url_decode(text)
    except FormatError:
        return
    assert b64url_encode(data) == text


@pytest.mark.parametrize("text", ["A", "AB=", "AF", "A+8", "A/8", "QQ==", " QQ", "QQ\n"])
def test_b64url_decode_refuses_non_canonical(text):
    with pytest.raises(FormatError):
        b64url_decode(text)


@pytest.mark.parametrize("text", ["QQ", "QR==", "Q Q==", "-_8="])
def test_b64_decode_strict_refuses_non_canonical(text):
    with pytest.raises(FormatError):
        b64_decode_strict(text)


def test_kzz_proof_digest_is_the_documented_binding():
    nonce = bytes(range(32))
    expected = hashlib.sha256(b"pkcard-kzz-proof-v1\x00" + nonce + b"PK0000100001").digest()
    assert kzz_proof_digest(nonce, "PK0000100001") == expected
    assert kzz_proof_digest(nonce, "PK0000100002") != expected
    with pytest.raises(FormatError):
        kzz_proof_digest(nonce[:31], "PK0000100001")


def test_token_header_names_alg_typ_and_chain(test_pki):
    token = build_token(make_claims(test_pki, test_pki.regular, b"\x01" * 32),
                        [test_pki.regular.auth.cert], card_signer(test_pki.regular.auth.key))
    header, payload, signature = split(token)
    assert set(header) == {"alg", "typ", "x5c"}
    assert header["alg"] == "ES256"
    assert header["typ"] == JWS_TYP
    assert base64.b64decode(header["x5c"][0]) == test_pki.regular.cert_der
    assert len(signature) == 64
    assert payload["proofMethod"] == "kzz-contact-pcsc"
    assert payload["patientId"] == PATIENT
    assert payload["cardRole"] == "regular"


def test_card_signs_sha256_of_the_signing_input(test_pki):
    claims = make_claims(test_pki, test_pki.regular, b"\x02" * 32)
    seen: list[bytes] = []

    def spy(digest: bytes) -> bytes:
        seen.append(digest)
        return card_signer(test_pki.regular.auth.key)(digest)

    token = build_token(claims, [test_pki.regular.auth.cert], spy)
    data = signing_input(claims, [test_pki.regular.auth.cert])
    assert token.rsplit(".", 1)[0].encode() == data
    assert seen == [hashlib.sha256(data).digest()]
    raw = split(token)[2]
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                     int.from_bytes(raw[32:], "big"))
    public = test_pki.regular.auth.cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, data, ec.ECDSA(hashes.SHA256()))


def test_es256_signer_must_answer_64_bytes(test_pki):
    claims = make_claims(test_pki, test_pki.regular, b"\x03" * 32)
    with pytest.raises(FormatError):
        build_token(claims, [test_pki.regular.auth.cert], lambda digest: b"\x01" * 72)


def test_restricted_claims_need_a_reason_and_no_kzz_proof(test_pki):
    with pytest.raises(FormatError):
        make_claims(test_pki, test_pki.regular, b"\x04" * 32,
                    restricted=ProofMethod.RESTRICTED_EMERGENCY, restricted_reason=" ")
    with pytest.raises(FormatError):
        make_claims(test_pki, test_pki.regular, b"\x04" * 32,
                    restricted=ProofMethod.RESTRICTED_EMERGENCY, patient_id=PATIENT,
                    kzz_serial="KZ1")


@pytest.mark.parametrize("override", [
    {"patient_id": "12345678"},
    {"patient_id": "12345678a"},
    {"kzz_proof": None},
    {"authorizations": ("I002", "I002")},
    {"authorizations": ("i002",)},
    {"actor_id": ""},
    {"nonce": b"\x00" * 16},
    {"version": 2},
])
def test_invalid_claims_are_refused(test_pki, override):
    claims = make_claims(test_pki, test_pki.regular, b"\x05" * 32)
    with pytest.raises(FormatError):
        dataclasses.replace(claims, **override)


_codes = st.lists(st.from_regex(r"[A-Z][A-Z0-9]{1,6}", fullmatch=True), max_size=5, unique=True)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    iat=st.integers(0, 2**33),
    life=st.integers(1, 600),
    nonce=st.binary(min_size=32, max_size=32),
    method=st.sampled_from(ProofMethod),
    profession=st.sampled_from(Profession),
    role=st.sampled_from(CardRole),
    env=st.sampled_from(Environment),
    codes=_codes,
    proof=st.binary(min_size=1, max_size=300),
    cert=st.binary(min_size=1, max_size=300),
    reason=st.text(min_size=1, max_size=50).filter(str.strip),
)
def test_claims_round_trip_through_json(iat, life, nonce, method, profession, role, env, codes,
                                        proof, cert, reason):
    kzz = {} if method.restricted else {
        "patient_id": PATIENT, "patient_proof_time": iat, "kzz_serial": "KZ0000200001",
        "kzz_proof": proof, "kzz_cert": cert}
    claims = SessionClaims(
        iss="ws-1", iat=iat, exp=iat + life, nonce=nonce, proof_method=method, actor_id="10001",
        profession=profession, card_serial="PK0000100001", card_role=role, environment=env,
        authorizations=tuple(codes), restricted_reason=reason if method.restricted else None,
        **kzz,
    )
    wire = json.loads(json.dumps(claims.to_json()))
    assert SessionClaims.from_json(wire) == claims


def test_from_json_refuses_wrong_types():
    good = make_claims_json()
    for key, value in [("iat", "1"), ("iat", True), ("iat", -1), ("iat", 1.5),
                       ("authorizations", "I002"), ("proofMethod", "kzz"),
                       ("environment", "staging"), ("nonce", "AAAA")]:
        bad = dict(good, **{key: value})
        with pytest.raises(FormatError):
            SessionClaims.from_json(bad)


def make_claims_json() -> dict[str, object]:
    iat = int(NOW.timestamp())
    return {
        "version": 1, "iss": "ws-1", "iat": iat, "exp": iat + 60,
        "nonce": b64url_encode(b"\x07" * 32), "proofMethod": "restricted-emergency",
        "actorId": "10001", "profession": "nurse", "cardSerial": "PK0000100001",
        "cardRole": "regular", "environment": "test", "authorizations": ["I002"],
        "restrictedReason": "emergency",
    }
