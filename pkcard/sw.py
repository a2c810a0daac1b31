"""ISO 7816-4 status words: names, ranges, and the error each one raises.

Mapping policy of :func:`error_for_sw`: the protocol layer does not know
whether a command carried a PIN, so it never raises :class:`~pkcard.errors.PinError`.
``63Cx`` becomes :class:`~pkcard.errors.VerificationFailed` (with
``retries_left``), ``6983`` :class:`~pkcard.errors.AuthMethodBlocked` and
``6984`` :class:`~pkcard.errors.ReferenceDataNotUsable`; the card applications
(which know the reference they verified) turn those into ``WrongPin``,
``PinBlocked``, ``CardDead`` or ``TransportPinActive``.
"""

from __future__ import annotations

from enum import IntEnum

from pkcard import errors


class SW(IntEnum):
    """Status words with a fixed meaning. Ranges (61xx, 63Cx, 6Cxx) have helpers."""

    OK = 0x9000
    END_OF_FILE = 0x6282
    VERIFICATION_FAILED = 0x6300
    WRONG_LENGTH = 0x6700
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCE_NOT_FOUND = 0x6A88
    WRONG_OFFSET = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


SW_OK = 0x9000

_DESCRIPTIONS: dict[int, str] = {
    SW.OK: "success",
    SW.END_OF_FILE: "end of file reached before Le bytes",
    SW.VERIFICATION_FAILED: "verification failed",
    SW.WRONG_LENGTH: "wrong length",
    SW.SECURITY_STATUS_NOT_SATISFIED: "security status not satisfied",
    SW.AUTH_METHOD_BLOCKED: "authentication method blocked",
    SW.REFERENCE_DATA_NOT_USABLE: "reference data not usable",
    SW.CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied",
    SW.COMMAND_NOT_ALLOWED: "command not allowed",
    SW.WRONG_DATA: "incorrect data field",
    SW.FUNCTION_NOT_SUPPORTED: "function not supported",
    SW.FILE_NOT_FOUND: "file or application not found",
    SW.RECORD_NOT_FOUND: "record not found",
    SW.NOT_ENOUGH_MEMORY: "not enough memory",
    SW.INCORRECT_P1P2: "incorrect P1/P2",
    SW.REFERENCE_NOT_FOUND: "referenced data not found",
    SW.WRONG_OFFSET: "wrong P1/P2 (offset out of range)",
    SW.INS_NOT_SUPPORTED: "instruction not supported",
    SW.CLA_NOT_SUPPORTED: "class not supported",
    SW.NO_PRECISE_DIAGNOSIS: "no precise diagnosis",
}

_ERRORS: dict[int, type[errors.ApduError]] = {
    SW.WRONG_LENGTH: errors.WrongLength,
    SW.SECURITY_STATUS_NOT_SATISFIED: errors.SecurityStatusNotSatisfied,
    SW.AUTH_METHOD_BLOCKED: errors.AuthMethodBlocked,
    SW.REFERENCE_DATA_NOT_USABLE: errors.ReferenceDataNotUsable,
    SW.CONDITIONS_NOT_SATISFIED: errors.ConditionsNotSatisfied,
    SW.COMMAND_NOT_ALLOWED: errors.CommandNotAllowed,
    SW.WRONG_DATA: errors.WrongData,
    SW.FILE_NOT_FOUND: errors.FileNotFound,
    SW.INCORRECT_P1P2: errors.IncorrectParameters,
    SW.REFERENCE_NOT_FOUND: errors.ReferenceNotFound,
    SW.WRONG_OFFSET: errors.IncorrectParameters,
    SW.INS_NOT_SUPPORTED: errors.InsNotSupported,
    SW.CLA_NOT_SUPPORTED: errors.ClaNotSupported,
}


def is_more_data(sw: int) -> bool:
    """61xx: xx (00 meaning 256) more response bytes wait for GET RESPONSE."""
    return sw >> 8 == 0x61


def is_wrong_le(sw: int) -> bool:
    """6Cxx: wrong Le; resend the command with Le = xx (00 meaning 256)."""
    return sw >> 8 == 0x6C


def is_verification_failed(sw: int) -> bool:
    """63Cx: a secret or counter check failed with x retries left."""
    return sw & 0xFFF0 == 0x63C0


def retries_left(sw: int) -> int | None:
    """x for a 63Cx status word, else ``None``."""
    return sw & 0x0F if sw & 0xFFF0 == 0x63C0 else None


def available_length(sw: int) -> int:
    """The length xx of a 61xx or 6Cxx status word, 00 meaning 256."""
    return (sw & 0xFF) or 256


def _bytes(count: int) -> str:
    return "1 byte" if count == 1 else f"{count} bytes"


def describe(sw: int) -> str:
    """A short English description of ``sw``, with its hex value."""
    text = _DESCRIPTIONS.get(sw)
    if text is None:
        if is_more_data(sw):
            count = available_length(sw)
            text = f"{count} more {'byte' if count == 1 else 'bytes'} available"
        elif is_wrong_le(sw):
            text = f"wrong Le, {_bytes(available_length(sw))} available"
        elif is_verification_failed(sw):
            left = sw & 0x0F
            text = f"verification failed, {left} {'retry' if left == 1 else 'retries'} left"
        elif sw >> 8 in (0x62, 0x63):
            text = "warning"
        else:
            text = "unknown status"
    return f"{sw:04X} ({text})"


def error_for_sw(sw: int) -> errors.ApduError:
    """The :class:`~pkcard.errors.ApduError` subclass instance for a non-9000 ``sw``.

    Returned, not raised, so the caller writes ``raise error_for_sw(sw)``.
    Status words without a dedicated class give a plain ``ApduError``.
    """
    if sw & 0xFFF0 == 0x63C0:
        return errors.VerificationFailed(sw)
    cls = _ERRORS.get(sw, errors.ApduError)
    return cls(sw, f"card returned {describe(sw)}")
