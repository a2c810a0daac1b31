"""A throwaway in-memory PKI for tests, the benchmark and a development backend.

It mints CAs and card certificates shaped like the test PKI in fixtures/pki/
(EC P-256 or RSA-2048 card keys, keyUsage digitalSignature, extendedKeyUsage
clientAuth) and signs hashes the way the cards do (docs/card-profile.md,
INTERNAL AUTHENTICATE). Never use these keys for anything real.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pkcard.token import CardSigner, Environment

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeyKind(IntEnum):
    """The card key types the card profile allows."""

    EC_P256 = 1
    RSA_2048 = 2


@dataclass(frozen=True)
class Issued:
    """A private key and its certificate."""

    key: PrivateKey
    cert: x509.Certificate


def new_key(kind: KeyKind) -> PrivateKey:
    if kind is KeyKind.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, serial: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "SI"),
             x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if serial is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


def _serial_number(seed: str) -> int:
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:16], "big") >> 1


def make_ca(common_name: str, not_before: datetime, years: int = 20) -> Issued:
    """A self-signed EC P-256 root CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial_number(common_name))
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          key_cert_sign=True, crl_sign=True, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue_card_cert(
    ca: Issued,
    common_name: str,
    subject_serial: str | None,
    kind: KeyKind,
    *,
    not_before: datetime,
    not_after: datetime,
    digital_signature: bool = True,
    key: PrivateKey | None = None,
) -> Issued:
    """A card authentication certificate issued by ``ca`` (``subject_serial`` None: no
    subject serialNumber, for tests of the verifier's refusals)."""
    card_key = key if key is not None else new_key(kind)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, subject_serial))
        .issuer_name(ca.cert.subject)
        .public_key(card_key.public_key())
        .serial_number(_serial_number(f"{common_name}/{subject_serial}/{not_before}"))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                          key_encipherment=not digital_signature, data_encipherment=False,
                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(card_key, cert)


def card_signer(key: PrivateKey) -> CardSigner:
    """Sign a 32-byte hash as INTERNAL AUTHENTICATE does: raw r || s, or RSA-PSS salt 32."""

    def sign(digest: bytes) -> bytes:
        if len(digest) != 32:
            raise ValueError("INTERNAL AUTHENTICATE takes a 32-byte hash")
        if isinstance(key, ec.EllipticCurvePrivateKey):
            der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            r, s = utils.decode_dss_signature(der)
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return key.sign(
            digest,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            utils.Prehashed(hashes.SHA256()),
        )

    return sign


@dataclass(frozen=True)
class DevPki:
    """The PK CA and KZZ CA of one environment."""

    environment: Environment
    pk_ca: Issued
    kzz_ca: Issued

    @classmethod
    def create(cls, environment: Environment, not_before: datetime) -> DevPki:
        label = "TEST" if environment is Environment.TEST else "PROD-LIKE"
        return cls(
            environment,
            make_ca(f"pkcard {label} PK CA", not_before),
            make_ca(f"pkcard {label} KZZ CA", not_before),
        )
