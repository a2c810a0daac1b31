"""A simulated PIN-pad reader: PC/SC part 10 secure PIN entry, byte for byte.

:class:`SimulatedPinPad` answers the control codes a CCID reader behind
pcsc-lite's CCID driver answers: CM_IOCTL_GET_FEATURE_REQUEST (the feature
TLV list), FEATURE_IFD_PIN_PROPERTIES, FEATURE_GET_TLV_PROPERTIES,
FEATURE_VERIFY_PIN_DIRECT and FEATURE_MODIFY_PIN_DIRECT. For a PIN entry it
parses the exact structure, takes the digits from its :class:`Keypad` (the
test hook standing in for the holder's fingers), inserts them into the APDU
template per ``bmFormatString`` / ``bmPINBlockString`` /
``bmPINLengthFormat``, sends the APDU to the card and returns the card's
answer, or the reader's own ``6400`` (timeout), ``6401`` (cancel), ``6402``
(confirmation differs), ``6403`` (wrong length) or ``6B80`` (a structure the
firmware refuses, including the GemPC Pinpad's strict fields).

Every control request is recorded (:attr:`SimulatedPinPad.received`) so
tests can assert the exact bytes the host sent; the requests never hold a
PIN. Typed digits are kept only until the entry is used.
"""

from __future__ import annotations

import hmac
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from pkcard.errors import FormatError, NotSupported
from pkcard.pinpad import (
    CM_IOCTL_GET_FEATURE_REQUEST,
    NO_DISPLAY,
    ConfirmPin,
    EntryValidation,
    FeatureTag,
    LcdLayout,
    PadMessage,
    PinEncoding,
    PinModifyStructure,
    PinVerifyStructure,
    PropertyTag,
    ReaderStatus,
    encode_features,
    scard_ctl_code,
)

CLASS2_IOCTL_MAGIC = 0x330000  # the CCID driver's offset of feature control codes
APDU_HEADER = 5  # CLA INS P1 P2 Lc before the data the PIN goes into

CardSend = Callable[[bytes], bytes]


def feature_code(tag: FeatureTag) -> int:
    """The control code the CCID driver gives ``tag``: SCARD_CTL_CODE(tag + 0x330000)."""
    return scard_ctl_code(CLASS2_IOCTL_MAGIC + tag)


class KeyAction(IntEnum):
    DIGITS = 1
    CANCEL = 2
    TIMEOUT = 3


@dataclass(frozen=True)
class KeyEntry:
    """One PIN prompt's outcome. ``digits`` is hidden from repr."""

    action: KeyAction
    digits: bytes = field(default=b"", repr=False)


