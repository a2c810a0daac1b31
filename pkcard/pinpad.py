"""Secure PIN entry on PIN-pad readers through PC/SC v2 part 10 (CCID secure PIN entry).

A PIN typed on the reader's keypad never reaches the workstation: the host
sends a PIN_VERIFY_STRUCTURE or PIN_MODIFY_STRUCTURE (an APDU template plus
where and how to insert the digits) with ``SCardControl``; the reader asks
for the digits, fills them into the template, sends the APDU to the card and
returns the card's answer, or its own ``64xx`` when the entry failed.

This module is pure (no pyscard): the feature and property codecs, the
structure builders for the card profile's PIN formats (docs/card-profile.md:
ASCII, padded with ``FF`` to an 8-byte block), the reader quirk table, and
:class:`PinPad`, which drives one reader through
:meth:`pkcard.transport.SmartCardConnection.control`. Layouts follow
pcsc-lite's ``reader.h`` (all multi-byte structure fields little-endian,
feature control codes in the feature TLV big-endian). See docs/pinpad.md.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from types import MappingProxyType

from pkcard.errors import (
    FormatError,
    NotSupported,
    PinPadCancelled,
    PinPadError,
    PinPadTimeout,
    PinPadWrongLength,
    PinRule,
    WeakPin,
)
from pkcard.pin import PAD_BYTE, Charset, PinFormat
from pkcard.transport import SmartCardConnection

SCARD_CTL_CODE_BASE = 0x42000000  # pcsc-lite on Linux and macOS


def scard_ctl_code(code: int) -> int:
    """pcsc-lite's ``SCARD_CTL_CODE(code)``."""
    return SCARD_CTL_CODE_BASE + code


CM_IOCTL_GET_FEATURE_REQUEST = scard_ctl_code(3400)  # 0x42000D48


class FeatureTag(IntEnum):
    """PC/SC v2 part 10 feature tags (the T of the GET_FEATURE_REQUEST TLV)."""

    VERIFY_PIN_START = 0x01
    VERIFY_PIN_FINISH = 0x02
    MODIFY_PIN_START = 0x03
    MODIFY_PIN_FINISH = 0x04
    GET_KEY_PRESSED = 0x05
    VERIFY_PIN_DIRECT = 0x06
    MODIFY_PIN_DIRECT = 0x07
    MCT_READER_DIRECT = 0x08
    MCT_UNIVERSAL = 0x09
    IFD_PIN_PROPERTIES = 0x0A
    ABORT = 0x0B
    SET_SPE_MESSAGE = 0x0C
    VERIFY_PIN_DIRECT_APP_ID = 0x0D
    MODIFY_PIN_DIRECT_APP_ID = 0x0E
    WRITE_DISPLAY = 0x0F
    GET_KEY = 0x10
    IFD_DISPLAY_PROPERTIES = 0x11
    GET_TLV_PROPERTIES = 0x12
    CCID_ESC_COMMAND = 0x13
    EXECUTE_PACE = 0x20


class PropertyTag(IntEnum):
    """Tags of the FEATURE_GET_TLV_PROPERTIES answer (values little-endian)."""

    W_LCD_LAYOUT = 0x01
    B_ENTRY_VALIDATION_CONDITION = 0x02
    B_TIMEOUT2 = 0x03
    W_LCD_MAX_CHARACTERS = 0x04
    W_LCD_MAX_LINES = 0x05
    B_MIN_PIN_SIZE = 0x06
    B_MAX_PIN_SIZE = 0x07
    S_FIRMWARE_ID = 0x08
    B_PPDU_SUPPORT = 0x09
    DW_MAX_APDU_DATA_SIZE = 0x0A
    W_ID_VENDOR = 0x0B
    W_ID_PRODUCT = 0x0C


class EntryValidation(IntFlag):
    """``bEntryValidationCondition``: what ends the PIN entry."""

    MAX_SIZE_REACHED = 0x01
    VALIDATION_KEY = 0x02
    TIMEOUT = 0x04


