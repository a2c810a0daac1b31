"""The PK through OpenSC's opensc-pkcs11.so inside a real ``pkcardd --pcsc`` (issue #15 point 1).

The simulated pk-regular sits in a vpcd reader of the real pcscd; pkcardd's
``[[card_backends]]`` rule serves that reader with OpenSC's PKCS#11 module
(simcard/opensc.py's private opensc.conf, the isoApplet driver), the KZZ in
another reader with APDUs. OpenSC runs in the daemon's process, the card in
this one, so PyKCS11 holding the GIL cannot stall the card.

What works through OpenSC 0.23: GetCard (PKCS#15 data objects and
certificates), PIN verification and a qualified signature (RSA PKCS#1 v1.5
over the DigestInfo, checked against the test PK CAs). What does not: the session
token. Measured with ``pkcs11-tool --list-mechanisms`` on this card (and
``--sign``): the EC authentication key offers ECDSA-SHA1 alone (the card
hashes with SHA-1), C_SignInit with CKM_ECDSA and CKM_ECDSA_SHA256 answers
CKR_MECHANISM_INVALID, and RSA keys offer PKCS#1 v1.5 only (no
CKM_RSA_PKCS_PSS, no raw RSA). A session token is ES256 (ECDSA over
SHA-256) or PS256 (RSA-PSS) and nothing else (docs/token.md; the backend's
allow-list), so no key on the card can sign one through OpenSC 0.23: the
session test is a strict xfail with that reason, so the day OpenSC offers
the mechanism the suite says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sessionrig import AUTHORIZATIONS, Rig, profile_secret, rig

from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.cms import verify_detached
from pkcard.daemon.signatures import load_trust_anchors, simulated_trust_anchor_paths
from pkcard.errors import CardRemoved, CardReset, NotSupported
from pkcard.pin import PinRef, PinState
from pkcard.simcard.card import load_card
from pkcard.simcard.opensc import (
    OPENSC_CONF_VARIABLE,
    OPENSC_MODULE,
    SIGNATURE_TOKEN_SUFFIX,
    write_opensc_config,
)
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.pkcs15 import TOKEN_LABEL
from pkcard.simcard.spec import SecretRef

pytestmark = pytest.mark.pcsc

PK_SLOT = 0  # "Gemalto PC Twin Reader": no PIN pad, OpenSC sends the PIN itself
KZZ_SLOT = 2  # "Virtual PCD"
PIN = profile_secret("pk-regular", SecretRef.PIN)
SPIN = profile_secret("pk-regular", SecretRef.SPIN)
TOKEN_SCANS = 50  # OpenSC binds a newly inserted card on one of its next slot scans
T = TypeVar("T")

OPENSC_NO_TOKEN_SIGNATURE = (
    "OpenSC 0.23 on the isoApplet card offers ECDSA-SHA1 (EC) and RSA PKCS#1 v1.5 only"
    " (measured: pkcs11-tool -M; C_SignInit(CKM_ECDSA / CKM_ECDSA_SHA256) ->"
    " CKR_MECHANISM_INVALID); a session token is ES256 or PS256 only"
)


@pytest.fixture(scope="module")
def opensc_rig(_pcscd_session: PcscdHarness) -> Iterator[Rig]:
    if not OPENSC_MODULE.exists():
        pytest.skip(f"OpenSC is not installed ({OPENSC_MODULE})")
    reader = _pcscd_session.reader_name(PK_SLOT)
    previous = os.environ.get(OPENSC_CONF_VARIABLE)

    def extra(root: Path) -> str:
        conf = write_opensc_config(root, [load_card("pk-regular").atr])
        os.environ[OPENSC_CONF_VARIABLE] = str(conf)  # the daemon inherits it
        return (
            "[[card_backends]]\n"
            f'reader = "{reader}"\n'
            'driver = "pkcs11"\n'
            f'module = "{OPENSC_MODULE}"\n'
            f'card_token = {{ slot_description = "{reader}", label = "{TOKEN_LABEL}" }}\n'
            f'signature_token = {{ slot_description = "{reader}", '
            f'label = "{TOKEN_LABEL}{SIGNATURE_TOKEN_SUFFIX}" }}\n'
        )

    try:
        yield from rig(simulated=False, extra_config=extra)
    finally:
        if previous is None:
            os.environ.pop(OPENSC_CONF_VARIABLE, None)
        else:
            os.environ[OPENSC_CONF_VARIABLE] = previous


@pytest.fixture
def cards(pcscd_env: PcscdHarness, opensc_rig: Rig) -> tuple[Rig, str, str]:
    """pk-regular and kzz inserted; the PK and KZZ reader names."""
    pcscd_env.insert(PK_SLOT, load_card("pk-regular"))
    pcscd_env.insert(KZZ_SLOT, load_card("kzz"))
    return opensc_rig, pcscd_env.reader_name(PK_SLOT), pcscd_env.reader_name(KZZ_SLOT)


def _once_bound(call: Callable[[], T]) -> T:
    """``call()`` once OpenSC has bound the newly inserted card to its token.

    Until OpenSC's next slot scan no token matches (CardRemoved); a session the
    daemon held on the previous test's card answers once with CardReset (its
    verified states are gone) and is reopened.
    """
    for _ in range(TOKEN_SCANS - 1):
        try:
            return call()
        except (CardRemoved, CardReset):
            continue
    return call()


def test_opensc_serves_the_pk_reader_for_card_pin_and_signature_calls(
    cards: tuple[Rig, str, str],
) -> None:
    running, pk_reader, _ = cards
    document = b"napotnica through OpenSC\n"
    with running.daemon.client() as client:
        reading = _once_bound(lambda: client.get_card(pk_reader))
        verified = client.verify_pin(pk_reader, PinRef.PIN, PIN)
        signed = client.sign_document(pk_reader, document, spin=SPIN)
    checked = verify_detached(signed.cms, document,
                              load_trust_anchors(simulated_trust_anchor_paths()))
    assert reading.backend == "pkcs11"
    assert reading.pk is not None
    assert reading.pk.card_serial == "PK0000100001"
    assert verified.state is PinState.VERIFIED
    assert checked.signer.sha256_fingerprint == signed.signer.sha256_fingerprint
    assert signed.card_serial == "PK0000100001"


@pytest.mark.xfail(reason=OPENSC_NO_TOKEN_SIGNATURE, raises=NotSupported, strict=True)
def test_session_through_opensc_is_redeemed(cards: tuple[Rig, str, str]) -> None:
    running, pk_reader, kzz_reader = cards
    with running.daemon.client() as client:
        _once_bound(lambda: client.get_card(pk_reader))
        # GetCard may be answered from the token session's cache before OpenSC notices
        # the re-inserted card; the first call that reaches the card then says so.
        opened = _once_bound(lambda: client.open_session(
            pk_reader, running.backend.challenge(), AUTHORIZATIONS, kzz_reader=kzz_reader,
            pin=PIN))
        redeemed = running.backend.redeem(opened.token.token)
        refreshed = client.refresh_session(opened.session_id, running.backend.challenge())
    assert redeemed.scope == bpb.SCOPE_FULL
    assert running.backend.redeem(refreshed.token).scope == bpb.SCOPE_FULL
