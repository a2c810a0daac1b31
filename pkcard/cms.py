"""Detached CMS SignedData with CAdES-BES attributes: build with a card, verify.

:func:`sign_detached` hashes the document (SHA-256) on the host, builds the
signed attributes (content-type, message-digest, signing-time and the ESS
signing-certificate-v2 that makes it CAdES-BES), and has the card sign the
SHA-256 of their DER ``SET``: ``sign(digest32) -> signature``, for example
``lambda d: card.sign(d, spin)`` (PSO COMPUTE DIGITAL SIGNATURE, RSASSA-PKCS1-v1_5
over a DigestInfo). The signing certificate is included; the document is not.

:func:`verify_detached` checks one signer: the attributes, the message digest
against the document, the signature with the included certificate, the
signing-certificate-v2 hash, the key usage, the validity at the signing time,
and that a trust anchor directly issued the certificate (the PK CAs issue
card certificates directly; intermediate CAs are not followed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pkcard.certs import (
    DER_CACHE_SIZE,
    CertificateInfo,
    DerCache,
    certificate_key,
    load_certificate,
    parse_certificate,
)
from pkcard.errors import CertificateError, FormatError, SignatureRejected, SignatureRejection

if TYPE_CHECKING:
    from asn1crypto import algos, cms
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509

# asn1crypto and cryptography (~10 MB of RSS together) are imported by the functions
# that sign or verify, not with this module: a daemon that never signs does not load
# them (issue #14, G6; docs/benchmarks.md).

__all__ = [
    "CardSigner",
    "SignatureInfo",
    "SignedDocument",
    "SignerCache",
    "SignerCertificate",
    "sign_detached",
    "sign_detached_digest",
    "signer_certificate",
    "verify_detached",
]

CardSigner = Callable[[bytes], bytes]
"""Signs a 32-byte SHA-256 hash with RSASSA-PKCS1-v1_5 (the card wraps the DigestInfo)."""

_SET_TAG = 0x31
# What asn1crypto raises for bad bytes, wherever a lazily parsed value is first read.
_ASN1_ERRORS: tuple[type[Exception], ...] = (
    ValueError, TypeError, KeyError, IndexError, OverflowError,
)
_UTC_TIME_LAST_YEAR = 2049


@dataclass(frozen=True)
class SignatureInfo:
    """What a verified signature says."""

    signer: CertificateInfo
    signing_time: datetime | None  # the signed signing-time attribute, UTC
    message_digest: bytes  # SHA-256 of the document
    trust_anchor: str  # RFC 4514 subject of the CA that issued the signer


@dataclass(frozen=True)
class SignedDocument:
    """A signature made on a card: the detached CMS and what it says."""

    cms: bytes  # DER ContentInfo (SignedData, detached, CAdES-BES)
    signer: CertificateInfo  # the KPEP certificate
    signing_time: datetime  # the signed signing-time attribute, UTC
    document_sha256: bytes
    card_serial: str


# --- DER of the signature, written directly ------------------------------------------
# Everything but the certificate's issuer and serial, the hashes, the time and the
# signature is constant; asn1crypto builds the same bytes, ~2.8 ms slower per
# signature (tests/cms pins the two together byte for byte).

_OID_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")
_OID_DATA = bytes.fromhex("06092a864886f70d010701")
_OID_CONTENT_TYPE = bytes.fromhex("06092a864886f70d010903")
_OID_MESSAGE_DIGEST = bytes.fromhex("06092a864886f70d010904")
_OID_SIGNING_TIME = bytes.fromhex("06092a864886f70d010905")
_OID_SIGNING_CERTIFICATE_V2 = bytes.fromhex("060b2a864886f70d010910022f")
_ALGORITHM_SHA256 = bytes.fromhex("300d06096086480165030402010500")
_ALGORITHM_RSA_PKCS1 = bytes.fromhex("300d06092a864886f70d0101010500")
_VERSION_1 = bytes.fromhex("020101")
_SEQUENCE, _SET, _OCTET_STRING, _INTEGER = 0x30, _SET_TAG, 0x04, 0x02
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_CONTEXT_0, _DIRECTORY_NAME = 0xA0, 0xA4
_SHORT_LENGTH = 0x80


def _tlv(tag: int, *contents: bytes) -> bytes:
    """One DER element: ``tag``, the definite length, the concatenated ``contents``."""
    content = b"".join(contents)
    size = len(content)
    if size < _SHORT_LENGTH:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, _SHORT_LENGTH | len(length))) + length + content


def _integer(value: int) -> bytes:
    """A DER INTEGER in the fewest two's-complement octets."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return _tlv(_INTEGER, value.to_bytes(size, "big", signed=True))


