"""The OpenSC personality of the simulated PK (docs/card-profile.md, "OpenSC personality")."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given
from hypothesis import strategies as st
from simcard_terminal import MakeTerminal, Terminal

from pkcard.simcard.isoapplet import (
    ISOAPPLET_AID,
    IsoAlgorithm,
    SecurityEnvironmentError,
    parse_security_environment,
)
from pkcard.simcard.spec import SecretRef

# DigestInfo of SHA-256 (RFC 8017, 9.2 note 1) + the hash: what OpenSC sends for RSA
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
MESSAGE = b"pkcard: a referral letter"


def select_applet(t: Terminal) -> tuple[bytes, int]:
    return t.send(bytes([0x00, 0xA4, 0x04, 0x00, len(ISOAPPLET_AID)]) + ISOAPPLET_AID)


def set_environment(t: Terminal, algorithm: int, key_ref: int) -> int:
    return t.sw(bytes.fromhex("0022 41B6 06 8001") + bytes([algorithm])
                + bytes.fromhex("8401") + bytes([key_ref]))


def pso_cds(t: Terminal, data: bytes) -> tuple[bytes, int]:
    return t.send_full(bytes([0x00, 0x2A, 0x9E, 0x9A, len(data)]) + data + b"\x00")


def certificate(t: Terminal, fid: int) -> x509.Certificate:
    t.select_app()
    return x509.load_der_x509_certificate(t.read_file(fid))


def test_selecting_the_applet_answers_its_version_without_le(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert select_applet(t) == (bytes([0x00, 0x06, 0x06]), 0x9000)


def test_the_kzz_is_no_isoapplet(terminal: MakeTerminal) -> None:
    assert select_applet(terminal("kzz"))[1] == 0x6A82


def test_ecdsa_with_the_authentication_key_needs_the_pin(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    public = certificate(t, 0xC101).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    select_applet(t)
    assert set_environment(t, IsoAlgorithm.ECDSA, 0x01) == 0x9000
    assert pso_cds(t, MESSAGE) == (b"", 0x6982)
    assert t.verify(SecretRef.PIN) == 0x9000
    signature, sw = pso_cds(t, MESSAGE)
    assert sw == 0x9000
    public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA1()))  # DER, card-side SHA-1
    assert t.card.is_verified(SecretRef.PIN)  # the PIN is not consumed


def test_rsa_pkcs1_with_the_kpep_key_consumes_the_spin(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    public = certificate(t, 0xC102).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    digest = hashlib.sha256(MESSAGE).digest()
    assert set_environment(t, IsoAlgorithm.RSA_PKCS1, 0x02) == 0x9000
    assert t.verify(SecretRef.SPIN) == 0x9000
    signature, sw = pso_cds(t, SHA256_DIGEST_INFO + digest)
    assert sw == 0x9000
    public.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    assert not t.card.is_verified(SecretRef.SPIN)  # sole control
    assert pso_cds(t, SHA256_DIGEST_INFO + digest) == (b"", 0x6982)


@pytest.mark.parametrize(("command", "sw"), [
    ("0022 41B6 06 8001 99 8401 01", 0x6A80),  # unknown algorithm
    ("0022 41B6 03 8001 11", 0x6A80),  # no key reference
    ("0022 41B6 06 8001 11 8401 07", 0x6A88),  # unknown key
    ("0022 41A4 06 8001 11 8401 01", 0x6A86),  # not a digital signature template
    ("0022 41B6 04 8002 1100", 0x6A80),  # malformed algorithm reference
])
def test_bad_environments_are_refused(terminal: MakeTerminal, command: str, sw: int) -> None:
    assert terminal("pk-regular").sw(bytes.fromhex(command.replace(" ", ""))) == sw


def test_wrong_key_type_or_oversized_data_is_refused(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert t.verify(SecretRef.PIN) == 0x9000
    assert set_environment(t, IsoAlgorithm.RSA_PKCS1, 0x01) == 0x9000  # key 01 is EC
    assert pso_cds(t, SHA256_DIGEST_INFO + bytes(32)) == (b"", 0x6A80)
    assert set_environment(t, IsoAlgorithm.RSA_PKCS1, 0x02) == 0x9000
    assert t.verify(SecretRef.SPIN) == 0x9000
    assert pso_cds(t, bytes(246)) == (b"", 0x6A80)  # more than k - 11 bytes


def test_a_reset_drops_the_environment(terminal: MakeTerminal) -> None:
    """Without an environment PSO is the profile's own: a SHA-256 hash, nothing else."""
    t = terminal("pk-regular")
    assert set_environment(t, IsoAlgorithm.RSA_PKCS1, 0x02) == 0x9000
    t.card.reset()
    t.select_app()
    assert t.verify(SecretRef.SPIN) == 0x9000
    assert pso_cds(t, SHA256_DIGEST_INFO + bytes(32)) == (b"", 0x6700)


@given(st.binary(max_size=16))
def test_any_template_parses_or_is_refused_with_the_typed_error(data: bytes) -> None:
    try:
        environment = parse_security_environment(data)
    except SecurityEnvironmentError:
        return
    assert environment.algorithm in IsoAlgorithm