class Keypad:
    """The holder's fingers: each PIN prompt of the reader takes the next queued entry.

    A prompt with nothing queued times out. :attr:`prompts` records each
    prompt's message index (``None`` when the reader shows no message).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: deque[KeyEntry] = deque()
        self._prompts: list[PadMessage | None] = []

    def type(self, digits: str) -> None:
        """Queue a PIN typed and confirmed with OK (only 0-9 exist on the pad)."""
        if not all("0" <= ch <= "9" for ch in digits):
            raise ValueError("a PIN pad has only the digit keys")
        with self._lock:
            self._entries.append(KeyEntry(KeyAction.DIGITS, digits.encode("ascii")))

    def cancel(self) -> None:
        """Queue a press of the Cancel key."""
        with self._lock:
            self._entries.append(KeyEntry(KeyAction.CANCEL))

    def time_out(self) -> None:
        """Queue a prompt nobody answers."""
        with self._lock:
            self._entries.append(KeyEntry(KeyAction.TIMEOUT))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def prompts(self) -> tuple[PadMessage | None, ...]:
        with self._lock:
            return tuple(self._prompts)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._prompts.clear()

    def prompt(self, message: PadMessage | None) -> KeyEntry:
        """The reader asks for one PIN (called by the simulated reader)."""
        with self._lock:
            self._prompts.append(message)
            if not self._entries:
                return KeyEntry(KeyAction.TIMEOUT)
            return self._entries.popleft()


@dataclass(frozen=True)
class PadModel:
    """What a simulated PIN-pad reader is and how strict its firmware is."""

    usb_id: tuple[int, int]
    lcd: LcdLayout = NO_DISPLAY
    entry_validation: EntryValidation = (
        EntryValidation.MAX_SIZE_REACHED | EntryValidation.VALIDATION_KEY | EntryValidation.TIMEOUT
    )
    min_pin_size: int = 4
    max_pin_size: int = 8
    gempc_firmware: bool = False  # bNumberMessage 01/03 and bEntryValidationCondition 02 only
    modify: bool = True
    firmware_id: bytes = b"pkcard-sim"


CT700_PAD = PadModel(usb_id=(0x08E6, 0x3478), gempc_firmware=True, firmware_id=b"GemPC Pinpad")
CT710_PAD = PadModel(usb_id=(0x08E6, 0x34C2), lcd=LcdLayout(2, 16), firmware_id=b"CT710")

PAD_MODELS = {model.usb_id: model for model in (CT700_PAD, CT710_PAD)}


@dataclass(frozen=True)
class ReceivedControl:
    """One SCardControl request as the reader got it (never holds a PIN)."""

    code: int
    data: bytes


class _Refused(Exception):
    """Internal: end the entry with the reader's own status word."""

    def __init__(self, status: ReaderStatus) -> None:
        self.status = status
        super().__init__(status.name)


def _sw(status: ReaderStatus) -> bytes:
    return int(status).to_bytes(2, "big")