class PinEncoding(IntEnum):
    """``bmFormatString`` bits 1-0."""

    BINARY = 0
    BCD = 1
    ASCII = 2


class ConfirmPin(IntFlag):
    """``bConfirmPIN`` of the modify structure."""

    CONFIRM_NEW = 0x01  # the new PIN is typed twice
    ENTER_CURRENT = 0x02  # the current PIN (or the PUK, the TPIN) is typed first


class PadMessage(IntEnum):
    """The reader's built-in prompts (``bMsgIndex``), as the CCID spec numbers them."""

    ENTER_PIN = 0x00  # also "enter the current PIN" in a modify
    ENTER_NEW_PIN = 0x01
    CONFIRM_NEW_PIN = 0x02


class ReaderStatus(IntEnum):
    """Status words the reader itself (not the card) answers to a secure PIN entry."""

    TIMEOUT = 0x6400
    CANCELLED = 0x6401
    CONFIRMATION_MISMATCH = 0x6402
    WRONG_LENGTH = 0x6403
    BAD_STRUCTURE = 0x6B80


LANG_ENGLISH_US = 0x0409
LANG_SLOVENIAN = 0x0424
DEFAULT_TIMEOUT_SECONDS = 30
VERIFY_HEADER_LENGTH = 19  # PIN_VERIFY_STRUCTURE without abData
MODIFY_HEADER_LENGTH = 24  # PIN_MODIFY_STRUCTURE without abData
MAX_BLOCK_NIBBLE = 0x0F  # bmPINBlockString holds the block size in 4 bits


# --- feature and property answers -------------------------------------------


@dataclass(frozen=True)
class Features:
    """The answer to CM_IOCTL_GET_FEATURE_REQUEST: feature tag -> control code."""

    codes: Mapping[int, int]

    def code(self, tag: FeatureTag) -> int | None:
        return self.codes.get(tag)

    def __contains__(self, tag: object) -> bool:
        return tag in self.codes


def parse_features(answer: bytes) -> Features:
    """Parse the feature TLV list: ``tag(1) len(1)=4 control-code(4, big-endian)``."""
    codes: dict[int, int] = {}
    offset = 0
    while offset < len(answer):
        if offset + 2 > len(answer):
            raise FormatError("feature list truncated in a tag header")
        tag, length = answer[offset], answer[offset + 1]
        value = answer[offset + 2 : offset + 2 + length]
        if length != 4 or len(value) != 4:
            raise FormatError(f"feature {tag:#04x} has length {length}, expected 4")
        codes[tag] = int.from_bytes(value, "big")
        offset += 2 + length
    return Features(MappingProxyType(codes))


def encode_features(codes: Mapping[int, int]) -> bytes:
    """The inverse of :func:`parse_features` (for the simulated reader and tests)."""
    return b"".join(bytes([tag, 4]) + code.to_bytes(4, "big") for tag, code in codes.items())


@dataclass(frozen=True)
class LcdLayout:
    """``wLcdLayout``: lines x characters per line; 0 x 0 means no display."""

    lines: int = 0
    columns: int = 0

    @classmethod
    def from_word(cls, word: int) -> LcdLayout:
        return cls(lines=(word >> 8) & 0xFF, columns=word & 0xFF)

    @property
    def word(self) -> int:
        return (self.lines << 8) | self.columns

    @property
    def has_display(self) -> bool:
        return self.lines > 0 and self.columns > 0


NO_DISPLAY = LcdLayout()


@dataclass(frozen=True)
class PinPadProperties:
    """What the reader says about its PIN entry."""

    lcd: LcdLayout = NO_DISPLAY
    entry_validation: EntryValidation = EntryValidation.VALIDATION_KEY
    timeout2: int = 0
    min_pin_size: int | None = None
    max_pin_size: int | None = None
    usb_id: tuple[int, int] | None = None


def parse_pin_properties(answer: bytes) -> PinPadProperties:
    """Parse FEATURE_IFD_PIN_PROPERTIES: ``wLcdLayout(2, LE) bEntryValidation bTimeOut2``."""
    if len(answer) != 4:
        raise FormatError(f"PIN properties are {len(answer)} bytes, expected 4")
    layout, validation, timeout2 = struct.unpack("<HBB", answer)
    return PinPadProperties(LcdLayout.from_word(layout), EntryValidation(validation), timeout2)


