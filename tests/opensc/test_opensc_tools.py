"""OpenSC's own tools read the simulated PK through pcscd + vpcd (no pkcard code in between)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from pkcard.simcard.card import SimulatedCard, load_card
from pkcard.simcard.opensc import (
    OPENSC_CONF_VARIABLE,
    OPENSC_MODULE,
    SIGNATURE_TOKEN_SUFFIX,
    write_opensc_config,
)
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.pkcs15 import TOKEN_LABEL
from pkcard.simcard.spec import KeyUse, SecretRef

pytestmark = pytest.mark.pcsc

SLOT = 0  # a reader without a PIN pad
WRONG_PIN = "47195283"  # fictional test value
Run = Callable[..., str]


@pytest.fixture
def opensc(pcscd_env: PcscdHarness, tmp_path: Path) -> tuple[SimulatedCard, Run]:
    """A fresh pk-regular in the reader and ``run(tool, *args) -> stdout`` with a private conf."""
    if shutil.which("pkcs15-tool") is None:
        pytest.skip("OpenSC tools are not installed")
    card = load_card("pk-regular")
    pcscd_env.insert(SLOT, card)
    env = dict(os.environ)
    env[OPENSC_CONF_VARIABLE] = str(write_opensc_config(tmp_path, [card.atr]))
    reader = pcscd_env.reader_name(SLOT)

    def run(tool: str, *args: str, check: bool = True) -> str:
        # pkcs11-tool picks its slot by token label; the other tools take the reader
        choose = [] if tool == "pkcs11-tool" else ["--reader", reader]
        done = subprocess.run(
            [tool, *choose, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check:
            assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    return card, run


def test_pkcs15_tool_lists_the_profile(opensc: tuple[SimulatedCard, Run]) -> None:
    _, run = opensc
    dump = run("pkcs15-tool", "--dump")
    assert "PKCS#15 Card [pkcard PK]" in dump
    for label in ("PIN [PIN]", "PIN [PUK]", "PIN [SPIN]"):
        assert label in dump
    assert "Reference      : 129 (0x81)" in dump
    assert "Private EC Key [auth]" in dump
    assert "Private RSA Key [sign]" in dump
    assert "X.509 Certificate [auth]" in dump


def test_certificates_match_the_fixtures(opensc: tuple[SimulatedCard, Run]) -> None:
    card, run = opensc
    for key_id, use in (("01", KeyUse.AUTHENTICATION), ("02", KeyUse.SIGNATURE)):
        pem = run("pkcs15-tool", "--read-certificate", key_id)
        start = pem.index("-----BEGIN CERTIFICATE-----")
        read = x509.load_pem_x509_certificate(pem[start:].encode("ascii"))
        fixture = card.profile.key(use).certificate_path.read_bytes()
        expected = x509.load_pem_x509_certificate(fixture)
        assert read.public_bytes(Encoding.DER) == expected.public_bytes(Encoding.DER)


def test_data_objects_are_listed(opensc: tuple[SimulatedCard, Run]) -> None:
    _, run = opensc
    listing = run("pkcs15-tool", "--list-data-objects")
    assert "EF.CardInfo" in listing
    assert "EF.Holder" in listing
    assert "pkcard" in listing


def test_three_wrong_pins_through_opensc_block_the_card(
    opensc: tuple[SimulatedCard, Run],
) -> None:
    card, run = opensc
    for tries_left in (2, 1, 0):
        run("pkcs15-tool", "--verify-pin", "--auth-id", "01", "--pin", WRONG_PIN, check=False)
        assert card.tries_left(SecretRef.PIN) == tries_left
    right = card.profile.secret_value(SecretRef.PIN)
    run("pkcs15-tool", "--verify-pin", "--auth-id", "01", "--pin", right, check=False)
    assert card.tries_left(SecretRef.PIN) == 0
    assert not card.is_verified(SecretRef.PIN)


def test_opensc_drives_the_card_with_a_driver_that_knows_its_algorithms(
    opensc: tuple[SimulatedCard, Run],
) -> None:
    _, run = opensc
    name = run("opensc-tool", "--name")
    assert "Unsupported card" not in name
    assert "IsoApplet" in name
    dump = run("pkcs15-tool", "--dump")
    assert "FieldLength    : 256" in dump


def _pkcs11_tool(run: Run, token: str, *args: str) -> str:
    return run("pkcs11-tool", "--module", str(OPENSC_MODULE), "--token-label", token, *args)


def test_pkcs11_tool_lists_signature_mechanisms(opensc: tuple[SimulatedCard, Run]) -> None:
    _, run = opensc
    mechanisms = _pkcs11_tool(run, TOKEN_LABEL, "--list-mechanisms")
    assert "ECDSA" in mechanisms
    assert "RSA-PKCS" in mechanisms


@pytest.mark.parametrize(("token", "secret"), [(TOKEN_LABEL, SecretRef.PIN),
                                               (TOKEN_LABEL + SIGNATURE_TOKEN_SUFFIX,
                                                SecretRef.SPIN)],
                         ids=["auth-key-pin", "sign-key-spin"])
def test_pkcs11_tool_self_test_signs_and_verifies(
    opensc: tuple[SimulatedCard, Run], token: str, secret: SecretRef,
) -> None:
    card, run = opensc
    report = _pkcs11_tool(run, token, "--test", "--login", "--pin",
                          card.profile.secret_value(secret))
    assert "Signatures: not implemented" not in report
    assert "No errors" in report, report


def test_pkcs11_tool_signs_with_the_ec_authentication_key(
    opensc: tuple[SimulatedCard, Run], tmp_path: Path,
) -> None:
    """pkcs11-tool --test checks RSA keys only: the EC key is signed with and verified here.

    OpenSC 0.23's isoApplet driver offers ECDSA-SHA1 alone (the card hashes).
    """
    card, run = opensc
    message = b"pkcard: a document to sign"
    (tmp_path / "message").write_bytes(message)
    _pkcs11_tool(run, TOKEN_LABEL, "--login", "--pin", card.profile.secret_value(SecretRef.PIN),
                 "--sign", "--mechanism", "ECDSA-SHA1", "--id", "01",
                 "--input-file", str(tmp_path / "message"),
                 "--output-file", str(tmp_path / "signature"), "--signature-format", "openssl")
    certificate = x509.load_pem_x509_certificate(
        card.profile.key(KeyUse.AUTHENTICATION).certificate_path.read_bytes())
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify((tmp_path / "signature").read_bytes(), message,
                      ec.ECDSA(hashes.SHA1()))
    assert card.is_verified(SecretRef.PIN)
