"""Detached CAdES-BES signatures made by the simulated PK, checked by pkcard and by openssl."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from pkcard.cms import sign_detached, verify_detached
from pkcard.errors import FormatError, SignatureRejected, SignatureRejection
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef

PKI = Path(__file__).resolve().parents[2] / "fixtures" / "pki"
TEST_PK_CA = PKI / "ca" / "test-pk" / "ca-cert.pem"
PROD_PK_CA = PKI / "ca" / "prod-pk" / "ca-cert.pem"
DOCUMENT = b"Izvid: pacientka je zdrava.\nPodpisano s KPEP.\n"
SIGNED_AT = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)


def _anchor(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def signature() -> bytes:
    """A detached CMS signature of DOCUMENT by the simulated pk-regular, SPIN each time."""
    profile = load_profile("pk-regular")
    card = ProfessionalCard.over(InProcessConnection(SimulatedCard.from_profile(profile)))
    kpep = card.read_card().kpep_certificate
    assert kpep is not None

    def sign(digest: bytes) -> bytes:
        with Secret(profile.secret_value(SecretRef.SPIN)) as spin:
            return card.sign(digest, spin)

    return sign_detached(DOCUMENT, kpep.der, sign, signing_time=SIGNED_AT)


def _openssl_verify(
    tmp_path: Path, signature: bytes, document: bytes
) -> subprocess.CompletedProcess[bytes]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    (tmp_path / "sig.p7s").write_bytes(signature)
    (tmp_path / "doc").write_bytes(document)
    return subprocess.run(
        [
            openssl,
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "sig.p7s"),
            "-content",
            str(tmp_path / "doc"),
            "-CAfile",
            str(TEST_PK_CA),
            "-purpose",
            "any",
            "-attime",
            str(int(SIGNED_AT.timestamp())),
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        check=False,
    )


def test_openssl_accepts_the_signature(tmp_path: Path, signature: bytes) -> None:
    result = _openssl_verify(tmp_path, signature, DOCUMENT)
    assert result.returncode == 0, result.stderr.decode()
    assert b"Verification successful" in result.stderr


def test_openssl_refuses_a_tampered_document(tmp_path: Path, signature: bytes) -> None:
    result = _openssl_verify(tmp_path, signature, DOCUMENT + b" ")
    assert result.returncode != 0


def test_pkcard_verifies_the_signature(signature: bytes) -> None:
    info = verify_detached(signature, DOCUMENT, [_anchor(TEST_PK_CA)])
    assert info.signing_time == SIGNED_AT
    assert info.signer.subject_serial == "90001"
    assert "pkcard TEST PK CA" in info.trust_anchor


def test_cades_bes_attributes(signature: bytes) -> None:
    signer = cms.ContentInfo.load(signature)["content"]["signer_infos"][0]
    types = {attr["type"].native for attr in signer["signed_attrs"]}
    assert types == {"content_type", "message_digest", "signing_time", "signing_certificate_v2"}
    content = cms.ContentInfo.load(signature)["content"]["encap_content_info"]["content"]
    assert content.native is None  # detached


def test_pkcard_refuses_a_tampered_document(signature: bytes) -> None:
    with pytest.raises(SignatureRejected) as refused:
        verify_detached(signature, DOCUMENT + b" ", [_anchor(TEST_PK_CA)])
    assert refused.value.reason is SignatureRejection.DIGEST_MISMATCH


def test_pkcard_refuses_a_foreign_ca(signature: bytes) -> None:
    with pytest.raises(SignatureRejected) as refused:
        verify_detached(signature, DOCUMENT, [_anchor(PROD_PK_CA)])
    assert refused.value.reason is SignatureRejection.CHAIN_INVALID


def test_pkcard_refuses_a_flipped_signature_bit(signature: bytes) -> None:
    info = cms.ContentInfo.load(signature)
    signer = info["content"]["signer_infos"][0]
    raw = bytearray(signer["signature"].native)
    raw[10] ^= 0x01
    signer["signature"] = bytes(raw)
    with pytest.raises(SignatureRejected) as refused:
        verify_detached(info.dump(force=True), DOCUMENT, [_anchor(TEST_PK_CA)])
    assert refused.value.reason is SignatureRejection.BAD_SIGNATURE


def test_pkcard_refuses_garbage() -> None:
    with pytest.raises(SignatureRejected) as refused:
        verify_detached(b"\x30\x03\x02\x01", DOCUMENT, [_anchor(TEST_PK_CA)])
    assert refused.value.reason is SignatureRejection.MALFORMED


def test_signing_time_outside_certificate_validity_is_refused() -> None:
    profile = load_profile("pk-regular")
    card = ProfessionalCard.over(InProcessConnection(SimulatedCard.from_profile(profile)))
    kpep = card.read_card().kpep_certificate
    assert kpep is not None
    spin = Secret(profile.secret_value(SecretRef.SPIN))
    late = sign_detached(
        DOCUMENT,
        kpep.der,
        lambda d: card.sign(d, spin),
        signing_time=datetime(2031, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(SignatureRejected) as refused:
        verify_detached(late, DOCUMENT, [_anchor(TEST_PK_CA)])
    assert refused.value.reason is SignatureRejection.CERT_NOT_VALID


def test_malformed_certificate_refused_before_signing() -> None:
    def never(_: bytes) -> bytes:
        raise AssertionError("the card must not be asked")

    with pytest.raises(FormatError):
        sign_detached(DOCUMENT, b"\x30\x00", never)


def _resigned(signature: bytes, edit: Callable[[cms.CMSAttributes], None]) -> bytes:
    """The signature with its signed attributes edited (and so no longer matching)."""
    info = cms.ContentInfo.load(signature)
    edit(info["content"]["signer_infos"][0]["signed_attrs"])
    return bytes(info.dump(force=True))


def test_pkcard_refuses_edited_attributes(signature: bytes) -> None:
    def later(attrs: cms.CMSAttributes) -> None:
        for attr in attrs:
            if attr["type"].native == "signing_time":
                attr["values"] = [cms.Time(name="utc_time", value=datetime(2027, 1, 1, tzinfo=UTC))]

    with pytest.raises(SignatureRejected) as refused:
        verify_detached(_resigned(signature, later), DOCUMENT, [_anchor(TEST_PK_CA)])
    assert refused.value.reason is SignatureRejection.BAD_SIGNATURE


def test_pkcard_refuses_an_attached_signature(signature: bytes) -> None:
    info = cms.ContentInfo.load(signature)
    info["content"]["encap_content_info"]["content"] = DOCUMENT
    with pytest.raises(SignatureRejected) as refused:
        verify_detached(bytes(info.dump(force=True)), DOCUMENT, [_anchor(TEST_PK_CA)])
    assert refused.value.reason is SignatureRejection.MALFORMED


def test_signed_attributes_are_in_der_order(signature: bytes) -> None:
    attrs = cms.ContentInfo.load(signature)["content"]["signer_infos"][0]["signed_attrs"]
    encodings = [attr.dump() for attr in attrs]
    assert encodings == sorted(encodings)


KPEP_KEY = PKI / "cards" / "pk-regular" / "sign-key.pem"
KPEP_CERT = PKI / "cards" / "pk-regular" / "sign-cert.pem"


def _software_signer() -> tuple[bytes, Callable[[bytes], bytes]]:
    """The pk-regular KPEP key in software: the same signature the card makes, faster."""
    key = serialization.load_pem_private_key(
        KPEP_KEY.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = x509.load_pem_x509_certificate(KPEP_CERT.read_bytes())

    def sign(digest: bytes) -> bytes:
        return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    return cert.public_bytes(serialization.Encoding.DER), sign


@settings(max_examples=40, deadline=None)
@given(document=st.binary(max_size=2048), flip=st.integers(min_value=0))
def test_round_trip_and_any_change_is_refused(document: bytes, flip: int) -> None:
    cert_der, sign = _software_signer()
    signature = sign_detached(document, cert_der, sign, signing_time=SIGNED_AT)
    info = verify_detached(signature, document, [_anchor(TEST_PK_CA)])
    assert info.message_digest == hashlib.sha256(document).digest()
    changed = bytearray(document or b"\x00")
    changed[flip % len(changed)] ^= 0x01
    if bytes(changed) == document:
        return
    with pytest.raises(SignatureRejected) as refused:
        verify_detached(signature, bytes(changed), [_anchor(TEST_PK_CA)])
    assert refused.value.reason is SignatureRejection.DIGEST_MISMATCH


@settings(max_examples=100, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_corrupted_signature_is_refused_or_still_right(
    signature: bytes, position: int, value: int
) -> None:
    """Any one-byte corruption: a typed refusal, never another exception or a wrong result."""
    corrupted = bytearray(signature)
    corrupted[position % len(corrupted)] = value
    try:
        info = verify_detached(bytes(corrupted), DOCUMENT, [_anchor(TEST_PK_CA)])
    except SignatureRejected:
        return
    assert info.message_digest == hashlib.sha256(DOCUMENT).digest()
    assert info.signer.subject_serial == "90001"


@settings(max_examples=100, deadline=None)
@given(garbage=st.binary(max_size=512))
def test_garbage_is_refused_as_malformed(garbage: bytes) -> None:
    with pytest.raises(SignatureRejected):
        verify_detached(garbage, DOCUMENT, [_anchor(TEST_PK_CA)])