def parse_tlv_properties(answer: bytes) -> Mapping[int, int | bytes]:
    """Parse FEATURE_GET_TLV_PROPERTIES: ``tag(1) len(1) value`` (integers little-endian).

    ``sFirmwareID`` stays bytes; every other value becomes an integer.
    """
    values: dict[int, int | bytes] = {}
    offset = 0
    while offset < len(answer):
        if offset + 2 > len(answer):
            raise FormatError("TLV properties truncated in a tag header")
        tag, length = answer[offset], answer[offset + 1]
        value = answer[offset + 2 : offset + 2 + length]
        if len(value) != length:
            raise FormatError(f"TLV property {tag:#04x} truncated")
        values[tag] = value if tag == PropertyTag.S_FIRMWARE_ID else int.from_bytes(value, "little")
        offset += 2 + length
    return MappingProxyType(values)


def properties_from_tlv(values: Mapping[int, int | bytes]) -> PinPadProperties:
    """The :class:`PinPadProperties` in a parsed TLV properties answer."""

    def number(tag: PropertyTag) -> int | None:
        value = values.get(tag)
        return value if isinstance(value, int) else None

    vendor, product = number(PropertyTag.W_ID_VENDOR), number(PropertyTag.W_ID_PRODUCT)
    validation = number(PropertyTag.B_ENTRY_VALIDATION_CONDITION)
    return PinPadProperties(
        lcd=LcdLayout.from_word(number(PropertyTag.W_LCD_LAYOUT) or 0),
        entry_validation=EntryValidation(
            validation if validation is not None else EntryValidation.VALIDATION_KEY
        ),
        timeout2=number(PropertyTag.B_TIMEOUT2) or 0,
        min_pin_size=number(PropertyTag.B_MIN_PIN_SIZE),
        max_pin_size=number(PropertyTag.B_MAX_PIN_SIZE),
        usb_id=(vendor, product) if vendor is not None and product is not None else None,
    )


# --- the structures -----------------------------------------------------------


def format_string(encoding: PinEncoding, *, position: int = 0, right_justify: bool = False) -> int:
    """``bmFormatString`` with byte units: position (in bytes) of the PIN in the APDU data."""
    if not 0 <= position <= 0x0F:
        raise ValueError("the PIN position must fit in 4 bits")
    return 0x80 | (position << 3) | (0x04 if right_justify else 0) | int(encoding)


def pin_block_string(block_length: int, *, length_bits: int = 0) -> int:
    """``bmPINBlockString``: bits of the PIN length field, block size in bytes."""
    if not 0 <= block_length <= MAX_BLOCK_NIBBLE or not 0 <= length_bits <= 0x0F:
        raise ValueError("block length and length-field size must fit in 4 bits")
    return (length_bits << 4) | block_length


