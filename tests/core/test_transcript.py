from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard import errors
from pkcard.apdu import CommandApdu
from pkcard.protocol import SmartCardProtocol
from pkcard.transcript import (
    Exchange,
    RecordingConnection,
    ReplayConnection,
    Transcript,
    TranscriptHeader,
    format_exchange,
    format_transcript,
    parse_exchange,
    parse_transcript,
    replay,
)
from pkcard.transport import SmartCardConnection

ATR = bytes.fromhex("3B888001504B43415244504B00")
PIN_BLOCK = b"1234\xff\xff\xff\xff"

TEXT = """\
# card: pk-regular  profile: 1  atr: 3B888001504B43415244504B00
00A4040C 09 F0504B43415244504B => 9000
  # a comment line, and a blank line next

00B00000 00 => 7F60035A0131 9000   # trailing comment
00200081 08 <redacted> => 63C2
00200081 => 63C2
00B00000 000100 => 6282
002A9E9A 000001 AB 0000 => 9000
"""


def test_parse_example() -> None:
    transcript = parse_transcript(TEXT)
    assert transcript.header == TranscriptHeader("pk-regular", 1, ATR)
    lines = [exchange.line for exchange in transcript.exchanges]
    assert lines == [2, 5, 6, 7, 8, 9]
    select, read, verify, status, extended, pso = transcript.exchanges
    assert CommandApdu.parse(select.command) == CommandApdu(0, 0xA4, 4, 0x0C, b"\xf0PKCARDPK")
    assert read.response == bytes.fromhex("7F60035A01319000")
    assert verify.redacted
    assert verify.sw == 0x63C2
    assert not status.redacted
    assert CommandApdu.parse(extended.command).le == 256
    assert CommandApdu.parse(pso.command) == CommandApdu(0, 0x2A, 0x9E, 0x9A, b"\xab", 65536)


def test_format_round_trip() -> None:
    transcript = parse_transcript(TEXT)
    text = format_transcript(transcript)
    assert text.splitlines()[0] == "# card: pk-regular  profile: 1  atr: 3B888001504B43415244504B00"
    assert "00200081 08 <redacted> => 63C2" in text
    assert parse_transcript(text) == transcript
    assert format_transcript(parse_transcript(text)) == text


@st.composite
def exchanges(draw: st.DrawFn) -> Exchange:
    ins = draw(st.sampled_from([0xA4, 0xB0, 0x20, 0x24, 0x2C, 0x88, 0xCA]))
    data = draw(st.binary(max_size=300))
    le = draw(st.one_of(st.none(), st.integers(1, 65536)))
    command = CommandApdu(draw(st.integers(0, 255)), ins, 0, draw(st.integers(0, 255)), data, le)
    extended = draw(st.booleans()) or command.needs_extended
    redacted = ins in (0x20, 0x24, 0x2C) and bool(data)
    if redacted:  # what the recorder keeps: the same lengths, the body zeroed
        command = CommandApdu(command.cla, ins, 0, command.p2, bytes(len(data)), le)
    response = draw(st.binary(max_size=300)) + draw(st.binary(min_size=2, max_size=2))
    return Exchange(command.encode(extended=extended), response, redacted)


@given(exchanges())
def test_exchange_line_round_trip(exchange: Exchange) -> None:
    line = format_exchange(exchange)
    assert "\n" not in line
    assert parse_exchange(line) == exchange


@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_format_error(text: str) -> None:
    try:
        transcript = parse_transcript("# card: x  profile: 1\n" + text)
    except errors.FormatError:
        return
    assert parse_transcript(format_transcript(transcript)) == transcript


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("", 1, "empty"),
        ("00A4040C => 9000\n", 1, "starts with"),
        ("# card: x\n", 1, "needs"),
        ("# card: x  profile: one\n", 1, "decimal"),
        ("# card: x  profile: 1  colour: red\n", 1, "unknown"),
        ("# card: x  profile: 1  atr: 3B8\n", 1, "hex"),
        ("# card: x y  profile: 1\n", 1, "pairs"),
        ("# card: x  profile: 1\n\n00A4040C 9000\n", 3, "COMMAND => RESPONSE"),
        ("# card: x  profile: 1\n00A4040C => 90\n", 2, "2 bytes"),
        ("# card: x  profile: 1\n00A4040C => 12 34 9000\n", 2, "DATA"),
        ("# card: x  profile: 1\n00A404 => 9000\n", 2, "4 bytes"),
        ("# card: x  profile: 1\n00A4040C 02 F0 => 9000\n", 2, "Lc says 2"),
        ("# card: x  profile: 1\n00A4040C 01 F0 0000 => 9000\n", 2, "Le must have 1"),
        ("# card: x  profile: 1\n00A4040C 0A0B => 9000\n", 2, "Le must be"),
        ("# card: x  profile: 1\n00A4040C 000000 F0 => 9000\n", 2, "Lc must be"),
        ("# card: x  profile: 1\n00A4040C 00 F0 => 9000\n", 2, "Lc must be"),
        ("# card: x  profile: 1\n00A4040C 01 ZZ => 9000\n", 2, "hex"),
        ("# card: x  profile: 1\n00200081 01 31 => 9000\n", 2, "redacted"),
        ("# card: x  profile: 1\n00A4040C 01 <redacted> => 9000\n", 2, "only INS"),
        ("# card: x  profile: 1\n00A4040C => 9000 => 9000\n", 2, "COMMAND => RESPONSE"),
    ],
)
def test_parse_errors_name_the_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(errors.FormatError, match=f"line {line}:.*{reason}"):
        parse_transcript(text)


