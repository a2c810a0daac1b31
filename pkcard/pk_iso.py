"""The professional card's ISO driver: :class:`IsoPkDriver`, docs/card-profile.md over APDUs.

It sends the profile's commands over :class:`~pkcard.protocol.SmartCardProtocol`
and turns the status words of PIN commands into :class:`~pkcard.pk_driver.PinAnswer`.
PIN blocks are bytearrays wiped after use; the immutable APDU bytes built
from them cannot be wiped (a limit of Python).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from types import MappingProxyType

from pkcard.apdu import CommandApdu
from pkcard.cardinfo import (
    FID_AUTH_CERT,
    FID_HOLDER,
    FID_SIGN_CERT,
    PK_AID,
    CardInfo,
    IssuedKind,
    read_card_info,
    read_ef,
    select_application,
)
from pkcard.errors import FileNotFound, KeyNotFound, ReferenceNotFound
from pkcard.pin import PIN_FORMATS, PinFormat, PinRef, format_pin_block, wipe
from pkcard.pinpad import PinPad
from pkcard.pk_driver import KeySlot, PinAnswer, PinOutcome, PkDriver, PkHolder, parse_holder
from pkcard.protocol import SmartCardProtocol
from pkcard.secret import Secret
from pkcard.sw import SW, error_for_sw, retries_left
from pkcard.transport import SmartCardConnection

__all__ = ["IsoPkDriver"]

INS_VERIFY = 0x20
INS_CHANGE_REFERENCE_DATA = 0x24
INS_RESET_RETRY_COUNTER = 0x2C
INS_PSO = 0x2A
INS_INTERNAL_AUTHENTICATE = 0x88
PSO_CDS_P1P2 = (0x9E, 0x9A)
KEY_AUTH = 0x01
# VERIFY without a body, the status read of each reference: built (and encoded) once.
_STATUS_READS: Mapping[PinRef, CommandApdu] = MappingProxyType(
    {ref: CommandApdu(0x00, INS_VERIFY, 0x00, ref) for ref in PinRef}
)


def _pin_answer(sw: int) -> PinAnswer:
    tries = retries_left(sw)
    if sw == SW.OK:
        return PinAnswer(PinOutcome.OK)
    if tries is not None:
        return PinAnswer(PinOutcome.WRONG, tries)
    if sw == SW.AUTH_METHOD_BLOCKED:
        return PinAnswer(PinOutcome.BLOCKED)
    if sw == SW.REFERENCE_DATA_NOT_USABLE:
        return PinAnswer(PinOutcome.NOT_USABLE)
    if sw == SW.REFERENCE_NOT_FOUND:
        return PinAnswer(PinOutcome.NOT_FOUND)
    raise error_for_sw(sw)


class IsoPkDriver(PkDriver):
    """:class:`PkDriver` for the documented ISO 7816-4 profile (docs/card-profile.md)."""

    def __init__(self, protocol: SmartCardProtocol) -> None:
        self._protocol = protocol
        self._pad: PinPad | None = None

    @classmethod
    def over(cls, connection: SmartCardConnection) -> IsoPkDriver:
        return cls(SmartCardProtocol(connection))

    def transaction(self) -> AbstractContextManager[None]:
        return self._protocol.connection.transaction()

    def select(self) -> None:
        select_application(self._protocol, PK_AID)

    def read_card_info(self) -> CardInfo:
        return read_card_info(self._protocol, IssuedKind.PK)

    def read_holder(self) -> PkHolder:
        return parse_holder(read_ef(self._protocol, FID_HOLDER))

    def read_certificate(self, slot: KeySlot) -> bytes | None:
        fid = FID_AUTH_CERT if slot is KeySlot.AUTHENTICATION else FID_SIGN_CERT
        try:
            return read_ef(self._protocol, fid)
        except FileNotFound:
            return None

    def _pin_command(self, ins: int, ref: PinRef, *secrets: tuple[Secret, PinFormat]) -> PinAnswer:
        blocks = [format_pin_block(secret, fmt) for secret, fmt in secrets]
        try:
            body = b"".join(bytes(block) for block in blocks)
            response = self._protocol.transmit(CommandApdu(0x00, ins, 0x00, ref, body))
        finally:
            for block in blocks:
                wipe(block)
        return _pin_answer(response.sw)

    def pin_answer(self, ref: PinRef) -> PinAnswer:
        return _pin_answer(self._protocol.transmit(_STATUS_READS[ref]).sw)

    def verify(self, ref: PinRef, secret: Secret) -> PinAnswer:
        return self._pin_command(INS_VERIFY, ref, (secret, PIN_FORMATS[ref]))

    def change_reference_data(self, ref: PinRef, old: Secret, new: Secret) -> PinAnswer:
        fmt = PIN_FORMATS[ref]
        return self._pin_command(INS_CHANGE_REFERENCE_DATA, ref, (old, fmt), (new, fmt))

    def reset_retry_counter(self, puk: Secret, new_pin: Secret) -> PinAnswer:
        return self._pin_command(
            INS_RESET_RETRY_COUNTER,
            PinRef.PIN,
            (puk, PIN_FORMATS[PinRef.PUK]),
            (new_pin, PIN_FORMATS[PinRef.PIN]),
        )

    def activate_signature(self, tpin: Secret, new_spin: Secret) -> PinAnswer:
        return self._pin_command(
            INS_CHANGE_REFERENCE_DATA,
            PinRef.SPIN,
            (tpin, PIN_FORMATS[PinRef.TPIN]),
            (new_spin, PIN_FORMATS[PinRef.SPIN]),
        )

    def _pin_pad(self) -> PinPad:
        if self._pad is None:
            self._pad = PinPad.open(self._protocol.connection)
        return self._pad

    def verify_on_pad(self, ref: PinRef) -> PinAnswer:
        return _pin_answer(self._pin_pad().verify(INS_VERIFY, ref, PIN_FORMATS[ref]))

    def change_reference_data_on_pad(self, ref: PinRef) -> PinAnswer:
        fmt = PIN_FORMATS[ref]
        return _pin_answer(self._pin_pad().modify(INS_CHANGE_REFERENCE_DATA, ref, fmt, fmt))

    def reset_retry_counter_on_pad(self) -> PinAnswer:
        puk, pin = PIN_FORMATS[PinRef.PUK], PIN_FORMATS[PinRef.PIN]
        sw = self._pin_pad().modify(INS_RESET_RETRY_COUNTER, PinRef.PIN, puk, pin)
        return _pin_answer(sw)

    def activate_signature_on_pad(self) -> PinAnswer:
        tpin, spin = PIN_FORMATS[PinRef.TPIN], PIN_FORMATS[PinRef.SPIN]
        sw = self._pin_pad().modify(INS_CHANGE_REFERENCE_DATA, PinRef.SPIN, tpin, spin)
        return _pin_answer(sw)

    def _key_command(self, ins: int, p1: int, p2: int, digest: bytes, key: str) -> bytes:
        """A command that uses a card key: a missing key is :class:`KeyNotFound`.

        6982 stays :class:`~pkcard.errors.SecurityStatusNotSatisfied`, which is a
        :class:`~pkcard.errors.KeyNeedsPin` with the card's status word.
        """
        try:
            return self._protocol.send_apdu(0x00, ins, p1, p2, digest, le=256)
        except (ReferenceNotFound, FileNotFound):
            raise KeyNotFound(f"this card has no {key} key") from None

    def internal_authenticate(self, digest: bytes) -> bytes:
        ins = INS_INTERNAL_AUTHENTICATE
        return self._key_command(ins, 0x00, KEY_AUTH, digest, "authentication")

    def compute_signature(self, digest: bytes) -> bytes:
        p1, p2 = PSO_CDS_P1P2
        return self._key_command(INS_PSO, p1, p2, digest, "KPEP signing")