def _time_der(moment: datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime after (RFC 5652 signing-time), whole seconds."""
    moment = moment.astimezone(UTC).replace(microsecond=0)
    if moment.year <= _UTC_TIME_LAST_YEAR:
        return _tlv(_UTC_TIME, moment.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return _tlv(_GENERALIZED_TIME, f"{moment.year:04d}".encode("ascii")
                + moment.strftime("%m%d%H%M%SZ").encode("ascii"))


def _attribute_der(oid: bytes, value: bytes) -> bytes:
    return _tlv(_SEQUENCE, oid, _tlv(_SET, value))


def _signed_attributes_der(
    digest: bytes, certificate_sha256: bytes, issuer_der: bytes, serial_der: bytes,
    signing_time: datetime,
) -> bytes:
    """The content of the signed attributes' SET OF, its elements in DER order."""
    ess = _tlv(_SEQUENCE, _tlv(_SEQUENCE, _tlv(  # SigningCertificateV2 { certs { ESSCertIDv2
        _SEQUENCE,
        _tlv(_OCTET_STRING, certificate_sha256),  # sha256 is the default
        _tlv(_SEQUENCE, _tlv(_SEQUENCE, _tlv(_DIRECTORY_NAME, issuer_der)), serial_der),
    )))
    attributes = [
        _attribute_der(_OID_CONTENT_TYPE, _OID_DATA),
        _attribute_der(_OID_SIGNING_TIME, _time_der(signing_time)),
        _attribute_der(_OID_MESSAGE_DIGEST, _tlv(_OCTET_STRING, digest)),
        _attribute_der(_OID_SIGNING_CERTIFICATE_V2, ess),
    ]
    # DER: the elements of a SET OF in the order of their encodings.
    return b"".join(sorted(attributes))


def _set_der(signed_attrs: cms.CMSAttributes) -> bytes:
    """The attributes as signed: their DER with the universal SET tag, not [0]."""
    der = bytes(signed_attrs.dump())
    return bytes([_SET_TAG]) + der[1:]


@dataclass(frozen=True)
class SignerCertificate:
    """A signer's certificate prepared for :func:`sign_detached_digest`.

    What a signature copies from the certificate (issuer and serial, the
    certificate's own encoding and hash), read once: :func:`signer_certificate`
    makes one, :class:`SignerCache` keeps them by the certificate's DER.
    """

    info: CertificateInfo  # parse_certificate of the DER
    issuer_der: bytes  # the issuer Name, as encoded in the certificate
    serial_der: bytes  # the serial number as a DER INTEGER
    certificate_der: bytes  # the certificate as the SignedData includes it
    certificate_sha256: bytes  # for the ESS signing-certificate-v2 attribute


def signer_certificate(certificate_der: bytes) -> SignerCertificate:
    """Prepare the signer ``certificate_der``; :class:`CertificateError` for malformed bytes."""
    from asn1crypto import x509 as asn1_x509  # noqa: PLC0415 - lazily: see the imports

    info = parse_certificate(certificate_der)  # CertificateError for bytes cryptography refuses
    try:
        certificate = asn1_x509.Certificate.load(info.der, strict=True)
        issuer_der = bytes(certificate.issuer.dump())
        serial_der = _integer(certificate.serial_number)
        included = bytes(certificate.dump())
    except _ASN1_ERRORS as exc:  # asn1crypto parses lazily too
        raise CertificateError(f"malformed signer certificate ({type(exc).__name__})") from None
    return SignerCertificate(info, issuer_der, serial_der, included,
                             hashlib.sha256(included).digest())


class SignerCache(DerCache[SignerCertificate]):
    """Prepared signers by their certificate's DER (:class:`~pkcard.certs.DerCache`)."""

    def __init__(self, size: int = DER_CACHE_SIZE) -> None:
        super().__init__(signer_certificate, size)


def sign_detached(
    document: bytes,
    certificate_der: bytes,
    sign: CardSigner,
    *,
    signing_time: datetime | None = None,
) -> bytes:
    """A DER ContentInfo: detached CAdES-BES SignedData over ``document``.

    ``certificate_der`` is the signer's certificate (the card's EF.C.Sign);
    ``sign`` gets the SHA-256 of the signed attributes and returns the RSA
    PKCS#1 v1.5 signature. ``signing_time`` defaults to now.
    """
    return sign_detached_digest(
        hashlib.sha256(document).digest(), certificate_der, sign, signing_time=signing_time
    )


def sign_detached_digest(
    document_sha256: bytes,
    certificate: bytes | SignerCertificate,
    sign: CardSigner,
    *,
    signing_time: datetime | None = None,
) -> bytes:
    """:func:`sign_detached` for a document the caller hashed (its 32-byte SHA-256).

    ``certificate`` is the signer's DER, or the same prepared once
    (:func:`signer_certificate`, :class:`SignerCache`) for many signatures.
    """
    if len(document_sha256) != hashlib.sha256().digest_size:
        raise FormatError("the document hash must be a 32-byte SHA-256 digest")
    signer = certificate if isinstance(certificate, SignerCertificate) else (
        signer_certificate(certificate))
    issuer_der, serial_der = signer.issuer_der, signer.serial_der
    attributes = _signed_attributes_der(
        document_sha256, signer.certificate_sha256, issuer_der, serial_der,
        signing_time or datetime.now(UTC),
    )
    signature = sign(hashlib.sha256(_tlv(_SET, attributes)).digest())
    signer_info = _tlv(
        _SEQUENCE,
        _VERSION_1,
        _tlv(_SEQUENCE, issuer_der, serial_der),  # sid: issuer and serial number
        _ALGORITHM_SHA256,
        _tlv(_CONTEXT_0, attributes),  # [0] IMPLICIT SET OF Attribute
        _ALGORITHM_RSA_PKCS1,
        _tlv(_OCTET_STRING, signature),
    )
    signed_data = _tlv(
        _SEQUENCE,
        _VERSION_1,
        _tlv(_SET, _ALGORITHM_SHA256),
        _tlv(_SEQUENCE, _OID_DATA),  # encapsulated content: data, detached
        _tlv(_CONTEXT_0, signer.certificate_der),  # certificates [0] IMPLICIT
        _tlv(_SET, signer_info),
    )
    return _tlv(_SEQUENCE, _OID_SIGNED_DATA, _tlv(_CONTEXT_0, signed_data))


# --- verification ---------------------------------------------------------------


def _reject(reason: SignatureRejection, detail: str | None = None) -> SignatureRejected:
    return SignatureRejected(reason, detail)


def _attribute(signed_attrs: cms.CMSAttributes, name: str) -> Any:
    """The one value of the signed attribute ``name`` (an asn1crypto value)."""
    found = [a for a in signed_attrs if a["type"].native == name]
    if len(found) != 1 or len(found[0]["values"]) != 1:
        raise _reject(SignatureRejection.ATTRIBUTE_MISSING, f"need exactly one {name} attribute")
    return found[0]["values"][0]


def _signer_certificate(
    signed_data: cms.SignedData, signer_info: cms.SignerInfo
) -> asn1_x509.Certificate:
    sid = signer_info["sid"]
    for choice in signed_data["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (
                cert.issuer == wanted["issuer"]
                and cert.serial_number == wanted["serial_number"].native
            ):
                return cert
        elif cert.key_identifier == sid.chosen.native:
            return cert
    raise _reject(SignatureRejection.SIGNER_NOT_FOUND, "the signer's certificate is not included")


def _check_signature(
    cert: x509.Certificate, algorithm: algos.SignedDigestAlgorithm, signature: bytes, data: bytes
) -> None:
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: PLC0415

    key = certificate_key(cert)
    name = algorithm["algorithm"].native
    try:
        if name in ("rsassa_pkcs1v15", "sha256_rsa") and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif name in ("sha256_ecdsa", "ecdsa") and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise _reject(SignatureRejection.UNSUPPORTED_ALGORITHM, f"{name} with this key")
    except InvalidSignature:
        raise _reject(SignatureRejection.BAD_SIGNATURE) from None


def _check_issuer(cert: x509.Certificate, anchors: Sequence[x509.Certificate]) -> x509.Certificate:
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm  # noqa: PLC0415

    for anchor in anchors:
        if anchor.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return anchor
    raise _reject(SignatureRejection.CHAIN_INVALID, "no trust anchor issued the signer")


def _check_key_usage(cert: x509.Certificate) -> None:
    from cryptography import x509  # noqa: PLC0415

    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.content_commitment or usage.digital_signature):
        raise _reject(SignatureRejection.KEY_USAGE, "the key may not sign content")


