"""Detached CAdES-BES signatures made by the simulated PK, checked by pkcard and by openssl."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509

from pkcard.cms import sign_detached, verify_detached
from pkcard.errors import FormatError, SignatureRejected, SignatureRejection
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from simcard.card import SimulatedCard
from simcard.inprocess import InProcessConnection
from simcard.profile import load_profile
from simcard.spec import SecretRef

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
