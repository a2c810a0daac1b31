"""The IsoApplet personality of the simulated PK: what OpenSC needs to drive it fully.

OpenSC signs only through a card driver that registers the card's algorithms;
its generic ``default`` driver registers none, so through it the simulated PK
could be read but not used for signatures. The simulated PK therefore also
answers as a JavaCard running the IsoApplet (API 0.6) does, and OpenSC's
``isoApplet`` driver drives it (docs/card-profile.md, "OpenSC personality"):

- SELECT of :data:`ISOAPPLET_AID` selects the PK application and answers the
  applet's API version and feature bits (:data:`ISOAPPLET_SELECT_RESPONSE`);
- MANAGE SECURITY ENVIRONMENT (SET, digital signature template) names a key
  and an IsoApplet algorithm reference (:class:`IsoAlgorithm`);
- PERFORM SECURITY OPERATION (COMPUTE DIGITAL SIGNATURE) then signs what the
  host sends as that algorithm: RSA with the card adding PKCS #1 v1.5 padding
  (the host sends the DigestInfo), or ECDSA over the hash the host sends,
  answered as a DER ``Ecdsa-Sig-Value``.

pkcard's own driver never sends MANAGE SECURITY ENVIRONMENT, so the profile it
speaks is unchanged. The key's guard (PIN or SPIN, sole control) applies as on
every other path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography loads with the first signature (issue #14, G6)
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISOAPPLET_AID = bytes.fromhex("F276A288BCFBA69D34F31001")
ISOAPPLET_SELECT_RESPONSE = bytes([0x00, 0x06, 0x06])  # API 0.6; features: secure random, ECC

_TAG_ALGORITHM = 0x80
_TAG_KEY_REFERENCES = (0x83, 0x84)  # public-key / private-key reference
_TAG_FILE_REFERENCE = 0x81
_PKCS1_MIN_PADDING = 11


class IsoAlgorithm(IntEnum):
    """The IsoApplet's algorithm references (MANAGE SECURITY ENVIRONMENT tag 80)."""

    RSA_PKCS1 = 0x11
    ECDSA = 0x21


@dataclass(frozen=True)
class SecurityEnvironment:
    """What a MANAGE SECURITY ENVIRONMENT SET chose for the next signature."""

    algorithm: IsoAlgorithm
    key_ref: int


class SecurityEnvironmentError(ValueError):
    """The MANAGE SECURITY ENVIRONMENT data is malformed or names an unknown algorithm."""


def parse_security_environment(data: bytes) -> SecurityEnvironment:
    """The algorithm and key reference of a SET's control reference template."""
    algorithm: IsoAlgorithm | None = None
    key_ref: int | None = None
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise SecurityEnvironmentError("truncated control reference")
        tag, length = data[offset], data[offset + 1]
        value = data[offset + 2 : offset + 2 + length]
        if len(value) != length:
            raise SecurityEnvironmentError("truncated control reference")
        offset += 2 + length
        if tag == _TAG_ALGORITHM and length == 1:
            try:
                algorithm = IsoAlgorithm(value[0])
            except ValueError:
                raise SecurityEnvironmentError("unknown algorithm reference") from None
        elif tag in _TAG_KEY_REFERENCES and length == 1:
            key_ref = value[0]
        elif tag != _TAG_FILE_REFERENCE:
            raise SecurityEnvironmentError("unexpected control reference")
    if algorithm is None or key_ref is None:
        raise SecurityEnvironmentError("algorithm and key reference are both required")
    return SecurityEnvironment(algorithm, key_ref)


def sign(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, algorithm: IsoAlgorithm,
         data: bytes) -> bytes | None:
    """The signature of ``data`` as ``algorithm``; None when the key or data do not fit it."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415

    if algorithm is IsoAlgorithm.RSA_PKCS1 and isinstance(key, rsa.RSAPrivateKey):
        return _rsa_pkcs1(key, data)
    if algorithm is IsoAlgorithm.ECDSA and isinstance(key, ec.EllipticCurvePrivateKey):
        return _ecdsa_der(key, data)
    return None


def _rsa_pkcs1(key: rsa.RSAPrivateKey, data: bytes) -> bytes | None:
    """RSASSA-PKCS1-v1_5 over ``data`` as given (the host sends the DigestInfo)."""
    size = (key.key_size + 7) // 8
    if not data or len(data) > size - _PKCS1_MIN_PADDING:
        return None
    block = b"\x00\x01" + b"\xff" * (size - 3 - len(data)) + b"\x00" + data
    numbers = key.private_numbers()
    signature = pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n)
    return signature.to_bytes(size, "big")


def _ecdsa_der(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """ECDSA with SHA-1 over ``message`` (the card hashes), DER-encoded."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    return key.sign(message, ec.ECDSA(hashes.SHA1()))  # noqa: S303 - the applet's algorithm
