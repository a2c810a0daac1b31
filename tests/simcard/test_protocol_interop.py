"""The host's protocol layer (pkcard.protocol) against the card's framing variants."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pkcard.apdu import CommandApdu
from pkcard.protocol import SmartCardProtocol
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import PK_AID, KeyUse, SecretRef, pad_secret

VARIANTS: dict[str, tuple[bool, bool]] = {
    # name: (force_get_response, force_exact_le)
    "plain": (False, False),
    "get-response": (True, False),
    "exact-le": (False, True),
    "both": (True, True),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_protocol_layer_reads_and_signs_through_every_framing(variant: str) -> None:
    get_response, exact_le = VARIANTS[variant]
    profile = dataclasses.replace(
        load_profile("pk-regular"), force_get_response=get_response, force_exact_le=exact_le
    )
    card = SimulatedCard.from_profile(profile)
    protocol = SmartCardProtocol(InProcessConnection(card))
    fci = protocol.select(PK_AID)
    assert PK_AID in fci
    protocol.send_apdu(0x00, 0xA4, 0x02, 0x0C, bytes.fromhex("C101"))
    der = b""
    while True:
        response = protocol.transmit(
            CommandApdu(0x00, 0xB0, len(der) >> 8, len(der) & 0xFF, le=256)
        )
        der += response.data
        if response.sw != 0x9000 or len(response.data) < 256:
            break
    assert response.sw in (0x9000, 0x6282)
    pem = profile.key(KeyUse.AUTHENTICATION).certificate_path.read_bytes()
    assert der == x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    pin = pad_secret(profile.secret_value(SecretRef.PIN).encode(), 8)
    protocol.send_apdu(0x00, 0x20, 0x00, 0x81, pin)
    signature = protocol.send_apdu(
        0x00, 0x88, 0x00, 0x01, hashlib.sha256(b"interop").digest(), le=256
    )
    assert len(signature) == 64
