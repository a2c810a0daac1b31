"""The protocol layer and transcripts against the simulated PK card (in process)."""

from __future__ import annotations

import dataclasses

import pytest

from pkcard import errors
from pkcard.apdu import CommandApdu
from pkcard.protocol import SmartCardProtocol
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.tlv import Tlv, find
from pkcard.transcript import RecordingConnection, format_transcript, parse_transcript, replay
from pkcard.transport import SmartCardConnection

PK_AID = bytes.fromhex("F0504B43415244504B")
WRONG_PIN_BLOCK = b"13572468"


def _card(force_get_response: bool = False, force_exact_le: bool = False) -> SimulatedCard:
    profile = dataclasses.replace(
        load_profile("pk-regular"),
        force_get_response=force_get_response,
        force_exact_le=force_exact_le,
    )
    return SimulatedCard.from_profile(profile)


def _session(connection: SmartCardConnection) -> tuple[bytes, bytes, int]:
    """SELECT, read EF.CardInfo and EF.C.Auth in full, one wrong VERIFY."""
    protocol = SmartCardProtocol(connection)
    fci = protocol.select(PK_AID)
    assert Tlv.unpack(0x6F, fci) == Tlv(0x84, PK_AID)
    protocol.send_apdu(0x00, 0xA4, 0x02, 0x0C, b"\xc0\x01")
    read = protocol.transmit(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256))
    assert read.sw in {0x9000, 0x6282}  # 6282: the file is shorter than Le (6Cxx when exact)
    card_info = read.data
    fcp = protocol.send_apdu(0x00, 0xA4, 0x02, 0x04, b"\xc1\x01", le=256)
    size = int.from_bytes(find(fcp, 0x62, 0x80), "big")
    certificate = b""
    while len(certificate) < size:
        offset = len(certificate)
        chunk = min(256, size - offset)
        certificate += protocol.send_apdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=chunk)
    with pytest.raises(errors.VerificationFailed) as info:
        protocol.send_apdu(0x00, 0x20, 0x00, 0x81, WRONG_PIN_BLOCK)
    return card_info, certificate, info.value.retries_left


@pytest.mark.parametrize(
    ("force_get_response", "force_exact_le"),
    [(False, False), (True, False), (False, True), (True, True)],
)
def test_session_same_whatever_the_card_framing(
    force_get_response: bool, force_exact_le: bool
) -> None:
    plain = _session(InProcessConnection(_card()))
    forced = _session(InProcessConnection(_card(force_get_response, force_exact_le)))
    assert forced == plain
    card_info, certificate, tries = plain
    assert find(card_info, 0x7F60, 0x5A) == b"PK0000100001"
    assert certificate[0] == 0x30  # a DER SEQUENCE
    assert tries == 2


def test_record_and_replay_a_real_session() -> None:
    card = _card(force_get_response=True)
    recorder = RecordingConnection(InProcessConnection(card), "pk-regular", 1)
    expected = _session(recorder)
    text = format_transcript(recorder.transcript)
    assert WRONG_PIN_BLOCK.hex().upper() not in text
    assert "00200081 08 <redacted> => 63C2" in text
    assert " => 6100" in text or " => 61" in text  # the GET RESPONSE chain is on record
    transcript = parse_transcript(text)
    assert replay(transcript, _session) == expected
