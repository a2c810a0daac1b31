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
from typing import Any

from asn1crypto import algos, cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pkcard.certs import CertificateInfo, certificate_key, load_certificate, parse_certificate
from pkcard.errors import CertificateError, FormatError, SignatureRejected, SignatureRejection

__all__ = [
    "CardSigner",
    "SignatureInfo",
    "SignedDocument",
    "sign_detached",
    "sign_detached_digest",
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


def _time(moment: datetime) -> cms.Time:
    moment = moment.astimezone(UTC).replace(microsecond=0)
    if moment.year <= _UTC_TIME_LAST_YEAR:
        return cms.Time(name="utc_time", value=moment)
    return cms.Time(name="general_time", value=moment)


def _signed_attributes(
    digest: bytes, certificate: asn1_x509.Certificate, signing_time: datetime
) -> cms.CMSAttributes:
    ess = tsp.SigningCertificateV2(
        {
            "certs": [
                {
                    "cert_hash": hashlib.sha256(certificate.dump()).digest(),
                    "issuer_serial": {
                        "issuer": [
                            asn1_x509.GeneralName(name="directory_name", value=certificate.issuer)
                        ],
                        "serial_number": certificate.serial_number,
                    },
                }
            ]
        }
    )
    # Freshly built asn1crypto values re-encode on every dump (tens of ms for
    # the nested ESS value); parsed ones reuse their bytes. So each value is
    # encoded once and parsed back.
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [_time(signing_time)]}),
        cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
        cms.CMSAttribute({
            "type": "signing_certificate_v2",
            "values": [tsp.SigningCertificateV2.load(ess.dump())],
        }),
    ]
    # DER: the elements of a SET OF in the order of their encodings.
    encoded = sorted(bytes(attribute.dump()) for attribute in attributes)
    return cms.CMSAttributes([cms.CMSAttribute.load(der) for der in encoded])


def _set_der(signed_attrs: cms.CMSAttributes) -> bytes:
    """The attributes as signed: their DER with the universal SET tag, not [0]."""
    der = bytes(signed_attrs.dump())
    return bytes([_SET_TAG]) + der[1:]


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
    certificate_der: bytes,
    sign: CardSigner,
    *,
    signing_time: datetime | None = None,
) -> bytes:
    """:func:`sign_detached` for a document the caller hashed (its 32-byte SHA-256)."""
    if len(document_sha256) != hashlib.sha256().digest_size:
        raise FormatError("the document hash must be a 32-byte SHA-256 digest")
    load_certificate(certificate_der)  # CertificateError for bytes cryptography refuses
    try:
        certificate = asn1_x509.Certificate.load(certificate_der, strict=True)
        _ = (certificate.issuer.native, certificate.serial_number)  # what the sid needs
    except _ASN1_ERRORS as exc:  # asn1crypto parses lazily too
        raise CertificateError(f"malformed signer certificate ({type(exc).__name__})") from None
    digest = document_sha256
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": certificate.issuer, "serial_number": certificate.serial_number},
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": _signed_attributes(
                digest, certificate, signing_time or datetime.now(UTC)
            ),
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": b"",
        }
    )
    to_be_signed = hashlib.sha256(_set_der(signer_info["signed_attrs"])).digest()
    signer_info["signature"] = sign(to_be_signed)
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "data"},
            "certificates": [certificate],
            "signer_infos": [signer_info],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())


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