def _check_valid(cert: x509.Certificate, moment: datetime, what: str) -> None:
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise _reject(SignatureRejection.CERT_NOT_VALID, f"{what} not valid at the signing time")


def verify_detached(
    cms_der: bytes,
    document: bytes,
    trust_anchors: Sequence[x509.Certificate],
    *,
    at: datetime | None = None,
) -> SignatureInfo:
    """Verify a detached CMS signature over ``document``; :class:`SignatureRejected` if not.

    The certificates must be valid at the signed signing time (or ``at``, or
    now, when the signature carries none).
    """
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415

    try:
        return _verify(cms_der, document, trust_anchors, at)
    except CertificateError:  # the included certificate (pkcard.certs.load_certificate)
        raise _reject(SignatureRejection.MALFORMED, "malformed signer certificate") from None
    except UnsupportedAlgorithm:
        raise _reject(SignatureRejection.UNSUPPORTED_ALGORITHM, "unknown key type") from None
    except _ASN1_ERRORS as exc:
        # asn1crypto parses lazily: malformed DER surfaces wherever it is first read.
        raise _reject(SignatureRejection.MALFORMED, type(exc).__name__) from None


def _verify(
    cms_der: bytes,
    document: bytes,
    trust_anchors: Sequence[x509.Certificate],
    at: datetime | None,
) -> SignatureInfo:
    from asn1crypto import cms, tsp  # noqa: PLC0415 - tsp registers signing_certificate_v2

    del tsp  # imported for its registration only

    info = cms.ContentInfo.load(cms_der, strict=True)
    if info["content_type"].native != "signed_data":
        raise _reject(SignatureRejection.MALFORMED, "not a SignedData")
    signed_data = info["content"]
    if signed_data["encap_content_info"]["content"].native is not None:
        raise _reject(SignatureRejection.MALFORMED, "not a detached signature")
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise _reject(SignatureRejection.MALFORMED, "need exactly one signer")
    signer_info = signer_infos[0]
    if signer_info["digest_algorithm"]["algorithm"].native != "sha256":
        raise _reject(SignatureRejection.UNSUPPORTED_ALGORITHM, "digest is not SHA-256")
    signed_attrs = signer_info["signed_attrs"]
    if not signed_attrs:
        raise _reject(SignatureRejection.ATTRIBUTE_MISSING, "no signed attributes")

    asn1_cert = _signer_certificate(signed_data, signer_info)
    cert_der = bytes(asn1_cert.dump())
    cert = load_certificate(cert_der)
    _check_signature(
        cert,
        signer_info["signature_algorithm"],
        signer_info["signature"].native,
        _set_der(signed_attrs),
    )

    if _attribute(signed_attrs, "content_type").native != "data":
        raise _reject(SignatureRejection.MALFORMED, "content type is not data")
    digest = hashlib.sha256(document).digest()
    if _attribute(signed_attrs, "message_digest").native != digest:
        raise _reject(SignatureRejection.DIGEST_MISMATCH, "the document does not match")
    ess = _attribute(signed_attrs, "signing_certificate_v2")
    first = ess["certs"][0]
    if (
        first["hash_algorithm"]["algorithm"].native != "sha256"
        or first["cert_hash"].native != hashlib.sha256(cert_der).digest()
    ):
        raise _reject(SignatureRejection.SIGNING_CERT_MISMATCH)

    signing_time: datetime | None = None
    times = [a for a in signed_attrs if a["type"].native == "signing_time"]
    if times:
        signing_time = _attribute(signed_attrs, "signing_time").native
    moment = signing_time or at or datetime.now(UTC)
    _check_key_usage(cert)
    _check_valid(cert, moment, "the signer's certificate")
    anchor = _check_issuer(cert, trust_anchors)
    _check_valid(anchor, moment, "the trust anchor")
    return SignatureInfo(
        signer=parse_certificate(cert_der),
        signing_time=signing_time,
        message_digest=digest,
        trust_anchor=anchor.subject.rfc4514_string(),
    )
