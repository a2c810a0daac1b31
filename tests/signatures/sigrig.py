"""Helpers of the signature tests: profile secrets, the test PK CA, openssl's verdict."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pkcard.simcard.profile import PROFILES_DIR, load_profile
from pkcard.simcard.spec import SecretRef

TEST_PK_CA = PROFILES_DIR.parent.parent / "pki" / "ca" / "test-pk" / "ca-cert.pem"
KPEP_CERT = PROFILES_DIR.parent.parent / "pki" / "cards" / "pk-regular" / "sign-cert.pem"


def kpep_der() -> bytes:
    """pk-regular's KPEP certificate, DER."""
    cert = x509.load_pem_x509_certificate(KPEP_CERT.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def secret(profile: str, ref: SecretRef) -> str:
    return load_profile(profile).secret_value(ref)


def openssl_verify(
    cms_der: bytes, document: bytes, directory: Path
) -> subprocess.CompletedProcess[str]:
    """``openssl cms -verify`` of a detached DER signature against the test PK CA."""
    signature = directory / "signature.p7s"
    content = directory / "document.bin"
    signature.write_bytes(cms_der)
    content.write_bytes(document)
    return subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signature),
         "-content", str(content), "-CAfile", str(TEST_PK_CA), "-purpose", "any",
         "-out", str(directory / "out.bin")],
        capture_output=True, text=True, check=False,
    )
