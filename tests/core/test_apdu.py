from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard.apdu import ApduCase, CommandApdu, ResponseApdu
from pkcard.errors import ApduFormatError, FormatError, ProtocolError

byte = st.integers(0, 255)


@st.composite
def commands(draw: st.DrawFn) -> CommandApdu:
    data = draw(st.one_of(st.binary(max_size=300), st.binary(min_size=250, max_size=1000)))
    le = draw(st.one_of(st.none(), st.integers(1, 256), st.integers(1, 65536)))
    return CommandApdu(draw(byte), draw(byte), draw(byte), draw(byte), data, le)


@given(commands())
def test_round_trip_auto(command: CommandApdu) -> None:
    assert CommandApdu.parse(command.encode()) == command


@given(commands())
def test_round_trip_extended(command: CommandApdu) -> None:
    raw = command.encode(extended=True)
    assert CommandApdu.parse(raw) == command
    if command.data or command.le is not None:
        assert raw[4] == 0  # extended marker


@given(commands())
def test_short_encoding_length(command: CommandApdu) -> None:
    if command.needs_extended:
        with pytest.raises(ApduFormatError):
            command.encode(extended=False)
        return
    raw = command.encode(extended=False)
    expected = 4 + (1 + len(command.data) if command.data else 0)
    expected += 1 if command.le is not None else 0
    assert len(raw) == expected


@given(st.binary(max_size=300))
def test_parse_arbitrary_bytes_only_raises_format_error(raw: bytes) -> None:
    try:
        command = CommandApdu.parse(raw)
    except FormatError:
        return
    # whatever parsed re-encodes to the same bytes in the form it came in
    assert command.encode(extended=len(raw) > 4 and raw[4] == 0 and len(raw) >= 7) == raw


@pytest.mark.parametrize(
    ("command", "case", "raw"),
    [
        (CommandApdu(0, 0xA4, 4, 0x0C), ApduCase.CASE_1, "00A4040C"),
        (CommandApdu(0, 0xB0, 0, 0, le=256), ApduCase.CASE_2S, "00B0000000"),
        (CommandApdu(0, 0xB0, 0, 0, le=255), ApduCase.CASE_2S, "00B00000FF"),
        (CommandApdu(0, 0xB0, 0, 0, le=257), ApduCase.CASE_2E, "00B00000000101"),
        (CommandApdu(0, 0xB0, 0, 0, le=65536), ApduCase.CASE_2E, "00B00000000000"),
        (CommandApdu(0, 0xA4, 4, 0x0C, b"\xf0"), ApduCase.CASE_3S, "00A4040C01F0"),
        (CommandApdu(0, 0xA4, 4, 0, b"\xf0", 256), ApduCase.CASE_4S, "00A4040001F000"),
        (
            CommandApdu(0, 0xD6, 0, 0, bytes(256)),
            ApduCase.CASE_3E,
            "00D6000000" + "0100" + "00" * 256,
        ),
        (
            CommandApdu(0, 0x2A, 0x9E, 0x9A, bytes(256), 65536),
            ApduCase.CASE_4E,
            "002A9E9A000100" + "00" * 256 + "0000",
        ),
    ],
)
def test_known_encodings(command: CommandApdu, case: ApduCase, raw: str) -> None:
    assert command.case is case
    assert command.encode() == bytes.fromhex(raw)
    assert CommandApdu.parse(bytes.fromhex(raw)) == command


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "00",
        "00A404",
        "00A4040000F0",  # short Lc 00 with a body
        "00A4040C02F0",  # Lc 2, one byte
        "00A4040C01F0AABB",  # trailing bytes
        "00A4040C000000F0",  # extended Lc 0000 with a body
        "00A4040C000002F0",  # extended Lc 2, one byte
        "00A4040C000001F000",  # extended Lc, short Le (mixed)
        "00A4040C01F00000",  # short Lc, extended Le (mixed)
        "00A4040C0000",  # 6 bytes: short Lc 00
        "00A4040C000001F0000000",  # trailing after extended Le
    ],
)
def test_rejects_malformed(raw: str) -> None:
    with pytest.raises(ApduFormatError):
        CommandApdu.parse(bytes.fromhex(raw))


def test_length_look_alikes_are_case_2() -> None:
    assert CommandApdu.parse(bytes.fromhex("00A4040C00")).le == 256
    assert CommandApdu.parse(bytes.fromhex("00A4040C000000")).le == 65536


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cla": 256},
        {"ins": -1},
        {"p1": 0x100},
        {"p2": -5},
        {"le": 0},
        {"le": 65537},
        {"data": bytes(65536)},
    ],
)
def test_rejects_invalid_fields(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"cla": 0, "ins": 0xA4, "p1": 0, "p2": 0}
    fields.update(kwargs)
    with pytest.raises(ApduFormatError):
        CommandApdu(**fields)  # type: ignore[arg-type]


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_response_round_trip(data: bytes, sw: int) -> None:
    response = ResponseApdu(data, sw)
    parsed = ResponseApdu.parse(response.encode())
    assert parsed == response
    assert parsed.sw1 == sw >> 8
    assert parsed.sw2 == sw & 0xFF
    assert parsed.ok == (sw == 0x9000)


@pytest.mark.parametrize("raw", [b"", b"\x90"])
def test_response_shorter_than_two_bytes_is_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        ResponseApdu.parse(raw)


def test_response_rejects_bad_sw() -> None:
    with pytest.raises(ApduFormatError):
        ResponseApdu(b"", 0x10000)


@given(commands())
def test_wire_is_the_default_encoding_and_not_part_of_the_value(command: CommandApdu) -> None:
    assert command.wire == command.encode()
    copy = CommandApdu(command.cla, command.ins, command.p1, command.p2, command.data, command.le)
    assert copy == command
    assert hash(copy) == hash(command)
    assert "wire" not in repr(command)
    assert dataclasses.replace(command, le=None).wire == CommandApdu(
        command.cla, command.ins, command.p1, command.p2, command.data).encode()


@given(st.binary(max_size=300))
def test_response_from_wire_is_parse(raw: bytes) -> None:
    try:
        parsed: object = ResponseApdu.parse(raw)
    except ProtocolError as exc:
        parsed = str(exc)
    try:
        fast: object = ResponseApdu.from_wire(raw)
    except ProtocolError as exc:
        fast = str(exc)
    assert fast == parsed


@given(commands())
def test_wire_is_the_short_form_when_it_fits_else_the_extended(command: CommandApdu) -> None:
    if command.needs_extended:
        assert command.wire == command.encode(extended=True)
        with pytest.raises(ApduFormatError):
            command.encode(extended=False)
    else:
        assert command.wire == command.encode(extended=False)
    assert CommandApdu.parse(command.encode(extended=True)) == command