@dataclass(frozen=True)
class PinVerifyStructure:
    """PC/SC part 10 PIN_VERIFY_STRUCTURE. ``apdu`` is the template (abData), no PIN in it."""

    timeout: int
    timeout2: int
    format_string: int
    pin_block_string: int
    pin_length_format: int
    min_pin: int
    max_pin: int
    entry_validation: int
    number_message: int
    lang_id: int
    msg_index: int
    apdu: bytes
    teo_prologue: bytes = b"\x00\x00\x00"

    def to_bytes(self) -> bytes:
        return (
            struct.pack(
                "<BBBBBHBBHB3sI",
                self.timeout,
                self.timeout2,
                self.format_string,
                self.pin_block_string,
                self.pin_length_format,
                (self.min_pin << 8) | self.max_pin,
                self.entry_validation,
                self.number_message,
                self.lang_id,
                self.msg_index,
                self.teo_prologue,
                len(self.apdu),
            )
            + self.apdu
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PinVerifyStructure:
        """Parse; :class:`FormatError` when short or ``ulDataLength`` disagrees."""
        if len(data) < VERIFY_HEADER_LENGTH + 4:
            raise FormatError("PIN_VERIFY_STRUCTURE too short")
        fields = struct.unpack_from("<BBBBBHBBHB3sI", data)
        apdu = data[VERIFY_HEADER_LENGTH:]
        if fields[11] != len(apdu):
            raise FormatError("PIN_VERIFY_STRUCTURE ulDataLength disagrees with abData")
        extra = fields[5]
        return cls(
            timeout=fields[0],
            timeout2=fields[1],
            format_string=fields[2],
            pin_block_string=fields[3],
            pin_length_format=fields[4],
            min_pin=extra >> 8,
            max_pin=extra & 0xFF,
            entry_validation=fields[6],
            number_message=fields[7],
            lang_id=fields[8],
            msg_index=fields[9],
            teo_prologue=fields[10],
            apdu=apdu,
        )


@dataclass(frozen=True)
class PinModifyStructure:
    """PC/SC part 10 PIN_MODIFY_STRUCTURE. ``apdu`` is the template (abData), no PIN in it."""

    timeout: int
    timeout2: int
    format_string: int
    pin_block_string: int
    pin_length_format: int
    insertion_offset_old: int
    insertion_offset_new: int
    min_pin: int
    max_pin: int
    confirm_pin: int
    entry_validation: int
    number_message: int
    lang_id: int
    msg_index1: int
    msg_index2: int
    msg_index3: int
    apdu: bytes
    teo_prologue: bytes = b"\x00\x00\x00"

    def to_bytes(self) -> bytes:
        return (
            struct.pack(
                "<BBBBBBBHBBBHBBB3sI",
                self.timeout,
                self.timeout2,
                self.format_string,
                self.pin_block_string,
                self.pin_length_format,
                self.insertion_offset_old,
                self.insertion_offset_new,
                (self.min_pin << 8) | self.max_pin,
                self.confirm_pin,
                self.entry_validation,
                self.number_message,
                self.lang_id,
                self.msg_index1,
                self.msg_index2,
                self.msg_index3,
                self.teo_prologue,
                len(self.apdu),
            )
            + self.apdu
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PinModifyStructure:
        """Parse; :class:`FormatError` when short or ``ulDataLength`` disagrees."""
        if len(data) < MODIFY_HEADER_LENGTH + 4:
            raise FormatError("PIN_MODIFY_STRUCTURE too short")
        f = struct.unpack_from("<BBBBBBBHBBBHBBB3sI", data)
        apdu = data[MODIFY_HEADER_LENGTH:]
        if f[16] != len(apdu):
            raise FormatError("PIN_MODIFY_STRUCTURE ulDataLength disagrees with abData")
        return cls(
            timeout=f[0],
            timeout2=f[1],
            format_string=f[2],
            pin_block_string=f[3],
            pin_length_format=f[4],
            insertion_offset_old=f[5],
            insertion_offset_new=f[6],
            min_pin=f[7] >> 8,
            max_pin=f[7] & 0xFF,
            confirm_pin=f[8],
            entry_validation=f[9],
            number_message=f[10],
            lang_id=f[11],
            msg_index1=f[12],
            msg_index2=f[13],
            msg_index3=f[14],
            teo_prologue=f[15],
            apdu=apdu,
        )


# --- reader quirks --------------------------------------------------------------


class PadQuirk(IntFlag):
    """Known deviations of a reader's secure PIN entry (from the CCID driver's notes)."""

    NONE = 0
    VERIFY_ONE_MESSAGE = 0x01  # verify: bNumberMessage must be 01 (00 and FF rejected)
    MODIFY_THREE_MESSAGES = 0x02  # modify: bNumberMessage must be 03
    VALIDATION_KEY_ONLY = 0x04  # bEntryValidationCondition must be 02
    NO_PIN_PAD = 0x08  # advertises secure PIN entry but has no keypad
    PIN_REACHES_HOST = 0x10  # keyboard reader: the typed PIN also goes to the host


@dataclass(frozen=True)
class ReaderQuirks:
    name: str
    quirks: PadQuirk
    max_pin_size: int | None = None

    @property
    def usable(self) -> bool:
        """Whether secure PIN entry may be used on this reader at all."""
        return not self.quirks & (PadQuirk.NO_PIN_PAD | PadQuirk.PIN_REACHES_HOST)


_GEMPC_PINPAD = PadQuirk.VERIFY_ONE_MESSAGE | PadQuirk.MODIFY_THREE_MESSAGES
_GEMPC_PINPAD |= PadQuirk.VALIDATION_KEY_ONLY

QUIRKS: Mapping[tuple[int, int], ReaderQuirks] = MappingProxyType(
    {
        (0x08E6, 0x3478): ReaderQuirks("Gemalto GemPC Pinpad (IDBridge CT700)", _GEMPC_PINPAD, 8),
        (0x0982, 0x0008): ReaderQuirks("Vasco DIGIPASS 870 (Vega Alpha)", _GEMPC_PINPAD),
        (0x076B, 0x3031): ReaderQuirks("HID OMNIKEY 3x21", PadQuirk.NO_PIN_PAD),
        (0x076B, 0x3A21): ReaderQuirks("HID OMNIKEY Aviator", PadQuirk.NO_PIN_PAD),
        (0x076B, 0x6632): ReaderQuirks("HID OMNIKEY 6121", PadQuirk.NO_PIN_PAD),
        (0x046A, 0x00A7): ReaderQuirks("Cherry Smart Terminal xx44", PadQuirk.NO_PIN_PAD),
        (0x0BF8, 0x1024): ReaderQuirks("Fujitsu Smartcard Reader D323", PadQuirk.NO_PIN_PAD),
        (0x03F0, 0x0036): ReaderQuirks("HP USB Smart Card Keyboard", PadQuirk.PIN_REACHES_HOST),
        (0x0BF8, 0x1017): ReaderQuirks("Fujitsu SmartCard Keyboard", PadQuirk.PIN_REACHES_HOST),
    }
)

NO_QUIRKS = ReaderQuirks("", PadQuirk.NONE)


def quirks_for(usb_id: tuple[int, int] | None) -> ReaderQuirks:
    """The quirks of the reader with USB (vendor, product) ``usb_id``."""
    if usb_id is None:
        return NO_QUIRKS
    return QUIRKS.get(usb_id, NO_QUIRKS)


# --- building structures for the card profile -----------------------------------


@dataclass(frozen=True)
class EntrySettings:
    """How this reader is asked for PINs: what its properties and quirks allow."""

    timeout: int = DEFAULT_TIMEOUT_SECONDS
    timeout2: int = 0
    lang_id: int = LANG_ENGLISH_US
    display: bool = False
    quirks: ReaderQuirks = NO_QUIRKS
    max_pin_size: int | None = None
    min_pin_size: int | None = None
    entry_validation: int = EntryValidation.VALIDATION_KEY

    @classmethod
    def for_reader(
        cls,
        properties: PinPadProperties,
        quirks: ReaderQuirks,
        *,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        lang_id: int = LANG_ENGLISH_US,
    ) -> EntrySettings:
        """Settings from the reader's properties, its quirks and the caller's timeout/language."""
        limits = [n for n in (properties.max_pin_size, quirks.max_pin_size) if n]
        validation: int = EntryValidation.VALIDATION_KEY
        if not properties.entry_validation & EntryValidation.VALIDATION_KEY and not (
            quirks.quirks & PadQuirk.VALIDATION_KEY_ONLY
        ):
            validation = int(properties.entry_validation) or EntryValidation.VALIDATION_KEY
        return cls(
            timeout=timeout,
            timeout2=properties.timeout2,
            lang_id=lang_id,
            display=properties.lcd.has_display,
            quirks=quirks,
            max_pin_size=min(limits) if limits else None,
            min_pin_size=properties.min_pin_size or None,
            entry_validation=validation,
        )

    def verify_messages(self) -> int:
        if self.quirks.quirks & PadQuirk.VERIFY_ONE_MESSAGE:
            return 1
        return 1 if self.display else 0

    def modify_messages(self) -> int:
        if self.quirks.quirks & PadQuirk.MODIFY_THREE_MESSAGES:
            return 3
        return 3 if self.display else 0

    def pin_range(self, *formats: PinFormat) -> tuple[int, int]:
        """``wPINMaxExtraDigit`` (min, max) covering ``formats``, within the reader's limits."""
        low = min(fmt.min_length for fmt in formats)
        high = max(fmt.max_length for fmt in formats)
        if self.min_pin_size is not None:
            low = max(low, self.min_pin_size)
        if self.max_pin_size is not None:
            high = min(high, self.max_pin_size)
        if low > high:
            raise NotSupported("this reader cannot take PINs of the length the card needs")
        return low, high


def _check_pad_format(fmt: PinFormat) -> None:
    if fmt.charset is not Charset.DIGITS:
        raise NotSupported(f"the {fmt.ref.name} is not digits: it cannot be typed on a PIN pad")
    if fmt.block_length > MAX_BLOCK_NIBBLE:
        raise NotSupported(f"the {fmt.ref.name} block is too long for a PIN pad")


def verify_structure(
    ins: int, p2: int, fmt: PinFormat, settings: EntrySettings
) -> PinVerifyStructure:
    """PIN_VERIFY_STRUCTURE for ``00 ins 00 p2 block`` with ``fmt`` (ASCII, FF-padded block)."""
    _check_pad_format(fmt)
    low, high = settings.pin_range(fmt)
    template = bytes([0x00, ins, 0x00, p2, fmt.block_length]) + bytes([PAD_BYTE]) * fmt.block_length
    return PinVerifyStructure(
        timeout=settings.timeout,
        timeout2=settings.timeout2,
        format_string=format_string(PinEncoding.ASCII),
        pin_block_string=pin_block_string(fmt.block_length),
        pin_length_format=0x00,
        min_pin=low,
        max_pin=high,
        entry_validation=settings.entry_validation,
        number_message=settings.verify_messages(),
        lang_id=settings.lang_id,
        msg_index=PadMessage.ENTER_PIN,
        apdu=template,
    )


def modify_structure(
    ins: int, p2: int, old: PinFormat, new: PinFormat, settings: EntrySettings
) -> PinModifyStructure:
    """PIN_MODIFY_STRUCTURE for ``00 ins 00 p2 old-block || new-block``.

    The current secret (PIN, PUK or TPIN) is typed first, then the new one
    twice. Both blocks must be the same length (one ``bmPINBlockString``).
    """
    _check_pad_format(old)
    _check_pad_format(new)
    if old.block_length != new.block_length:
        raise NotSupported("a PIN pad needs the old and new blocks of one length")
    block = old.block_length
    low, high = settings.pin_range(old, new)
    template = bytes([0x00, ins, 0x00, p2, 2 * block]) + bytes([PAD_BYTE]) * (2 * block)
    return PinModifyStructure(
        timeout=settings.timeout,
        timeout2=settings.timeout2,
        format_string=format_string(PinEncoding.ASCII),
        pin_block_string=pin_block_string(block),
        pin_length_format=0x00,
        insertion_offset_old=0,
        insertion_offset_new=block,
        min_pin=low,
        max_pin=high,
        confirm_pin=ConfirmPin.ENTER_CURRENT | ConfirmPin.CONFIRM_NEW,
        entry_validation=settings.entry_validation,
        number_message=settings.modify_messages(),
        lang_id=settings.lang_id,
        msg_index1=PadMessage.ENTER_PIN,
        msg_index2=PadMessage.ENTER_NEW_PIN,
        msg_index3=PadMessage.CONFIRM_NEW_PIN,
        apdu=template,
    )


# --- the reader's answer ----------------------------------------------------------


def card_status(answer: bytes) -> int:
    """The card's status word from a secure PIN entry answer, or the reader's error raised.

    ``6400`` :class:`PinPadTimeout`, ``6401`` :class:`PinPadCancelled`,
    ``6402`` :class:`WeakPin` (``CONFIRMATION_MISMATCH``), ``6403``
    :class:`PinPadWrongLength`, ``6B80`` and short answers :class:`PinPadError`.
    None of them spent a try on the card.
    """
    if len(answer) < 2:
        raise PinPadError("the reader gave no status word for the PIN entry")
    sw = int.from_bytes(answer[-2:], "big")
    if sw == ReaderStatus.TIMEOUT:
        raise PinPadTimeout("no PIN was entered on the reader in time")
    if sw == ReaderStatus.CANCELLED:
        raise PinPadCancelled("the PIN entry was cancelled on the reader")
    if sw == ReaderStatus.CONFIRMATION_MISMATCH:
        raise WeakPin(PinRule.CONFIRMATION_MISMATCH)
    if sw == ReaderStatus.WRONG_LENGTH:
        raise PinPadWrongLength("the PIN typed on the reader was too short or too long")
    if sw == ReaderStatus.BAD_STRUCTURE:
        raise PinPadError("the reader refused the PIN entry request")
    return sw


# --- one reader ------------------------------------------------------------------


class PinPad:
    """Secure PIN entry on the reader behind one connection.

    Open it with :meth:`open`, which asks the reader for its features and
    properties and refuses (:class:`NotSupported`) readers without
    VERIFY_PIN_DIRECT or with a quirk that makes the pad unusable. The
    methods return the card's status word; the reader's own failures are
    raised as :class:`PinPadError` subclasses (see :func:`card_status`).
    """

    def __init__(
        self, connection: SmartCardConnection, features: Features, settings: EntrySettings
    ) -> None:
        self._connection = connection
        self._features = features
        self._settings = settings

    @classmethod
    def open(
        cls,
        connection: SmartCardConnection,
        *,
        usb_id: tuple[int, int] | None = None,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        lang_id: int = LANG_ENGLISH_US,
    ) -> PinPad:
        features = parse_features(connection.control(CM_IOCTL_GET_FEATURE_REQUEST, b""))
        if FeatureTag.VERIFY_PIN_DIRECT not in features:
            raise NotSupported("this reader offers no secure PIN entry")
        properties = PinPadProperties()
        tlv_code = features.code(FeatureTag.GET_TLV_PROPERTIES)
        pin_code = features.code(FeatureTag.IFD_PIN_PROPERTIES)
        if tlv_code is not None:
            answer = connection.control(tlv_code, b"")
            properties = properties_from_tlv(parse_tlv_properties(answer))
        elif pin_code is not None:
            properties = parse_pin_properties(connection.control(pin_code, b""))
        quirks = quirks_for(usb_id or properties.usb_id)
        if not quirks.usable:
            raise NotSupported(f"secure PIN entry is unusable on the {quirks.name}")
        settings = EntrySettings.for_reader(properties, quirks, timeout=timeout, lang_id=lang_id)
        return cls(connection, features, settings)

    @property
    def settings(self) -> EntrySettings:
        return self._settings

    @property
    def can_modify(self) -> bool:
        return FeatureTag.MODIFY_PIN_DIRECT in self._features

    def verify(self, ins: int, p2: int, fmt: PinFormat) -> int:
        """Have the holder type ``fmt``'s secret; the card's status word."""
        code = self._features.code(FeatureTag.VERIFY_PIN_DIRECT)
        if code is None:
            raise NotSupported("this reader offers no secure PIN verification")
        structure = verify_structure(ins, p2, fmt, self._settings)
        return card_status(self._connection.control(code, structure.to_bytes()))

    def modify(self, ins: int, p2: int, old: PinFormat, new: PinFormat) -> int:
        """Have the holder type the current secret and the new one twice; the card's SW."""
        code = self._features.code(FeatureTag.MODIFY_PIN_DIRECT)
        if code is None:
            raise NotSupported("this reader offers no secure PIN change")
        structure = modify_structure(ins, p2, old, new, self._settings)
        return card_status(self._connection.control(code, structure.to_bytes()))
