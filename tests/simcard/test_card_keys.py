"""INTERNAL AUTHENTICATE, PSO COMPUTE DIGITAL SIGNATURE and GET CHALLENGE."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from simcard_terminal import MakeTerminal, Terminal

from pkcard.simcard.spec import SecretRef

DIGEST = hashlib.sha256(b"pkcard session token").digest()
PREHASHED = utils.Prehashed(hashes.SHA256())


def internal_authenticate(t: Terminal, key_ref: int, data: bytes = DIGEST) -> tuple[bytes, int]:
    return t.send(bytes([0x00, 0x88, 0x00, key_ref, len(data)]) + data + b"\x00")


def pso_cds(t: Terminal, data: bytes = DIGEST) -> tuple[bytes, int]:
    return t.send(bytes([0x00, 0x2A, 0x9E, 0x9A, len(data)]) + data + b"\x00")


def certificate(t: Terminal, fid: int) -> x509.Certificate:
    t.select_app()
    return x509.load_der_x509_certificate(t.read_file(fid))


def test_ec_authentication_needs_the_pin_and_answers_raw_r_s(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert internal_authenticate(t, 1) == (b"", 0x6982)
    assert t.verify(SecretRef.PIN) == 0x9000
    signature, sw = internal_authenticate(t, 1)
    assert sw == 0x9000
    assert len(signature) == 64
    public = certificate(t, 0xC101).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public.verify(der, DIGEST, ec.ECDSA(PREHASHED))
    with pytest.raises(InvalidSignature):
        public.verify(der, hashlib.sha256(b"other").digest(), ec.ECDSA(PREHASHED))
    assert t.card.is_verified(SecretRef.PIN)  # authentication does not consume the PIN


def test_rsa_authentication_is_pss(terminal: MakeTerminal) -> None:
    t = terminal("pk-backup")
    assert t.verify(SecretRef.PIN) == 0x9000
    signature, sw = internal_authenticate(t, 1)
    assert sw == 0x9000
    assert len(signature) == 256
    public = certificate(t, 0xC101).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public.verify(signature, DIGEST, pss, PREHASHED)


def test_kzz_authentication_needs_nothing(terminal: MakeTerminal) -> None:
    t = terminal("kzz")
    signature, sw = internal_authenticate(t, 1)
    assert sw == 0x9000
    public = certificate(t, 0xC101).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public.verify(der, DIGEST, ec.ECDSA(PREHASHED))


def test_internal_authenticate_refusals(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    t.verify(SecretRef.PIN)
    assert internal_authenticate(t, 1, DIGEST[:31])[1] == 0x6700
    assert internal_authenticate(t, 2)[1] == 0x6985  # the KPEP key does not authenticate
    assert internal_authenticate(t, 3)[1] == 0x6A88
    assert t.sw(b"\x00\x88\x01\x01\x20" + DIGEST + b"\x00") == 0x6A86


def test_signature_needs_the_spin_every_time(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert pso_cds(t) == (b"", 0x6982)
    assert t.verify(SecretRef.PIN) == 0x9000
    assert pso_cds(t) == (b"", 0x6982)  # the PIN does not authorise the KPEP key
    assert t.verify(SecretRef.SPIN) == 0x9000
    signature, sw = pso_cds(t)
    assert sw == 0x9000
    public = certificate(t, 0xC102).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, DIGEST, padding.PKCS1v15(), PREHASHED)
    assert not t.card.is_verified(SecretRef.SPIN)
    assert pso_cds(t) == (b"", 0x6982)  # sole control: one signature per SPIN entry
    assert t.verify(SecretRef.SPIN) == 0x9000
    assert pso_cds(t, DIGEST[:20])[1] == 0x6700  # a refused command consumes nothing
    assert pso_cds(t)[1] == 0x9000


def test_signature_refusals(terminal: MakeTerminal) -> None:
    assert pso_cds(terminal("pk-transport"))[1] == 0x6984
    assert pso_cds(terminal("pk-nurse"))[1] == 0x6A88
    assert pso_cds(terminal("kzz"))[1] == 0x6A88
    assert terminal("pk-regular").sw(b"\x00\x2a\x9e\x9b\x20" + DIGEST + b"\x00") == 0x6A86


def test_get_challenge(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    first, sw = t.send("0084000008")
    assert sw == 0x9000
    assert len(first) == 8
    second, _ = t.send("0084000008")
    assert first != second
    full, sw = t.send("0084000000")
    assert sw == 0x9000
    assert len(full) == 256
    assert t.sw("00840000") == 0x6700
    assert t.sw("0084010008") == 0x6A86
