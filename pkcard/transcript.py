"""APDU transcripts: a text format, a recorder and a replayer.

A transcript is UTF-8 text, one exchange per line, every byte written as
uppercase hex (lowercase is accepted on input). Grammar (ABNF-like)::

    transcript = header-line *( blank-line / comment-line / exchange-line )
    header-line = "# card: " name 2SP "profile: " 1*DIGIT [ 2SP "atr: " 1*(2HEXDIG) ]
    comment-line = *WSP "#" *VCHAR              ; ignored
    exchange-line = command " => " response [ *WSP "#" *VCHAR ]
    command = header                            ; case 1
            / header SP le                      ; case 2
            / header SP lc SP body              ; case 3
            / header SP lc SP body SP le        ; case 4
    header = 8HEXDIG                            ; CLA INS P1 P2
    lc = 2HEXDIG / "00" 4HEXDIG                 ; short 01..FF, extended 0001..FFFF
    body = 1*(2HEXDIG) / "<redacted>"           ; exactly Lc bytes
    le = 2HEXDIG / 4HEXDIG / "00" 4HEXDIG       ; short; after an extended Lc; case 2E
    response = [ 1*(2HEXDIG) SP ] sw            ; data, then SW1 SW2
    sw = 4HEXDIG

The fields are the command APDU's own length fields, so a line holds the
exact bytes on the wire (``00B00000 00`` is READ BINARY with Le 00 = 256;
``00A4040C 09 F0504B43415244504B`` a SELECT), and each field must match the
structure ISO 7816-4 §5.1 gives those bytes. Example::

    # card: pk-regular  profile: 1  atr: 3B888001504B43415244504B00
    00A4040C 09 F0504B43415244504B => 9000
    00B00000 00 => 7F60035A0131 9000   # EF.CardInfo, abbreviated
    00200081 08 <redacted> => 63C2

The body of VERIFY (INS 20), CHANGE REFERENCE DATA (24) and RESET RETRY
COUNTER (2C) is always written ``<redacted>``; its length stays in Lc. On
replay such a command matches on every byte but its body. Comments after an
exchange are not kept by :func:`parse_transcript`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pkcard.apdu import CommandApdu
from pkcard.errors import ApduFormatError, FormatError, TranscriptMismatch
from pkcard.transport import ReaderCapabilities, SmartCardConnection

T = TypeVar("T")

REDACTED_INS = frozenset({0x20, 0x24, 0x2C})
REDACTED = "<redacted>"
ARROW = " => "
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_NAME = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class TranscriptHeader:
    """What a transcript was recorded against."""

    card: str
    profile: int
    atr: bytes = b""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.card):
            raise FormatError("card name must be letters, digits, '.', '_' or '-'")
        if self.profile < 0:
            raise FormatError("profile must not be negative")


@dataclass(frozen=True)
class Exchange:
    """One command and the card's raw response (data + SW).

    ``redacted`` must be set exactly for the PIN commands (INS 20, 24, 2C)
    with a body, and their body bytes must be zero: an Exchange can never
    hold a secret. ``line`` is the source line (0 when not parsed from text).
    """

    command: bytes
    response: bytes
    redacted: bool = False
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if len(self.response) < 2:
            raise FormatError("a response needs at least SW1 SW2")
        CommandApdu.parse(self.command)
        if self.redacted != _is_redacted_ins(self.command):
            raise FormatError("exactly the bodies of INS 20, 24 and 2C are redacted")
        if self.redacted:
            start, end = _body_span(self.command)
            if any(self.command[start:end]):
                raise FormatError("a redacted body must be stored as zero bytes")

    @property
    def sw(self) -> int:
        return (self.response[-2] << 8) | self.response[-1]

    def body_span(self) -> tuple[int, int]:
        """Where the command body sits in :attr:`command` (empty span when none)."""
        return _body_span(self.command)

    def matches(self, command: bytes) -> bool:
        """Whether the host's ``command`` is this exchange's (body ignored when redacted)."""
        if not self.redacted:
            return command == self.command
        if len(command) != len(self.command):
            return False
        start, end = _body_span(self.command)
        return command[:start] == self.command[:start] and command[end:] == self.command[end:]


@dataclass(frozen=True)
class Transcript:
    """A parsed or recorded transcript: its header and its exchanges in order."""

    header: TranscriptHeader
    exchanges: tuple[Exchange, ...]


def _body_span(command: bytes) -> tuple[int, int]:
    """(start, end) of the data field of a well-formed command APDU."""
    size = len(command)
    if size <= 5:
        return (size, size)
    if command[4]:
        return (5, 5 + command[4])
    if size == 7:
        return (size, size)
    return (7, 7 + ((command[5] << 8) | command[6]))


def _is_redacted_ins(command: bytes) -> bool:
    """Whether ``command`` is a PIN command with a body (the body must never be written)."""
    if len(command) < 6 or command[1] not in REDACTED_INS:
        return False
    start, end = _body_span(command)
    return end > start


# --- formatting --------------------------------------------------------------


def format_command(command: bytes, redact: bool) -> str:
    """The command field of an exchange line for well-formed ``command`` bytes."""
    CommandApdu.parse(command)
    hexed = command.hex().upper()
    header = hexed[:8]
    size = len(command)
    if size == 4:
        return header
    start, end = _body_span(command)
    if start == end:  # case 2: everything after the header is Le
        return f"{header} {hexed[8:]}"
    lc = hexed[8 : 2 * start]
    body = REDACTED if redact else hexed[2 * start : 2 * end]
    if end == size:
        return f"{header} {lc} {body}"
    return f"{header} {lc} {body} {hexed[2 * end :]}"


def format_response(response: bytes) -> str:
    hexed = response.hex().upper()
    return f"{hexed[:-4]} {hexed[-4:]}" if len(response) > 2 else hexed


def format_exchange(exchange: Exchange) -> str:
    """One exchange line, without a newline."""
    command = format_command(exchange.command, exchange.redacted)
    return f"{command}{ARROW}{format_response(exchange.response)}"


def format_header(header: TranscriptHeader) -> str:
    text = f"# card: {header.card}  profile: {header.profile}"
    return f"{text}  atr: {header.atr.hex().upper()}" if header.atr else text


def format_transcript(transcript: Transcript) -> str:
    """The whole transcript as text, ending in a newline."""
    lines = [format_header(transcript.header)]
    lines.extend(format_exchange(exchange) for exchange in transcript.exchanges)
    return "\n".join(lines) + "\n"


# --- parsing -----------------------------------------------------------------


def _hex(token: str, what: str, line: int) -> bytes:
    if not _HEX.fullmatch(token):
        raise FormatError(f"line {line}: {what} is not an even number of hex digits")
    return bytes.fromhex(token)


def _parse_header(text: str, line: int) -> TranscriptHeader:
    if not text.startswith("# "):
        raise FormatError(f"line {line}: a transcript starts with '# card: NAME  profile: N'")
    tokens = text[2:].split()
    fields: dict[str, str] = {}
    if len(tokens) % 2:
        raise FormatError(f"line {line}: header fields are 'key: value' pairs")
    for key_token, value in zip(tokens[::2], tokens[1::2], strict=True):
        key = key_token.removesuffix(":")
        if key == key_token or key in fields or key not in ("card", "profile", "atr"):
            raise FormatError(f"line {line}: unknown or repeated header field {key_token!r}")
        fields[key] = value
    if "card" not in fields or "profile" not in fields:
        raise FormatError(f"line {line}: header needs 'card' and 'profile'")
    if not fields["profile"].isdigit() or not fields["profile"].isascii():
        raise FormatError(f"line {line}: profile must be a decimal number")
    atr = _hex(fields["atr"], "atr", line) if "atr" in fields else b""
    try:
        return TranscriptHeader(fields["card"], int(fields["profile"]), atr)
    except FormatError as exc:
        raise FormatError(f"line {line}: {exc}") from None


def _parse_command(text: str, line: int) -> tuple[bytes, bool]:
    tokens = text.split()
    if not 1 <= len(tokens) <= 4:
        raise FormatError(f"line {line}: a command has 1 to 4 fields, not {len(tokens)}")
    header = _hex(tokens[0], "command header", line)
    if len(header) != 4:
        raise FormatError(f"line {line}: command header must be 4 bytes")
    redacted = False
    if len(tokens) == 2:
        le = _hex(tokens[1], "Le", line)
        if len(le) not in (1, 3) or (len(le) == 3 and le[0]):
            raise FormatError(f"line {line}: Le must be 1 byte, or 00 and 2 bytes")
        raw = header + le
    elif len(tokens) >= 3:
        lc = _hex(tokens[1], "Lc", line)
        if len(lc) == 1 and lc[0]:
            length, le_size = lc[0], 1
        elif len(lc) == 3 and not lc[0] and (lc[1] or lc[2]):
            length, le_size = (lc[1] << 8) | lc[2], 2
        else:
            raise FormatError(f"line {line}: Lc must be 01..FF, or 00 and 0001..FFFF")
        if tokens[2] == REDACTED:
            redacted = True
            body = bytes(length)
        else:
            body = _hex(tokens[2], "command body", line)
            if len(body) != length:
                raise FormatError(f"line {line}: body has {len(body)} bytes, Lc says {length}")
        le = _hex(tokens[3], "Le", line) if len(tokens) == 4 else b""
        if le and len(le) != le_size:
            raise FormatError(f"line {line}: Le must have {le_size} byte(s) after this Lc")
        raw = header + lc + body + le
    else:
        raw = header
    try:
        CommandApdu.parse(raw)
    except ApduFormatError as exc:
        raise FormatError(f"line {line}: {exc}") from None
    if redacted and raw[1] not in REDACTED_INS:
        raise FormatError(f"line {line}: only INS 20, 24 and 2C bodies are redacted")
    if not redacted and _is_redacted_ins(raw):
        raise FormatError(f"line {line}: the body of INS {raw[1]:02X} must be {REDACTED}")
    return raw, redacted


def _parse_response(text: str, line: int) -> bytes:
    tokens = text.split()
    if not 1 <= len(tokens) <= 2:
        raise FormatError(f"line {line}: a response is [DATA] SW")
    sw = _hex(tokens[-1], "status word", line)
    if len(sw) != 2:
        raise FormatError(f"line {line}: status word must be 2 bytes")
    data = _hex(tokens[0], "response data", line) if len(tokens) == 2 else b""
    return data + sw


def parse_exchange(text: str, line: int = 0) -> Exchange:
    """Parse one exchange line (a trailing ``# comment`` is allowed and dropped)."""
    content = text.split("#", 1)[0]
    if content.count(ARROW.strip()) != 1:
        raise FormatError(f"line {line}: an exchange is 'COMMAND => RESPONSE'")
    command_text, response_text = content.split(ARROW.strip())
    command, redacted = _parse_command(command_text, line)
    response = _parse_response(response_text, line)
    return Exchange(command, response, redacted, line)


def parse_transcript(text: str) -> Transcript:
    """Parse a whole transcript; every error names its line (counted from 1)."""
    lines = text.splitlines()
    if not lines:
        raise FormatError("line 1: empty transcript")
    header = _parse_header(lines[0].rstrip(), 1)
    exchanges: list[Exchange] = []
    for number, line in enumerate(lines[1:], start=2):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        exchanges.append(parse_exchange(stripped, number))
    return Transcript(header, tuple(exchanges))


# --- recording and replay ---------------------------------------------------


class RecordingConnection(SmartCardConnection):
    """Wraps a connection and records every exchange, redacting PIN command bodies.

    Commands that are not well-formed APDUs, and exchanges that raised, are
    passed through but not recorded (:attr:`skipped` counts them). Not
    thread-safe: one recorder records one conversation.
    """

    def __init__(self, inner: SmartCardConnection, card: str, profile: int) -> None:
        self._inner = inner
        self._header = TranscriptHeader(card, profile, inner.atr)
        self._exchanges: list[Exchange] = []
        self._skipped = 0

    @property
    def skipped(self) -> int:
        """Exchanges passed through but not recorded."""
        return self._skipped

    @property
    def atr(self) -> bytes:
        return self._inner.atr

    @property
    def capabilities(self) -> ReaderCapabilities:
        return self._inner.capabilities

    def transmit(self, command: bytes) -> bytes:
        try:
            response = self._inner.transmit(command)
        except BaseException:
            self._skipped += 1
            raise
        try:
            redacted = _is_redacted_ins(command)
            if redacted:
                start, end = _body_span(command)
                command = command[:start] + bytes(end - start) + command[end:]
            self._exchanges.append(Exchange(bytes(command), bytes(response), redacted))
        except FormatError:
            self._skipped += 1
        return response

    def begin_transaction(self) -> None:
        self._inner.begin_transaction()

    def end_transaction(self) -> None:
        self._inner.end_transaction()

    def close(self) -> None:
        self._inner.close()

    @property
    def transcript(self) -> Transcript:
        """Everything recorded so far."""
        return Transcript(self._header, tuple(self._exchanges))


class ReplayConnection(SmartCardConnection):
    """A connection that answers from a transcript, in order, and checks each command."""

    def __init__(self, transcript: Transcript) -> None:
        self._transcript = transcript
        self._position = 0

    @property
    def atr(self) -> bytes:
        return self._transcript.header.atr

    @property
    def remaining(self) -> tuple[Exchange, ...]:
        """The exchanges not yet consumed."""
        return self._transcript.exchanges[self._position :]

    def transmit(self, command: bytes) -> bytes:
        exchanges = self._transcript.exchanges
        if self._position >= len(exchanges):
            raise TranscriptMismatch(
                f"host sent {_describe(command)} after the transcript's last exchange"
            )
        expected = exchanges[self._position]
        if not expected.matches(command):
            raise TranscriptMismatch(
                f"line {expected.line}: host sent {_describe(command)}, "
                f"transcript has {_describe(expected.command)}"
            )
        self._position += 1
        return expected.response

    def close(self) -> None:
        return


def _describe(command: bytes) -> str:
    """Header and length of a command, never its body."""
    return f"{command[:4].hex().upper()} ({len(command)} bytes)"


def replay(transcript: Transcript, operation: Callable[[SmartCardConnection], T]) -> T:
    """Run ``operation`` against the transcript; every exchange must be consumed."""
    connection = ReplayConnection(transcript)
    result = operation(connection)
    left = connection.remaining
    if left:
        raise TranscriptMismatch(
            f"line {left[0].line}: {len(left)} exchange(s) of the transcript were not used"
        )
    return result
