"""What the PK and KZZ ISO drivers share: application and EF access, and EF.CardInfo.

Implements the "Applications" and "Files" sections of docs/card-profile.md
over :class:`pkcard.protocol.SmartCardProtocol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from typing import TypeVar

from pkcard import tlv
from pkcard.errors import FileNotFound, FormatError, WrongCardKind
from pkcard.protocol import SmartCardProtocol

INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
SELECT_BY_AID = 0x04
SELECT_EF_UNDER_DF = 0x02
P2_NO_RESPONSE = 0x0C
P2_FCP = 0x04
READ_CHUNK = 256

E = TypeVar("E", bound=IntEnum)

PK_AID = bytes.fromhex("F0504B43415244504B")
KZZ_AID = bytes.fromhex("F0504B434152444B5A")

FID_CARD_INFO = 0xC001
FID_HOLDER = 0xC002
FID_INSURED = 0xD001
FID_AUTH_CERT = 0xC101
FID_SIGN_CERT = 0xC102

TAG_CARD_INFO = 0x7F60
TAG_FCP = 0x62
TAG_FCP_SIZE = 0x80


class Environment(IntEnum):
    TEST = 1
    PRODUCTION = 2


class CardRole(IntEnum):
    REGULAR = 1
    BACKUP = 2


class IssuedKind(IntEnum):
    """EF.CardInfo tag DF06: what the issuer says the card is."""

    PK = 1
    KZZ = 2


@dataclass(frozen=True)
class CardInfo:
    """EF.CardInfo (template 7F60), common to PK and KZZ."""

    serial: str
    valid_from: date
    valid_until: date
    role: CardRole
    environment: Environment
    issuer: str
    kind: IssuedKind


def parse_date(raw: bytes) -> date:
    """An ASCII ``YYYYMMDD`` date."""
    text = raw.decode("ascii", errors="replace")
    if len(text) != 8 or not text.isdigit():
        raise FormatError("a date must be 8 ASCII digits YYYYMMDD")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise FormatError("not a calendar date") from None


def parse_text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{what} is not UTF-8") from None


def parse_enum(enum: type[E], raw: bytes, what: str) -> E:
    """A one-byte code of ``enum``."""
    if len(raw) != 1:
        raise FormatError(f"{what} must be one byte")
    try:
        return enum(raw[0])
    except ValueError:
        raise FormatError(f"unknown {what} code {raw[0]:02X}") from None


def required(fields: dict[int, bytes], tag: int) -> bytes:
    value = fields.get(tag)
    if value is None:
        raise FormatError(f"tag {tag:X} missing")
    return value


def parse_card_info(ef: bytes) -> CardInfo:
    """Decode the content of EF.CardInfo."""
    fields = tlv.parse_dict(tlv.Tlv.unpack(TAG_CARD_INFO, ef))
    return CardInfo(
        serial=required(fields, 0x5A).decode("ascii", errors="replace"),
        valid_from=parse_date(required(fields, 0xDF01)),
        valid_until=parse_date(required(fields, 0xDF02)),
        role=parse_enum(CardRole, required(fields, 0xDF03), "card role"),
        environment=parse_enum(Environment, required(fields, 0xDF04), "environment"),
        issuer=parse_text(required(fields, 0xDF05), "issuer"),
        kind=parse_enum(IssuedKind, required(fields, 0xDF06), "card kind"),
    )


def select_application(protocol: SmartCardProtocol, aid: bytes) -> None:
    """SELECT by AID without FCI; a card without the application is the wrong kind."""
    try:
        protocol.send_apdu(0x00, INS_SELECT, SELECT_BY_AID, P2_NO_RESPONSE, aid)
    except FileNotFound:
        raise WrongCardKind("the card does not hold the requested application") from None


def read_ef(protocol: SmartCardProtocol, fid: int) -> bytes:
    """SELECT an EF by FID (asking for the FCP to learn its size), then READ BINARY it whole.

    Raises :class:`FileNotFound` when the EF does not exist.
    """
    fcp = protocol.send_apdu(
        0x00, INS_SELECT, SELECT_EF_UNDER_DF, P2_FCP, fid.to_bytes(2, "big"), le=256
    )
    size = int.from_bytes(tlv.find(fcp, TAG_FCP, TAG_FCP_SIZE), "big")
    content = bytearray()
    while len(content) < size:
        chunk = min(READ_CHUNK, size - len(content))
        offset = len(content)
        part = protocol.send_apdu(0x00, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=chunk)
        if not part:
            raise FormatError(f"EF {fid:04X} ended at {offset} of {size} bytes")
        content += part
    return bytes(content[:size])


def read_card_info(protocol: SmartCardProtocol, expected: IssuedKind) -> CardInfo:
    """Read EF.CardInfo of the selected application and check the card is the ``expected`` kind."""
    info = parse_card_info(read_ef(protocol, FID_CARD_INFO))
    if info.kind is not expected:
        raise WrongCardKind(f"EF.CardInfo says this is not a {expected.name}")
    return info
