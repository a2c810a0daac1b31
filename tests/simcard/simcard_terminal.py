"""A raw-APDU terminal for one simulated card (imported by the simcard tests)."""

from __future__ import annotations

from collections.abc import Callable

from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import CardProfile
from pkcard.simcard.spec import KZZ_AID, PK_AID, SecretRef, pad_secret, secret_format


class Terminal:
    """Sends raw hex APDUs to one simulated card and splits the answers."""

    def __init__(self, card: SimulatedCard) -> None:
        self.card = card
        self.profile: CardProfile = card.profile
        self.conn = InProcessConnection(card)

    def send(self, apdu: str | bytes) -> tuple[bytes, int]:
        raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
        resp = self.conn.transmit(raw)
        assert len(resp) >= 2
        return resp[:-2], int.from_bytes(resp[-2:], "big")

    def sw(self, apdu: str | bytes) -> int:
        return self.send(apdu)[1]

    def block(self, ref: SecretRef, value: str | None = None) -> bytes:
        """The padded block of the profile's secret ``ref`` (or of ``value``)."""
        text = self.profile.secret_value(ref) if value is None else value
        return pad_secret(text.encode("ascii"), secret_format(ref).block_length)

    def select_app(self) -> None:
        aid = PK_AID if self.profile.holder is not None else KZZ_AID
        assert self.sw(bytes([0x00, 0xA4, 0x04, 0x0C, len(aid)]) + aid) == 0x9000

    def verify(self, ref: SecretRef, value: str | None = None) -> int:
        body = self.block(ref, value)
        return self.sw(bytes([0x00, 0x20, 0x00, ref, len(body)]) + body)

    def send_full(self, apdu: bytes) -> tuple[bytes, int]:
        """Like :meth:`send`, but follows 6Cxx (resend with Le = xx) and 61xx (GET RESPONSE)."""
        data, sw = self.send(apdu)
        if sw >> 8 == 0x6C:
            data, sw = self.send(apdu[:-1] + bytes([sw & 0xFF]))
        while sw >> 8 == 0x61:
            more, sw = self.send(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
            data += more
        return data, sw

    def read_file(self, fid: int) -> bytes:
        assert self.sw(bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big")) == 0x9000
        out = b""
        while True:
            data, sw = self.send_full(bytes([0x00, 0xB0, len(out) >> 8, len(out) & 0xFF, 0x00]))
            if sw == 0x6B00 and out:
                return out
            out += data
            if sw == 0x6282:
                return out
            assert sw == 0x9000
            if len(data) < 256:
                return out


MakeTerminal = Callable[[str | CardProfile], Terminal]