class SimulatedPinPad:
    """The part 10 side of one simulated PIN-pad reader."""

    def __init__(self, model: PadModel, keypad: Keypad | None = None) -> None:
        self._model = model
        self._keypad = keypad if keypad is not None else Keypad()
        self._lock = threading.Lock()
        self._received: list[ReceivedControl] = []
        tags = [FeatureTag.VERIFY_PIN_DIRECT]
        if model.modify:
            tags.append(FeatureTag.MODIFY_PIN_DIRECT)
        tags += [FeatureTag.IFD_PIN_PROPERTIES, FeatureTag.GET_TLV_PROPERTIES]
        self._features: dict[int, int] = {tag: feature_code(tag) for tag in tags}

    @property
    def model(self) -> PadModel:
        return self._model

    @property
    def keypad(self) -> Keypad:
        return self._keypad

    @property
    def received(self) -> tuple[ReceivedControl, ...]:
        with self._lock:
            return tuple(self._received)

    def clear_received(self) -> None:
        with self._lock:
            self._received.clear()

    def control(self, code: int, data: bytes, send: CardSend) -> bytes:
        """Answer one SCardControl request; ``send`` moves an APDU to the card.

        Unknown control codes raise :class:`NotSupported` (pcsc-lite's
        SCARD_E_UNSUPPORTED_FEATURE).
        """
        with self._lock:
            self._received.append(ReceivedControl(code, bytes(data)))
        if code == CM_IOCTL_GET_FEATURE_REQUEST:
            return encode_features(self._features)
        handlers: dict[int, Callable[[bytes, CardSend], bytes]] = {
            self._features[FeatureTag.IFD_PIN_PROPERTIES]: self._pin_properties,
            self._features[FeatureTag.GET_TLV_PROPERTIES]: self._tlv_properties,
            self._features[FeatureTag.VERIFY_PIN_DIRECT]: self._verify,
        }
        if FeatureTag.MODIFY_PIN_DIRECT in self._features:
            handlers[self._features[FeatureTag.MODIFY_PIN_DIRECT]] = self._modify
        handler = handlers.get(code)
        if handler is None:
            raise NotSupported(f"the simulated reader has no control code {code:#010x}")
        try:
            return handler(data, send)
        except _Refused as refused:
            return _sw(refused.status)

    # --- properties ----------------------------------------------------------

    def _pin_properties(self, _data: bytes, _send: CardSend) -> bytes:
        layout = self._model.lcd.word
        return layout.to_bytes(2, "little") + bytes([self._model.entry_validation, 0x00])

    def _tlv_properties(self, _data: bytes, _send: CardSend) -> bytes:
        m = self._model

        def prop(tag: PropertyTag, value: int, size: int) -> bytes:
            return bytes([tag, size]) + value.to_bytes(size, "little")

        firmware = bytes([PropertyTag.S_FIRMWARE_ID, len(m.firmware_id)]) + m.firmware_id
        return b"".join(
            [
                prop(PropertyTag.W_LCD_LAYOUT, m.lcd.word, 2),
                prop(PropertyTag.B_ENTRY_VALIDATION_CONDITION, m.entry_validation, 1),
                prop(PropertyTag.B_TIMEOUT2, 0, 1),
                prop(PropertyTag.B_MIN_PIN_SIZE, m.min_pin_size, 1),
                prop(PropertyTag.B_MAX_PIN_SIZE, m.max_pin_size, 1),
                firmware,
                prop(PropertyTag.DW_MAX_APDU_DATA_SIZE, 261, 4),
                prop(PropertyTag.W_ID_VENDOR, m.usb_id[0], 2),
                prop(PropertyTag.W_ID_PRODUCT, m.usb_id[1], 2),
            ]
        )

    # --- PIN entry -------------------------------------------------------------

    def _check_validation(self, condition: int) -> None:
        if condition == 0 or condition > 0x07:
            raise _Refused(ReaderStatus.BAD_STRUCTURE)
        if self._model.gempc_firmware and condition != EntryValidation.VALIDATION_KEY:
            raise _Refused(ReaderStatus.BAD_STRUCTURE)

    def _message(self, number: int, index: int, slot: int) -> PadMessage | None:
        """The message shown for the ``slot``-th prompt (0-based), if the reader shows any."""
        if not self._model.lcd.has_display or number == 0 or slot >= number:
            return None
        try:
            return PadMessage(index)
        except ValueError:
            return None

    def _enter(self, message: PadMessage | None, low: int, high: int) -> bytearray:
        entry = self._keypad.prompt(message)
        if entry.action is KeyAction.CANCEL:
            raise _Refused(ReaderStatus.CANCELLED)
        if entry.action is KeyAction.TIMEOUT:
            raise _Refused(ReaderStatus.TIMEOUT)
        digits = bytearray(entry.digits)
        limit = min(high, self._model.max_pin_size)
        if not max(low, 1) <= len(digits) <= limit:
            _wipe(digits)
            raise _Refused(ReaderStatus.WRONG_LENGTH)
        return digits

    def _verify(self, data: bytes, send: CardSend) -> bytes:
        try:
            s = PinVerifyStructure.from_bytes(data)
        except FormatError:
            raise _Refused(ReaderStatus.BAD_STRUCTURE) from None
        self._check_validation(s.entry_validation)
        if self._model.gempc_firmware and s.number_message != 1:
            raise _Refused(ReaderStatus.BAD_STRUCTURE)
        layout = _Layout.parse(s.format_string, s.pin_block_string, s.pin_length_format, s.apdu)
        pin = self._enter(self._message(s.number_message, s.msg_index, 0), s.min_pin, s.max_pin)
        apdu = bytearray(s.apdu)
        try:
            layout.insert(apdu, pin, 0)
            return send(bytes(apdu))
        finally:
            _wipe(pin)
            _wipe(apdu)

    def _modify(self, data: bytes, send: CardSend) -> bytes:
        try:
            s = PinModifyStructure.from_bytes(data)
        except FormatError:
            raise _Refused(ReaderStatus.BAD_STRUCTURE) from None
        self._check_validation(s.entry_validation)
        if s.number_message > 3 and s.number_message != 0xFF:
            raise _Refused(ReaderStatus.BAD_STRUCTURE)
        if self._model.gempc_firmware and s.number_message != 3:
            raise _Refused(ReaderStatus.BAD_STRUCTURE)
        layout = _Layout.parse(s.format_string, s.pin_block_string, s.pin_length_format, s.apdu)
        indexes = (s.msg_index1, s.msg_index2, s.msg_index3)
        with_current = bool(s.confirm_pin & ConfirmPin.ENTER_CURRENT)
        with_confirm = bool(s.confirm_pin & ConfirmPin.CONFIRM_NEW)
        typed: list[bytearray] = []
        apdu = bytearray(s.apdu)
        try:
            slot = 0
            if with_current:
                current = self._message(s.number_message, indexes[0], 0)
                typed.append(self._enter(current, s.min_pin, s.max_pin))
                layout.insert(apdu, typed[-1], s.insertion_offset_old)
                slot = 1
            prompt = self._message(s.number_message, indexes[slot], slot)
            new = self._enter(prompt, s.min_pin, s.max_pin)
            typed.append(new)
            if with_confirm:
                again = self._enter(
                    self._message(s.number_message, indexes[slot + 1], slot + 1),
                    s.min_pin,
                    s.max_pin,
                )
                typed.append(again)
                if not hmac.compare_digest(bytes(new), bytes(again)):
                    raise _Refused(ReaderStatus.CONFIRMATION_MISMATCH)
            layout.insert(apdu, new, s.insertion_offset_new)
            return send(bytes(apdu))
        finally:
            for buffer in typed:
                _wipe(buffer)
            _wipe(apdu)