class FakeCard(SmartCardConnection):
    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self._answer = answer

    @property
    def atr(self) -> bytes:
        return ATR

    def transmit(self, command: bytes) -> bytes:
        return self._answer(command)

    def close(self) -> None:
        return


def _card(command: bytes) -> bytes:
    if command[1] == 0x20:
        return b"\x63\xc2"
    if command[1] == 0xB0:
        return b"\x7f\x60\x00\x90\x00"
    return b"\x90\x00"


def _session(connection: SmartCardConnection) -> bytes:
    protocol = SmartCardProtocol(connection)
    protocol.select(b"\xf0PKCARDPK", fci=False)
    with pytest.raises(errors.VerificationFailed):
        protocol.send_apdu(0, 0x20, 0, 0x81, PIN_BLOCK)
    return protocol.send_apdu(0, 0xB0, 0, 0, le=256)


def test_record_redacts_and_replays() -> None:
    recorder = RecordingConnection(FakeCard(_card), "pk-regular", 1)
    assert _session(recorder) == b"\x7f\x60\x00"
    transcript = recorder.transcript
    text = format_transcript(transcript)
    assert PIN_BLOCK.hex().upper() not in text.upper()
    assert all(PIN_BLOCK not in e.command for e in transcript.exchanges)
    assert "00200081 08 <redacted> => 63C2" in text
    assert text.startswith("# card: pk-regular  profile: 1  atr: 3B888001504B43415244504B00\n")
    assert recorder.skipped == 0

    parsed = parse_transcript(text)
    assert parsed == transcript
    # A replay with a different PIN of the same length matches: the body is unknown.
    assert replay(parsed, _session) == b"\x7f\x60\x00"


def test_recorder_passes_errors_through_and_skips() -> None:
    def broken(command: bytes) -> bytes:
        raise errors.CardRemoved("gone")

    recorder = RecordingConnection(FakeCard(broken), "pk", 1)
    with pytest.raises(errors.CardRemoved):
        recorder.transmit(bytes.fromhex("00B0000000"))
    assert recorder.skipped == 1
    assert recorder.transcript.exchanges == ()


def test_replay_mismatch_names_line_and_hides_body() -> None:
    transcript = parse_transcript(TEXT)
    connection = ReplayConnection(transcript)
    assert connection.atr == ATR
    connection.transmit(bytes.fromhex("00A4040C09F0504B43415244504B"))
    with pytest.raises(errors.TranscriptMismatch, match="line 5") as info:
        connection.transmit(bytes.fromhex("00B0000001"))
    assert "7F60" not in str(info.value)
    assert len(connection.remaining) == 5


def test_replay_redacted_matches_header_and_length_only() -> None:
    transcript = parse_transcript("# card: pk  profile: 1\n00200081 08 <redacted> => 9000\n")
    assert (
        ReplayConnection(transcript).transmit(b"\x00\x20\x00\x81\x08" + b"98765432") == b"\x90\x00"
    )
    with pytest.raises(errors.TranscriptMismatch):
        ReplayConnection(transcript).transmit(b"\x00\x20\x00\x81\x06" + b"987654")
    with pytest.raises(errors.TranscriptMismatch):
        ReplayConnection(transcript).transmit(b"\x00\x20\x00\x82\x08" + b"98765432")


def test_replay_past_the_end() -> None:
    connection = ReplayConnection(Transcript(TranscriptHeader("pk", 1), ()))
    with pytest.raises(errors.TranscriptMismatch, match="last exchange"):
        connection.transmit(bytes.fromhex("00B0000000"))


def test_replay_requires_every_exchange() -> None:
    transcript = parse_transcript(TEXT)
    with pytest.raises(errors.TranscriptMismatch, match=r"line 5: 5 exchange\(s\)"):
        replay(transcript, lambda c: c.transmit(bytes.fromhex("00A4040C09F0504B43415244504B")))


def test_exchange_validation() -> None:
    with pytest.raises(errors.FormatError):
        Exchange(bytes.fromhex("00B0000000"), b"\x90")
    with pytest.raises(errors.FormatError):
        Exchange(bytes.fromhex("00B0"), b"\x90\x00")
    with pytest.raises(errors.FormatError):
        Exchange(bytes.fromhex("00200081"), b"\x90\x00", redacted=True)
    verify = b"\x00\x20\x00\x81\x08" + PIN_BLOCK
    with pytest.raises(errors.FormatError, match="redacted") as info:
        Exchange(verify, b"\x90\x00")  # a PIN body can never be stored
    assert PIN_BLOCK.hex() not in str(info.value).lower()
    with pytest.raises(errors.FormatError, match="zero"):
        Exchange(verify, b"\x90\x00", redacted=True)
    with pytest.raises(errors.FormatError):
        Exchange(bytes.fromhex("00B0000000"), b"\x90\x00", redacted=True)


def test_docs_example_parses() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "transcripts.md"
    example = doc.read_text(encoding="utf-8").split("```")[1]
    transcript = parse_transcript(example.lstrip("\n"))
    assert transcript.header.card == "pk-regular"
    assert len(transcript.exchanges) == 5
