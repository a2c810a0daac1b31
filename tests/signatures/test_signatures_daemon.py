"""SignatureService end to end: a real pkcardd process, simulated cards, openssl as judge."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sigrig import KPEP_CERT, kpep_der, openssl_verify, secret

import pkcard.certs
import pkcard.client
from pkcard.certs import CertificateInfo, parse_certificate
from pkcard.errors import (
    InvalidRequest,
    LastTryNotConfirmed,
    MalformedPin,
    NotSupported,
    PinPadTimeout,
    SignatureRejected,
    SignatureRejection,
    TransportPinActive,
    WrongCardKind,
    WrongPin,
)
from pkcard.simcard.spec import SecretRef
from tests.daemon.daemon_harness import KZZ_READER, PK_READER, RunningDaemon

SPIN = secret("pk-regular", SecretRef.SPIN)
DOCUMENT = b"%PDF-1.7 izvid: pacient 900000011, diagnoza J06.9 -- pkcard signature test\n"


def _wrong(spin: str) -> str:
    return spin[:-1] + str((int(spin[-1]) + 1) % 10)


def _audit(daemon: RunningDaemon, operation: str) -> list[dict[str, object]]:
    lines = daemon.audit_path.read_text().splitlines()
    # the outcome records (each call's intent record, outcome STARTED, comes before it)
    return [r for r in map(json.loads, lines)
            if r.get("operation") == operation and r.get("outcome") != "STARTED"]


def test_signed_document_verifies_with_openssl(doctor: RunningDaemon, tmp_path: Path) -> None:
    with doctor.client() as client:
        signed = client.sign_document(PK_READER, DOCUMENT, spin=SPIN)
    assert signed.document_sha256 == hashlib.sha256(DOCUMENT).digest()
    assert signed.signer.der == kpep_der()
    assert signed.card_serial == "PK0000100001"
    result = openssl_verify(signed.cms, DOCUMENT, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Verification successful" in result.stderr
    tampered = openssl_verify(signed.cms, DOCUMENT + b" ", tmp_path)
    assert tampered.returncode != 0


def test_precomputed_hash_signs_the_same_document(doctor: RunningDaemon, tmp_path: Path) -> None:
    with doctor.client() as client:
        signed = client.sign_document(
            PK_READER, document_sha256=hashlib.sha256(DOCUMENT).digest(), spin=SPIN
        )
        info = client.verify_document(DOCUMENT, signed.cms)
    assert openssl_verify(signed.cms, DOCUMENT, tmp_path).returncode == 0
    assert info.signer.sha256_fingerprint == signed.signer.sha256_fingerprint


def test_verify_document_accepts_and_refuses_tampering(doctor: RunningDaemon) -> None:
    with doctor.client() as client:
        signed = client.sign_document(PK_READER, DOCUMENT, spin=SPIN)
        info = client.verify_document(DOCUMENT, signed.cms)
        assert info.message_digest == hashlib.sha256(DOCUMENT).digest()
        assert info.signing_time == signed.signing_time
        assert "pkcard TEST PK CA" in info.trust_anchor
        assert info.signer.subject == signed.signer.subject
        with pytest.raises(SignatureRejected) as rejected:
            client.verify_document(DOCUMENT.replace(b"J06.9", b"J06.8"), signed.cms)
        assert rejected.value.reason is SignatureRejection.DIGEST_MISMATCH
        with pytest.raises(SignatureRejected) as garbage:
            client.verify_document(DOCUMENT, b"\x30\x03\x02\x01\x01")
        assert garbage.value.reason is SignatureRejection.MALFORMED


def test_every_signature_needs_the_spin(doctor: RunningDaemon) -> None:
    """Sole control: a signature never rides on an earlier SPIN verification."""
    doctor.insert(KZZ_READER, "pk-regular")  # a reader without a PIN pad
    with doctor.client() as client:
        client.sign_document(KZZ_READER, DOCUMENT, spin=SPIN)
        with pytest.raises(MalformedPin):
            client.sign_document(KZZ_READER, DOCUMENT, spin="")
        client.sign_document(PK_READER, DOCUMENT, spin=SPIN)
        with pytest.raises(PinPadTimeout):  # empty: asked on the pad, where nobody types
            client.sign_document(PK_READER, DOCUMENT, spin="")


def test_wrong_spin_reports_tries_left(doctor: RunningDaemon) -> None:
    with doctor.client() as client:
        with pytest.raises(WrongPin) as first:
            client.sign_document(PK_READER, DOCUMENT, spin=_wrong(SPIN))
        assert first.value.tries_left == 2
        with pytest.raises(WrongPin) as second:
            client.sign_document(PK_READER, DOCUMENT, spin=_wrong(SPIN))
        assert second.value.tries_left == 1
        with pytest.raises(LastTryNotConfirmed):
            client.sign_document(PK_READER, DOCUMENT, spin=SPIN)
        signed = client.sign_document(PK_READER, DOCUMENT, spin=SPIN, confirm_last_try=True)
    assert signed.cms


def test_transport_spin_refused_with_activation_hint(signing_daemon: RunningDaemon) -> None:
    signing_daemon.insert(PK_READER, "pk-transport")
    with signing_daemon.client() as client, pytest.raises(TransportPinActive) as refused:
        client.sign_document(PK_READER, DOCUMENT, spin=secret("pk-transport", SecretRef.TPIN))
    assert "pkpin activate-signature" in str(refused.value)


def test_nurse_card_cannot_sign(signing_daemon: RunningDaemon) -> None:
    signing_daemon.insert(PK_READER, "pk-nurse")
    with signing_daemon.client() as client, pytest.raises(NotSupported) as refused:
        client.sign_document(PK_READER, DOCUMENT, spin="12345678")
    assert "KPEP" in str(refused.value)


def test_kzz_is_the_wrong_card(signing_daemon: RunningDaemon) -> None:
    signing_daemon.insert(KZZ_READER, "kzz")
    with signing_daemon.client() as client, pytest.raises(WrongCardKind):
        client.sign_document(KZZ_READER, DOCUMENT, spin=SPIN)


@pytest.mark.parametrize(
    ("document", "digest"),
    [(None, b"\x00" * 31), (b"x" * (768 * 1024 + 1), None)],
    ids=["short-hash", "oversized-document"],
)
def test_bad_content_is_an_invalid_request(
    doctor: RunningDaemon, document: bytes | None, digest: bytes | None
) -> None:
    with doctor.client() as client, pytest.raises(InvalidRequest):
        client.sign_document(PK_READER, document, document_sha256=digest, spin=SPIN)


def test_audit_records_hash_and_certificate_never_secrets(doctor: RunningDaemon) -> None:
    with doctor.client() as client:
        signed = client.sign_document(PK_READER, DOCUMENT, spin=SPIN)
        with pytest.raises(WrongPin):
            client.sign_document(PK_READER, DOCUMENT, spin=_wrong(SPIN))
    records = _audit(doctor, "SignDocument")
    ok, refused = records[-2], records[-1]
    assert ok["outcome"] == "OK"
    assert ok["document_sha256"] == hashlib.sha256(DOCUMENT).hexdigest()
    assert ok["certificate_sha256"] == signed.signer.sha256_fingerprint.hex()
    assert ok["certificate_serial"] == format(signed.signer.serial_number, "x")
    assert ok["card_serial"] == signed.card_serial
    assert ok["reference"] == "SPIN"
    assert refused["outcome"] == "WRONG_PIN"
    assert refused["tries_left"] == 2
    text = doctor.audit_path.read_text()
    assert SPIN not in text
    assert _wrong(SPIN) not in text
    assert "diagnoza" not in text
    assert SPIN not in doctor.stderr()
    assert "diagnoza" not in doctor.stderr()


def test_a_swapped_card_signs_with_its_own_certificate(
    signing_daemon: RunningDaemon, tmp_path: Path
) -> None:
    """pkcardd keeps each KPEP certificate prepared (issue #14, G3), by its DER: another card
    in the same reader signs with its own certificate, and the first one's comes back with it."""
    backup_kpep = (KPEP_CERT.parent.parent / "pk-backup" / "sign-cert.pem").read_bytes()
    signers = []
    with signing_daemon.client() as client:
        for profile in ("pk-regular", "pk-backup", "pk-regular"):
            signing_daemon.insert(PK_READER, profile)
            signed = client.sign_document(
                PK_READER, DOCUMENT, spin=secret(profile, SecretRef.SPIN))
            assert openssl_verify(signed.cms, DOCUMENT, tmp_path).returncode == 0
            signers.append(signed.signer.der)
    assert signers[0] == signers[2] == kpep_der()
    assert signers[1] == x509.load_pem_x509_certificate(backup_kpep).public_bytes(
        serialization.Encoding.DER)


def test_the_client_parses_a_certificate_once(
    doctor: RunningDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every SignDocument reply carries the KPEP certificate: a client parses each DER once."""
    parsed: list[bytes] = []

    def parse(der: bytes) -> CertificateInfo:
        parsed.append(bytes(der))
        return parse_certificate(der)

    monkeypatch.setattr(pkcard.certs, "parse_certificate", parse)
    monkeypatch.setattr(pkcard.client, "parse_certificate", parse)
    with doctor.client() as client:
        signed = [client.sign_document(PK_READER, DOCUMENT, spin=SPIN) for _ in range(3)]
        info = client.verify_document(DOCUMENT, signed[0].cms)
    assert {s.signer for s in signed} == {info.signer}
    assert info.signer == parse_certificate(kpep_der())
    assert parsed == [kpep_der()]
