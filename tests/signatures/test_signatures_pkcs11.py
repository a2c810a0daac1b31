"""pkcardd configured with a PKCS#11 card backend (SoftHSM2) signs documents openssl accepts."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sigrig import kpep_der, openssl_verify, secret

from pkcard.errors import WrongPin
from pkcard.pin import PinRef, PinState
from pkcard.pkcs11 import Pkcs11Module
from pkcard.simcard.profile import load_profile
from pkcard.simcard.softhsm import SOFTHSM_MODULE, provision_pk, softhsm_conf, write_config
from pkcard.simcard.spec import SecretRef
from tests.daemon.daemon_harness import PK_READER, RunningDaemon, make_root, start_daemon

SPIN = secret("pk-regular", SecretRef.SPIN)
DOCUMENT = b"napotnica: pacient 900000011 -> ORL, signed through PKCS#11\n"


@pytest.fixture(scope="module")
def pkcs11_daemon() -> Iterator[RunningDaemon]:
    """pkcardd --simulated whose PIN-pad reader is served by SoftHSM2 tokens of pk-regular."""
    if not SOFTHSM_MODULE.exists():
        pytest.skip(f"SoftHSM2 is not installed ({SOFTHSM_MODULE})")
    root = make_root()
    conf = write_config(root / "softhsm")
    with softhsm_conf(conf):
        module = Pkcs11Module.load(SOFTHSM_MODULE)
        try:
            tokens = provision_pk(module, load_profile("pk-regular"))
        finally:
            module.close()
        config = root / "pkcardd.toml"
        config.write_text(
            "[[card_backends]]\n"
            f'reader = "{PK_READER}"\n'
            'driver = "pkcs11"\n'
            f'module = "{SOFTHSM_MODULE}"\n'
            f'card_token = {{ serial = "{tokens.card_serial}" }}\n'
            f'signature_token = {{ serial = "{tokens.signature_serial}" }}\n'
        )
        daemon = start_daemon(root, "--config", str(config))  # inherits SOFTHSM2_CONF
    yield daemon
    daemon.close()
    shutil.rmtree(root, ignore_errors=True)


def test_pkcs11_backend_signs_what_openssl_verifies(
    pkcs11_daemon: RunningDaemon, tmp_path: Path
) -> None:
    # The simulated card leaves the reader: only the PKCS#11 tokens can answer.
    pkcs11_daemon.remove(PK_READER)
    with pkcs11_daemon.client() as client:
        reading = client.get_card(PK_READER)
        signed = client.sign_document(PK_READER, DOCUMENT, spin=SPIN)
        info = client.verify_document(DOCUMENT, signed.cms)
    assert reading.backend == "pkcs11"
    assert reading.pk is not None
    assert reading.pk.card_serial == "PK0000100001"
    assert signed.signer.der == kpep_der()
    assert signed.document_sha256 == hashlib.sha256(DOCUMENT).digest()
    assert info.signer.sha256_fingerprint == signed.signer.sha256_fingerprint
    result = openssl_verify(signed.cms, DOCUMENT, tmp_path)
    assert result.returncode == 0, result.stderr


def test_pkcs11_backend_needs_the_spin_each_time(pkcs11_daemon: RunningDaemon) -> None:
    with pkcs11_daemon.client() as client:
        client.sign_document(PK_READER, DOCUMENT, spin=SPIN)
        with pytest.raises(WrongPin):
            client.sign_document(PK_READER, DOCUMENT, spin=SPIN[:-1] + "0")
        client.sign_document(PK_READER, DOCUMENT, spin=SPIN)  # a right SPIN resets the count


def test_pin_calls_use_the_token_too(pkcs11_daemon: RunningDaemon) -> None:
    pkcs11_daemon.remove(PK_READER)
    pin = secret("pk-regular", SecretRef.PIN)
    with pkcs11_daemon.client() as client:
        statuses = {s.ref: s for s in client.get_pin_status(PK_READER)}
        verified = client.verify_pin(PK_READER, PinRef.PIN, pin)
        with pytest.raises(WrongPin):
            client.verify_pin(PK_READER, PinRef.PIN, pin[:-1] + ("0" if pin[-1] != "0" else "1"))
        client.verify_pin(PK_READER, PinRef.PIN, pin)  # resets the try counter
    assert statuses[PinRef.PIN].state is PinState.VERIFIABLE
    assert statuses[PinRef.SPIN].state is PinState.VERIFIABLE
    assert verified.state is PinState.VERIFIED
