"""X.509 certificates read from the cards, parsed with ``cryptography``.

:func:`parse_certificate` turns the DER of EF.C.Auth / EF.C.Sign into a
small typed :class:`CertificateInfo`. :func:`verify_card_signature` checks a
signature the card produced over a host-computed SHA-256 hash with the
scheme the card profile fixes for that key (docs/card-profile.md, "Keys").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID

from pkcard.errors import FormatError, NotSupported

SHA256_LENGTH = 32
_P256_COORDINATE = 32


class KeyAlgorithm(IntEnum):
    """The public key type of a card certificate."""

    OTHER = 0
    EC_P256 = 1
    RSA = 2


class SignatureScheme(IntEnum):
    """How a card key signs a SHA-256 hash (docs/card-profile.md, "Keys")."""

    EC_RAW = 1  # INTERNAL AUTHENTICATE, EC: raw r || s (JWS ES256)
    RSA_PSS = 2  # INTERNAL AUTHENTICATE, RSA: PSS, MGF1-SHA-256, salt 32 (JWS PS256)
    RSA_PKCS1 = 3  # PSO COMPUTE DIGITAL SIGNATURE: PKCS#1 v1.5 over DigestInfo


@dataclass(frozen=True)
class CertificateInfo:
    """The facts about a certificate the layers above need, plus its DER."""

    subject: str  # RFC 4514
    issuer: str  # RFC 4514
    serial_number: int
    subject_serial: str | None  # the subject's serialNumber attribute (holder id)
    not_before: datetime  # UTC, timezone-aware
    not_after: datetime  # UTC, timezone-aware
    key_algorithm: KeyAlgorithm
    key_size: int  # bits: 256 for P-256, the modulus size for RSA
    sha256_fingerprint: bytes
    der: bytes

    @property
    def fingerprint_hex(self) -> str:
        return self.sha256_fingerprint.hex(":").upper()

    @property
    def auth_scheme(self) -> SignatureScheme:
        """The INTERNAL AUTHENTICATE scheme of this certificate's key."""
        if self.key_algorithm is KeyAlgorithm.EC_P256:
            return SignatureScheme.EC_RAW
        if self.key_algorithm is KeyAlgorithm.RSA:
            return SignatureScheme.RSA_PSS
        raise NotSupported("the certificate's key is neither EC P-256 nor RSA")


def parse_certificate(der: bytes) -> CertificateInfo:
    """Parse one DER certificate. Malformed DER raises :class:`FormatError`."""
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
        serial_attrs = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        subject_serial = str(serial_attrs[0].value) if serial_attrs else None
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise FormatError(f"malformed certificate: {exc}") from None
    try:
        key: object = cert.public_key()
    except UnsupportedAlgorithm:
        key = None  # an unknown curve or key type: parsed, reported as OTHER
    except ValueError as exc:
        raise FormatError(f"malformed certificate key: {exc}") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm, size = KeyAlgorithm.EC_P256, key.curve.key_size
    elif isinstance(key, rsa.RSAPublicKey):
        algorithm, size = KeyAlgorithm.RSA, key.key_size
    else:
        algorithm, size = KeyAlgorithm.OTHER, 0
    return CertificateInfo(
        subject=subject,
        issuer=issuer,
        serial_number=cert.serial_number,
        subject_serial=subject_serial,
        not_before=not_before,
        not_after=not_after,
        key_algorithm=algorithm,
        key_size=size,
        sha256_fingerprint=hashlib.sha256(der).digest(),
        der=bytes(der),
    )


def verify_card_signature(
    cert: CertificateInfo, digest: bytes, signature: bytes, scheme: SignatureScheme
) -> bool:
    """Whether ``signature`` over the SHA-256 ``digest`` verifies with ``cert``'s key."""
    if len(digest) != SHA256_LENGTH:
        raise FormatError("the digest must be a 32-byte SHA-256 hash")
    key = x509.load_der_x509_certificate(cert.der).public_key()
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if scheme is SignatureScheme.EC_RAW and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 2 * _P256_COORDINATE:
                return False
            r = int.from_bytes(signature[:_P256_COORDINATE], "big")
            s = int.from_bytes(signature[_P256_COORDINATE:], "big")
            der_sig = utils.encode_dss_signature(r, s)
            key.verify(der_sig, digest, ec.ECDSA(prehashed))
        elif scheme is SignatureScheme.RSA_PSS and isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SHA256_LENGTH)
            key.verify(signature, digest, pss, prehashed)
        elif scheme is SignatureScheme.RSA_PKCS1 and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), prehashed)
        else:
            raise NotSupported(f"{scheme.name} does not fit the certificate's key")
    except InvalidSignature:
        return False
    return True
