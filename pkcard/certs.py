"""X.509 certificates read from the cards, parsed with ``cryptography``.

:func:`parse_certificate` turns the DER of EF.C.Auth / EF.C.Sign into a
small typed :class:`CertificateInfo`. :func:`load_certificate` is the one way
pkcard loads a certificate from untrusted bytes (a card, a token's ``x5c``, a
CMS signature): every part ``cryptography`` decodes lazily is read once inside
one guard, so malformed bytes raise :class:`~pkcard.errors.CertificateError`.
:func:`verify_card_signature` checks a signature the card produced over a
host-computed SHA-256 hash with the scheme the card profile fixes for that
key (docs/card-profile.md, "Keys").
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Generic, TypeAlias, TypeVar

from pkcard.errors import CertificateError, FormatError, NotSupported

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

# ``cryptography`` (~8 MB of RSS) is imported by the functions that parse or check a
# certificate, not with this module: a daemon that never meets a certificate does not
# load it (issue #14, G6; docs/benchmarks.md).

SHA256_LENGTH = 32
_P256_COORDINATE = 32
DER_CACHE_SIZE = 16

T = TypeVar("T")


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


# Everything cryptography raises for bad bytes behind its lazily parsed objects: names
# build NameAttribute objects on access (TypeError, ValueError), extension values are
# constructed from their DER (ValueError, TypeError, DuplicateExtension,
# UnsupportedGeneralNameType), the version check raises InvalidVersion, and keys,
# times and serials raise ValueError (or OverflowError) when decoded.
def _parse_errors() -> tuple[type[Exception], ...]:
    from cryptography import x509  # noqa: PLC0415 - lazily: see the imports

    return (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        OverflowError,
        x509.InvalidVersion,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    )


CertificateKey: TypeAlias = "CertificatePublicKeyTypes | None"
"""A certificate's public key; ``None`` for a key type ``cryptography`` does not know."""


def load_certificate(der: bytes) -> x509.Certificate:
    """Load a DER certificate from an untrusted source and read each lazily parsed part once.

    ``cryptography`` decodes most of a certificate only when it is read: the
    subject and issuer names (with their attributes), the extensions, the
    serial, the validity times, the signature algorithm and the public key.
    Here all of them are read inside one guard, so bytes from a card, a token's
    ``x5c`` or a CMS signature that break any of them raise
    :class:`CertificateError` and nothing else. Decoding is deterministic:
    reading the same parts of the returned certificate again raises nothing,
    except :func:`certificate_key`'s documented ``None`` for an unknown key type.
    """
    from cryptography import x509  # noqa: PLC0415 - lazily: see the imports

    try:
        cert = x509.load_der_x509_certificate(bytes(der))
        _read_every_part(cert)
    except _parse_errors() as exc:
        raise CertificateError(f"malformed certificate ({type(exc).__name__})") from None
    return cert


def _read_every_part(cert: x509.Certificate) -> None:
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415

    _ = (cert.version, cert.serial_number, cert.signature_algorithm_oid)
    _ = (cert.not_valid_before_utc, cert.not_valid_after_utc)
    for name in (cert.subject, cert.issuer):
        name.rfc4514_string()
        for attribute in name:
            _ = (attribute.oid, attribute.value, attribute.rfc4514_string())
    for extension in cert.extensions:
        _ = (extension.oid, extension.critical, extension.value)
    with contextlib.suppress(UnsupportedAlgorithm):  # an unknown signature algorithm
        _ = (cert.signature_hash_algorithm, cert.signature_algorithm_parameters)
    with contextlib.suppress(UnsupportedAlgorithm):  # an unknown key type: see certificate_key
        cert.public_key()


def certificate_key(cert: x509.Certificate) -> CertificateKey:
    """The public key of a certificate from :func:`load_certificate`; ``None`` if unknown."""
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415

    try:
        return cert.public_key()
    except UnsupportedAlgorithm:
        return None
    except _parse_errors() as exc:  # only for a certificate that skipped load_certificate
        raise CertificateError(f"malformed certificate key ({type(exc).__name__})") from None


def parse_certificate(der: bytes) -> CertificateInfo:
    """Parse one DER certificate. Malformed DER raises :class:`CertificateError`."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    cert = load_certificate(der)
    serial_attrs = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    key = certificate_key(cert)
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm, size = KeyAlgorithm.EC_P256, key.curve.key_size
    elif isinstance(key, rsa.RSAPublicKey):
        algorithm, size = KeyAlgorithm.RSA, key.key_size
    else:
        algorithm, size = KeyAlgorithm.OTHER, 0
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial_number=cert.serial_number,
        subject_serial=str(serial_attrs[0].value) if serial_attrs else None,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_algorithm=algorithm,
        key_size=size,
        sha256_fingerprint=hashlib.sha256(der).digest(),
        der=bytes(der),
    )


class DerCache(Generic[T]):
    """What ``parse`` makes of a certificate, kept by the certificate's DER; thread-safe.

    A card's certificates come back with every signature and every reading:
    each DER is parsed once. The key is the whole DER, so an entry is exactly
    what parsing the same bytes again gives (a swapped card brings other
    bytes). At most ``size`` entries, the least recently used dropped first;
    bytes ``parse`` refuses raise every time and are never kept.
    """

    def __init__(self, parse: Callable[[bytes], T], size: int = DER_CACHE_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._parse = parse
        self._size = size
        self._lock = threading.Lock()
        self._parsed: OrderedDict[bytes, T] = OrderedDict()

    def get(self, der: bytes) -> T:
        key = bytes(der)
        with self._lock:
            if key in self._parsed:
                self._parsed.move_to_end(key)
                return self._parsed[key]
        parsed = self._parse(key)  # outside the lock: a parse may take a while
        with self._lock:
            self._parsed[key] = parsed
            self._parsed.move_to_end(key)
            while len(self._parsed) > self._size:
                self._parsed.popitem(last=False)
        return parsed

    def __len__(self) -> int:
        with self._lock:
            return len(self._parsed)


def certificate_cache(size: int = DER_CACHE_SIZE) -> DerCache[CertificateInfo]:
    """A :class:`DerCache` of :func:`parse_certificate` (a client's, a daemon's)."""
    return DerCache(parse_certificate, size)


def verify_card_signature(
    cert: CertificateInfo, digest: bytes, signature: bytes, scheme: SignatureScheme
) -> bool:
    """Whether ``signature`` over the SHA-256 ``digest`` verifies with ``cert``'s key."""
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils  # noqa: PLC0415

    if len(digest) != SHA256_LENGTH:
        raise FormatError("the digest must be a 32-byte SHA-256 hash")
    key = certificate_key(load_certificate(cert.der))
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
