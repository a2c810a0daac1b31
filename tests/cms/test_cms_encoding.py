"""pkcard.cms writes the signature's DER directly: byte for byte what asn1crypto builds.

The reference below is the asn1crypto construction pkcard used before (issue
#14, G3: it cost ~2.8 ms per signature). Every certificate of the test PKI
and signing times on both sides of the UTCTime/GeneralizedTime switch must
give identical bytes, including the bytes that were signed.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pkcard.cms import sign_detached_digest

CARDS = Path(__file__).resolve().parents[2] / "fixtures" / "pki" / "cards"
CERTIFICATES = sorted(CARDS.glob("*/*-cert.pem"))
TIMES = (
    datetime(2026, 1, 15, 10, 30, tzinfo=UTC),
    datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2050, 1, 1, 0, 0, 0, tzinfo=UTC),
    datetime(1999, 3, 4, 5, 6, 7, 890, tzinfo=UTC),
)


def _reference(digest: bytes, certificate_der: bytes, signature: bytes,
               moment: datetime) -> tuple[bytes, bytes]:
    """(CMS DER, the hash that was signed) built with asn1crypto values."""
    certificate = asn1_x509.Certificate.load(certificate_der, strict=True)
    moment = moment.astimezone(UTC).replace(microsecond=0)
    time = cms.Time(name="utc_time" if moment.year <= 2049 else "generalized_time", value=moment)
    ess = tsp.SigningCertificateV2({"certs": [{
        "cert_hash": hashlib.sha256(certificate.dump()).digest(),
        "issuer_serial": {
            "issuer": [asn1_x509.GeneralName(name="directory_name", value=certificate.issuer)],
            "serial_number": certificate.serial_number,
        },
    }]})
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [time]}),
        cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
        cms.CMSAttribute({"type": "signing_certificate_v2",
                          "values": [tsp.SigningCertificateV2.load(ess.dump())]}),
    ]
    encoded = sorted(bytes(attribute.dump()) for attribute in attributes)
    signed_attrs = cms.CMSAttributes([cms.CMSAttribute.load(der) for der in encoded])
    to_be_signed = hashlib.sha256(b"\x31" + bytes(signed_attrs.dump())[1:]).digest()
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": certificate.issuer, "serial_number": certificate.serial_number}),
        "digest_algorithm": {"algorithm": "sha256"},
        "signed_attrs": signed_attrs,
        "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
        "signature": signature,
    })
    signed_data = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {"content_type": "data"},
        "certificates": [certificate],
        "signer_infos": [signer_info],
    })
    content = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
    return bytes(content.dump()), to_be_signed


def test_the_test_pki_has_certificates() -> None:
    assert len(CERTIFICATES) >= 8


@pytest.mark.parametrize("moment", TIMES, ids=lambda moment: moment.isoformat())
@pytest.mark.parametrize("path", CERTIFICATES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_signature_der_is_what_asn1crypto_builds(path: Path, moment: datetime) -> None:
    der = x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)
    digest = hashlib.sha256(path.name.encode()).digest()
    signature = bytes(range(256))  # any bytes: the card's answer is copied, not checked here
    signed: list[bytes] = []

    def sign(to_be_signed: bytes) -> bytes:
        signed.append(to_be_signed)
        return signature

    built = sign_detached_digest(digest, der, sign, signing_time=moment)
    expected, expected_hash = _reference(digest, der, signature, moment)
    assert signed == [expected_hash]
    assert built == expected
