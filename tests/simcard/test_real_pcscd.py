"""The simulated cards through the real stack: vpcd, pcscd, pcsc_bridge, protocol layer."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from pkcard.apdu import CommandApdu
from pkcard.pcsc_bridge.system import PcscReaderSystem
from pkcard.protocol import SmartCardProtocol
from pkcard.readers import CardKind
from pkcard.simcard.card import load_card
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.spec import PK_AID, SecretRef, pad_secret

pytestmark = pytest.mark.pcsc


def read_file(protocol: SmartCardProtocol, fid: int) -> bytes:
    protocol.send_apdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big"))
    out = b""
    while True:
        response = protocol.transmit(
            CommandApdu(0x00, 0xB0, len(out) >> 8, len(out) & 0xFF, le=256)
        )
        out += response.data
        if response.sw != 0x9000 or len(response.data) < 256:
            assert response.sw in (0x9000, 0x6282)
            return out


@pytest.mark.parametrize("profile", ["pk-regular", "pk-regular-framing"])
def test_sign_through_pcscd(pcscd_env: PcscdHarness, profile: str) -> None:
    card = load_card(profile)
    pcscd_env.insert(1, card)
    system = PcscReaderSystem()
    try:
        states = {s.reader.name: s for s in system.list_readers()}
        assert states[pcscd_env.reader_name(1)].card_kind == CardKind.PK
        with system.connect(pcscd_env.reader_name(1)) as conn:
            protocol = SmartCardProtocol(conn)
            assert PK_AID in protocol.select(PK_AID)
            cert = x509.load_der_x509_certificate(read_file(protocol, 0xC102))
            spin = card.profile.secret_value(SecretRef.SPIN).encode()
            protocol.send_apdu(0x00, 0x20, 0x00, 0x83, pad_secret(spin, 8))
            digest = hashlib.sha256(b"prescription").digest()
            signature = protocol.send_apdu(0x00, 0x2A, 0x9E, 0x9A, digest, le=256)
        public = cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        assert not card.is_verified(SecretRef.SPIN)
    finally:
        system.close()
