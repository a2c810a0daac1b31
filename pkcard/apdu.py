"""Command and response APDUs (ISO 7816-4 §5.1): typed values, strict codecs.

A :class:`CommandApdu` holds ``le`` as the number of response bytes expected:
``None`` when absent, 1..256 in short form (256 encodes as ``00``), up to
65536 in extended form (65536 encodes as ``0000``). ``le=0`` is not a value:
"as many as there are" is ``le=256`` (short) or ``le=65536`` (extended).

:meth:`CommandApdu.parse` accepts exactly the seven encodings of ISO 7816-4
§5.1 and rejects everything else with :class:`~pkcard.errors.ApduFormatError`:
a short Lc of 00, an extended Lc of 0000, a body whose length does not match
Lc, trailing bytes, and short and extended length fields mixed in one command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from pkcard.errors import ApduFormatError, ProtocolError

_new = object.__new__
_set = object.__setattr__  # frozen dataclasses set their fields this way too

SHORT_MAX_DATA = 255
SHORT_MAX_LE = 256
EXTENDED_MAX_DATA = 65535
EXTENDED_MAX_LE = 65536


class ApduCase(IntEnum):
    """The ISO 7816-3 command cases: with/without data, with/without Le, short/extended."""

    CASE_1 = 1
    CASE_2S = 2
    CASE_3S = 3
    CASE_4S = 4
    CASE_2E = 5
    CASE_3E = 6
    CASE_4E = 7


_CASES: dict[tuple[bool, bool, bool], ApduCase] = {
    # (has data, has le, extended)
    (False, False, False): ApduCase.CASE_1,
    (False, False, True): ApduCase.CASE_1,
    (False, True, False): ApduCase.CASE_2S,
    (False, True, True): ApduCase.CASE_2E,
    (True, False, False): ApduCase.CASE_3S,
    (True, False, True): ApduCase.CASE_3E,
    (True, True, False): ApduCase.CASE_4S,
    (True, True, True): ApduCase.CASE_4E,
}


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """One command APDU. Validated and encoded on construction; immutable.

    A command built once (a module constant) is sent any number of times
    without being encoded again.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    wire: bytes = field(init=False, repr=False, compare=False)
    """``encode()``: the wire bytes in the shortest form that fits, made on construction."""

    def __post_init__(self) -> None:
        if (
            not (0 <= self.cla <= 0xFF and 0 <= self.ins <= 0xFF and 0 <= self.p1 <= 0xFF)
            or not 0 <= self.p2 <= 0xFF
        ):
            raise ApduFormatError("CLA, INS, P1 and P2 must each be one byte")
        if len(self.data) > EXTENDED_MAX_DATA:
            raise ApduFormatError(f"command data longer than {EXTENDED_MAX_DATA} bytes")
        if self.le is not None and not 1 <= self.le <= EXTENDED_MAX_LE:
            raise ApduFormatError(f"Le must be absent or 1..{EXTENDED_MAX_LE}")
        object.__setattr__(self, "wire", self._encode(None))

    @property
    def needs_extended(self) -> bool:
        """Whether the command cannot be encoded in short form."""
        return len(self.data) > SHORT_MAX_DATA or (self.le is not None and self.le > SHORT_MAX_LE)

    @property
    def case(self) -> ApduCase:
        """The case of this command in the encoding :meth:`encode` picks by default."""
        return _CASES[(bool(self.data), self.le is not None, self.needs_extended)]

    def header(self) -> bytes:
        """CLA INS P1 P2."""
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def encode(self, extended: bool | None = None) -> bytes:
        """The wire bytes. ``extended=None`` picks short form whenever it fits."""
        if extended is None:
            return self.wire
        return self._encode(extended)

    def _encode(self, extended: bool | None) -> bytes:
        data = self.data
        le = self.le
        fits_short = len(data) <= SHORT_MAX_DATA and (le is None or le <= SHORT_MAX_LE)
        if extended is None:
            extended = not fits_short
        elif not extended and not fits_short:
            raise ApduFormatError("command does not fit a short APDU")
        if not extended:  # one allocation per part: this runs for every command built
            if data:
                body = bytes((self.cla, self.ins, self.p1, self.p2, len(data))) + data
                return body if le is None else body + bytes((le & 0xFF,))
            if le is None:
                return bytes((self.cla, self.ins, self.p1, self.p2))
            return bytes((self.cla, self.ins, self.p1, self.p2, le & 0xFF))
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        if data:
            body = header + b"\x00" + len(data).to_bytes(2, "big") + data
            if le is None:
                return body
            return body + (le & 0xFFFF).to_bytes(2, "big")
        if le is None:
            return header
        return header + b"\x00" + (le & 0xFFFF).to_bytes(2, "big")

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode exactly one command APDU; raise ApduFormatError on any §5.1 violation."""
        size = len(raw)
        if size < 4:
            raise ApduFormatError(f"command APDU of {size} bytes is shorter than its header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        if size == 4:
            return cls(cla, ins, p1, p2)
        b1 = raw[4]
        if size == 5:
            return cls(cla, ins, p1, p2, le=b1 or SHORT_MAX_LE)
        if b1:
            if size == 5 + b1:
                return cls(cla, ins, p1, p2, bytes(raw[5:]))
            if size == 6 + b1:
                return cls(cla, ins, p1, p2, bytes(raw[5:-1]), raw[-1] or SHORT_MAX_LE)
            raise ApduFormatError(f"short Lc {b1} does not match a command APDU of {size} bytes")
        if size == 6:
            raise ApduFormatError("short Lc of 00 is not allowed")
        ext = (raw[5] << 8) | raw[6]
        if size == 7:
            return cls(cla, ins, p1, p2, le=ext or EXTENDED_MAX_LE)
        if not ext:
            raise ApduFormatError("extended Lc of 0000 is not allowed")
        if size == 7 + ext:
            return cls(cla, ins, p1, p2, bytes(raw[7:]))
        if size == 9 + ext:
            le = (raw[-2] << 8) | raw[-1]
            return cls(cla, ins, p1, p2, bytes(raw[7:-2]), le or EXTENDED_MAX_LE)
        raise ApduFormatError(f"extended Lc {ext} does not match a command APDU of {size} bytes")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """One response APDU: the data field and the status word SW1 SW2."""

    data: bytes
    sw: int

    def __post_init__(self) -> None:
        if not 0 <= self.sw <= 0xFFFF:
            raise ApduFormatError("status word must be two bytes")

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        """Whether the status word is 9000."""
        return self.sw == 0x9000

    def encode(self) -> bytes:
        """Data followed by SW1 SW2."""
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def from_wire(cls, raw: bytes) -> ResponseApdu:
        """:meth:`parse` for the per-APDU path: the same result, no checks beyond the length.

        Two bytes make a valid status word, so nothing is left to validate; this
        builds the value without the dataclass ``__init__`` and ``__post_init__``
        frames (a bare ``SCardTransmit`` has none either: issue #14, G9).
        """
        if len(raw) < 2:
            raise ProtocolError(f"response of {len(raw)} bytes has no status word")
        response = _new(cls)
        _set(response, "data", raw[:-2])
        _set(response, "sw", (raw[-2] << 8) | raw[-1])
        return response

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        """Split a card's response; fewer than two bytes is a :class:`ProtocolError`."""
        if len(raw) < 2:
            raise ProtocolError(f"response of {len(raw)} bytes has no status word")
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])
