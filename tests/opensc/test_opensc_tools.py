"""OpenSC's own tools read the simulated PK through pcscd + vpcd (no pkcard code in between)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pkcard.simcard.card import SimulatedCard, load_card
from pkcard.simcard.opensc import OPENSC_CONF_VARIABLE, write_opensc_config
from pkcard.simcard.pcscd_harness import PcscdHarness
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
        done = subprocess.run(
            [tool, "--reader", reader, *args],
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
