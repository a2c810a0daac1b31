"""A signer's certificate is prepared once (issue #14, G3): the same bytes, fewer parses.

SignDocument signs many documents with one KPEP certificate. pkcard.cms
prepares what a signature copies from it (:func:`signer_certificate`) and
pkcardd keeps the prepared signers by the certificate's DER
(:class:`SignerCache`): a signature made with a prepared signer is byte for
byte the one made from the DER, each certificate is parsed once, a different
certificate is a different entry, malformed bytes are refused every time
and never kept, and the cache is bounded.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import pkcard.cms
from pkcard.certs import CertificateInfo, parse_certificate
from pkcard.cms import SignerCache, SignerCertificate, sign_detached_digest, signer_certificate
from pkcard.errors import CertificateError

CARDS = Path(__file__).resolve().parents[2] / "fixtures" / "pki" / "cards"
CERTIFICATES = sorted(CARDS.glob("*/*-cert.pem"))
SIGNED_AT = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
SIGNATURE = bytes(range(256))


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


def _signed(certificate: bytes | SignerCertificate, digest: bytes) -> tuple[bytes, bytes]:
    seen: list[bytes] = []

    def sign(to_be_signed: bytes) -> bytes:
        seen.append(to_be_signed)
        return SIGNATURE

    cms = sign_detached_digest(digest, certificate, sign, signing_time=SIGNED_AT)
    return cms, seen[0]


@pytest.mark.parametrize("path", CERTIFICATES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_a_prepared_signer_signs_the_same_bytes(path: Path) -> None:
    der = _der(path)
    digest = hashlib.sha256(path.name.encode()).digest()
    prepared = signer_certificate(der)
    assert prepared.info == parse_certificate(der)
    assert _signed(prepared, digest) == _signed(der, digest)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    parsed: list[bytes] = []

    def parse(der: bytes) -> CertificateInfo:
        parsed.append(bytes(der))
        return parse_certificate(der)

    monkeypatch.setattr(pkcard.cms, "parse_certificate", parse)
    return parsed


def test_the_cache_parses_each_certificate_once(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = _counting(monkeypatch)
    cache = SignerCache()
    first, second = _der(CERTIFICATES[0]), _der(CERTIFICATES[1])
    a = cache.get(first)
    assert cache.get(bytearray(first)) is a
    b = cache.get(second)
    assert b.info.der == second
    assert a.info.der == first
    for _ in range(3):
        assert cache.get(first) is a
        assert cache.get(second) is b
    assert parsed == [first, second]


def test_malformed_bytes_are_refused_every_time_and_never_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed = _counting(monkeypatch)
    cache = SignerCache()
    for _ in range(2):
        with pytest.raises(CertificateError):
            cache.get(b"\x30\x00")
    assert len(cache) == 0
    assert len(parsed) == 2


def test_the_cache_is_bounded_and_drops_the_least_recently_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed = _counting(monkeypatch)
    ders = [_der(path) for path in CERTIFICATES[:3]]
    assert len(set(ders)) == 3
    cache = SignerCache(size=2)
    cache.get(ders[0])
    cache.get(ders[1])
    cache.get(ders[0])  # ders[1] is now the least recently used
    cache.get(ders[2])
    assert len(cache) == 2
    cache.get(ders[0])
    assert parsed == [ders[0], ders[1], ders[2]]
    cache.get(ders[1])  # dropped: parsed again
    assert parsed == [ders[0], ders[1], ders[2], ders[1]]
    with pytest.raises(ValueError, match="at least 1"):
        SignerCache(size=0)