@dataclass(frozen=True)
class _Layout:
    """Where and how the reader writes a PIN into the APDU template."""

    encoding: PinEncoding
    position: int  # byte offset of the PIN block in the APDU data
    right_justify: bool
    block_length: int
    length_bits: int
    length_position: int  # byte offset of the length field in the APDU data

    @classmethod
    def parse(
        cls, format_string: int, block_string: int, length_format: int, apdu: bytes
    ) -> _Layout:
        bit_units = not format_string & 0x80
        length_in_bits = bool(block_string >> 4) and not length_format & 0x10
        if bit_units or length_in_bits:
            # Only byte units are implemented (the card profile needs nothing else).
            raise _Refused(ReaderStatus.BAD_STRUCTURE)
        encoding_bits = format_string & 0x03
        if encoding_bits == 0x03:
            raise _Refused(ReaderStatus.BAD_STRUCTURE)
        layout = cls(
            encoding=PinEncoding(encoding_bits),
            position=(format_string >> 3) & 0x0F,
            right_justify=bool(format_string & 0x04),
            block_length=block_string & 0x0F,
            length_bits=block_string >> 4,
            length_position=length_format & 0x0F,
        )
        if layout.length_bits not in (0, 8) or len(apdu) < APDU_HEADER + layout.block_length:
            raise _Refused(ReaderStatus.BAD_STRUCTURE)
        return layout

    def insert(self, apdu: bytearray, pin: bytearray, offset: int) -> None:
        """Write ``pin`` into ``apdu`` at the layout's position plus ``offset`` bytes."""
        start = APDU_HEADER + self.position + offset
        if start + self.block_length > len(apdu):
            raise _Refused(ReaderStatus.BAD_STRUCTURE)
        encoded = self._encode(pin)
        if len(encoded) > self.block_length:
            raise _Refused(ReaderStatus.WRONG_LENGTH)
        at = start + self.block_length - len(encoded) if self.right_justify else start
        apdu[at : at + len(encoded)] = encoded
        _wipe(encoded)
        if self.length_bits:
            apdu[APDU_HEADER + self.length_position + offset] = len(pin)

    def _encode(self, pin: bytearray) -> bytearray:
        if self.encoding is PinEncoding.ASCII:
            return bytearray(pin)
        values = bytearray(b - 0x30 for b in pin)
        if self.encoding is PinEncoding.BINARY:
            return values
        packed = bytearray()
        for i in range(0, len(values), 2):
            high = values[i]
            low = values[i + 1] if i + 1 < len(values) else 0x0F
            packed.append((high << 4) | low)
        _wipe(values)
        return packed


def _wipe(buffer: bytearray) -> None:
    for i in range(len(buffer)):
        buffer[i] = 0
