"""Hostile X.509 certificates: each one breaks one part ``cryptography`` decodes lazily.

:func:`hostile_certificates` rewrites a valid certificate (its TBS, re-signed
by the issuing CA's key, so chain checks reach the broken part) in one place
per entry: a subject, issuer or serialNumber attribute holding a BIT STRING
under an OID other than x500UniqueIdentifier, an INTEGER-valued attribute,
duplicate or malformed extensions, odd serials, impossible validity times, a
broken or unknown public key, an unknown version or signature algorithm.
The x509 fuzz target starts from them, and the tests feed each through every
path that loads a certificate from untrusted bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asn1crypto import core, keys
from asn1crypto import x509 as ax
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

Mutation = Callable[[Any], None]
"""Rewrites an asn1crypto TBSCertificate in place."""

_PRIVATE_OID = "1.3.6.1.4.1.99999.1"
_CN = "2.5.4.3"
_SERIAL_NUMBER = "2.5.4.5"


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


def _attribute(oid: str, value: core.Asn1Value) -> Any:
    """One RDN holding one attribute, built from raw DER (asn1crypto checks known OIDs)."""
    pair = _der(0x30, core.ObjectIdentifier(oid).dump() + value.dump())
    return ax.RelativeDistinguishedName.load(_der(0x31, pair))


def _add_rdn(field: str, oid: str, value: core.Asn1Value) -> Mutation:
    def mutate(tbs: Any) -> None:
        rdns = [*tbs[field].chosen, _attribute(oid, value)]
        tbs[field] = ax.Name(name="", value=ax.RDNSequence(rdns))

    return mutate


def _replace_attribute(field: str, oid: str, value: core.Asn1Value) -> Mutation:
    def mutate(tbs: Any) -> None:
        rdns = [
            _attribute(oid, value) if rdn[0]["type"].dotted == oid else rdn
            for rdn in tbs[field].chosen
        ]
        tbs[field] = ax.Name(name="", value=ax.RDNSequence(rdns))

    return mutate


def _extension(oid: str, critical: bool, value_der: bytes) -> ax.Extension:
    """An extension built from raw DER (asn1crypto checks the values of known OIDs)."""
    flag = core.Boolean(True).dump() if critical else b""
    body = core.ObjectIdentifier(oid).dump() + flag + _der(0x04, value_der)
    return ax.Extension.load(_der(0x30, body))


def _add_extension(oid: str, value_der: bytes, *, critical: bool = False) -> Mutation:
    def mutate(tbs: Any) -> None:
        extensions = [*tbs["extensions"], _extension(oid, critical, value_der)]
        tbs["extensions"] = ax.Extensions(extensions)

    return mutate


def _duplicate_extension(tbs: Any) -> None:
    extensions = list(tbs["extensions"])
    tbs["extensions"] = ax.Extensions([*extensions, ax.Extension.load(extensions[-1].dump())])


def _replace_extension(oid: str, value_der: bytes) -> Mutation:
    def mutate(tbs: Any) -> None:
        tbs["extensions"] = ax.Extensions([
            _extension(oid, bool(e["critical"].native), value_der)
            if e["extn_id"].dotted == oid else e
            for e in tbs["extensions"]
        ])

    return mutate


def _serial(value: int) -> Mutation:
    def mutate(tbs: Any) -> None:
        tbs["serial_number"] = value

    return mutate


def _validity(field: str, time_der: bytes) -> Mutation:
    def mutate(tbs: Any) -> None:
        validity = ax.Validity.load(tbs["validity"].dump())
        validity[field] = ax.Time.load(time_der)
        tbs["validity"] = validity

    return mutate


def _version(value: int) -> Mutation:
    def mutate(tbs: Any) -> None:
        tbs["version"] = value

    return mutate


def _public_key(algorithm_der: bytes | None, key_der: bytes) -> Mutation:
    """Replace the key bits (and the algorithm, when given) with raw DER."""

    def mutate(tbs: Any) -> None:
        old = tbs["subject_public_key_info"]
        algorithm = algorithm_der if algorithm_der is not None else old["algorithm"].dump()
        info = _der(0x30, algorithm + _der(0x03, b"\0" + key_der))
        tbs["subject_public_key_info"] = keys.PublicKeyInfo.load(info)

    return mutate


def _ec_point_off_curve(tbs: Any) -> None:
    point = b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big")
    _public_key(None, point)(tbs)


def _signature_algorithm(tbs: Any) -> None:
    tbs["signature"] = ax.SignedDigestAlgorithm({"algorithm": _PRIVATE_OID})


_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_BIT_STRING = core.BitString((1, 0, 1, 1))

MUTATIONS: dict[str, Mutation] = {
    "subject-bitstring-cn": _add_rdn("subject", _CN, _BIT_STRING),
    "subject-bitstring-private-oid": _add_rdn("subject", _PRIVATE_OID, _BIT_STRING),
    "subject-serial-bitstring": _replace_attribute("subject", _SERIAL_NUMBER, _BIT_STRING),
    "subject-integer-attribute": _add_rdn("subject", _CN, core.Integer(7)),
    "subject-empty-country": _replace_attribute("subject", "2.5.4.6", core.PrintableString("")),
    "issuer-bitstring-cn": _add_rdn("issuer", _CN, _BIT_STRING),
    "ext-duplicate": _duplicate_extension,
    "ext-key-usage-null": _replace_extension("2.5.29.15", b"\x05\x00"),
    "ext-key-usage-truncated": _replace_extension("2.5.29.15", b"\x03\x05\x00"),
    "ext-basic-constraints-garbage": _replace_extension("2.5.29.19", b"\x30\x03\x02\x01\xff"),
    "ext-san-bad-ip": _add_extension("2.5.29.17", b"\x30\x07\x87\x05\x01\x02\x03\x04\x05"),
    "ext-san-x400": _add_extension("2.5.29.17", b"\x30\x04\xa3\x02\x30\x00"),
    "ext-san-bad-dns-text": _add_extension("2.5.29.17", b"\x30\x04\x82\x02\xff\xfe"),
    "ext-policies-garbage": _add_extension("2.5.29.32", b"\x30\x03\x30\x01\x00"),
    "serial-negative": _serial(-5),
    "serial-zero": _serial(0),
    "serial-huge": _serial(2**400),
    "validity-month-13": _validity("not_before", _der(_UTC_TIME, b"261399000000Z")),
    "validity-no-zulu": _validity("not_after", _der(_UTC_TIME, b"2612310000+0100")),
    "validity-generalized-early": _validity(
        "not_before", _der(_GENERALIZED_TIME, b"20200101000000Z")),
    "validity-year-0": _validity("not_after", _der(_GENERALIZED_TIME, b"00000101000000Z")),
    "key-ec-off-curve": _ec_point_off_curve,
    "key-ec-garbage": _public_key(None, b"\x04\x01\x02"),
    "key-ec-unknown-curve": _public_key(
        _der(0x30, core.ObjectIdentifier("1.2.840.10045.2.1").dump()
             + core.ObjectIdentifier(_PRIVATE_OID).dump()), b"\x04\x01\x02"),
    "key-unknown-algorithm": _public_key(
        _der(0x30, core.ObjectIdentifier(_PRIVATE_OID).dump() + core.Null().dump()), b"\x01"),
    "key-rsa-garbage": _public_key(
        _der(0x30, core.ObjectIdentifier("1.2.840.113549.1.1.1").dump() + core.Null().dump()),
        b"\x30\x06\x02\x01\x00\x02\x01\x03"),
    "version-v4": _version(3),
    "signature-algorithm-unknown": _signature_algorithm,
}


def hostile_certificate(template_der: bytes, issuer_key: ec.EllipticCurvePrivateKey
                        | rsa.RSAPrivateKey, mutation: Mutation) -> bytes:
    """``template_der`` rewritten by ``mutation`` and signed again with ``issuer_key``."""
    template = ax.Certificate.load(template_der)
    tbs = ax.TbsCertificate.load(template["tbs_certificate"].dump())
    mutation(tbs)
    tbs_der = tbs.dump()
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        # RFC 6979: the same template and key give the same bytes (fuzz seeds, corpus)
        signature = issuer_key.sign(tbs_der, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        algorithm = "sha256_ecdsa"
    else:
        signature = issuer_key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA256())
        algorithm = "sha256_rsa"
    outer_algorithm = tbs["signature"] if mutation is _signature_algorithm else \
        ax.SignedDigestAlgorithm({"algorithm": algorithm})
    cert = ax.Certificate({
        "tbs_certificate": ax.TbsCertificate.load(tbs_der),
        "signature_algorithm": outer_algorithm,
        "signature_value": signature,
    })
    return bytes(cert.dump())


def hostile_certificates(
    template: Any, issuer_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> dict[str, bytes]:
    """Every entry of :data:`MUTATIONS` applied to ``template`` (a cryptography certificate)."""
    der = template.public_bytes(Encoding.DER)
    return {name: hostile_certificate(der, issuer_key, m) for name, m in MUTATIONS.items()}
