"""The one table between pkcard errors and gRPC statuses.

pkcardd turns a raised :class:`~pkcard.errors.PkcardError` into a gRPC status
code plus a ``google.rpc.ErrorInfo`` (domain :data:`ERROR_DOMAIN`, a stable
``reason`` and string metadata) with :func:`describe`; the client turns the
ErrorInfo back into the same exception type with :func:`rebuild`. Neither
side needs grpc to use this module. docs/api.md renders this table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from types import MappingProxyType

from pkcard import errors as e

ERROR_DOMAIN = "pkcard.si"


class RpcCode(IntEnum):
    """The canonical gRPC status codes (google.rpc.Code)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class Reason(StrEnum):
    """The stable ``ErrorInfo.reason`` strings. Never renamed once released."""

    WRONG_PIN = "WRONG_PIN"
    PIN_BLOCKED = "PIN_BLOCKED"
    CARD_DEAD = "CARD_DEAD"
    PIN_DISABLED = "PIN_DISABLED"
    TRANSPORT_PIN = "TRANSPORT_PIN"
    LAST_TRY_NOT_CONFIRMED = "LAST_TRY_NOT_CONFIRMED"
    MALFORMED_PIN = "MALFORMED_PIN"
    WEAK_PIN = "WEAK_PIN"
    PIN_ERROR = "PIN_ERROR"
    PIN_PAD_TIMEOUT = "PIN_PAD_TIMEOUT"
    PIN_PAD_CANCELLED = "PIN_PAD_CANCELLED"
    PIN_PAD_ERROR = "PIN_PAD_ERROR"
    HOST_PIN_ENTRY_REFUSED = "HOST_PIN_ENTRY_REFUSED"
    CARD_REMOVED = "CARD_REMOVED"
    CARD_RESET = "CARD_RESET"
    NO_SERVICE = "NO_SERVICE"
    READER_NOT_FOUND = "READER_NOT_FOUND"
    READER_BUSY = "READER_BUSY"
    CARD_TIMEOUT = "CARD_TIMEOUT"
    TRANSPORT_ERROR = "TRANSPORT_ERROR"
    WRONG_CARD_KIND = "WRONG_CARD_KIND"
    ENVIRONMENT_MISMATCH = "ENVIRONMENT_MISMATCH"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    CARD_ERROR = "CARD_ERROR"
    CARD_PROTOCOL_ERROR = "CARD_PROTOCOL_ERROR"
    MALFORMED_CARD_DATA = "MALFORMED_CARD_DATA"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INVALID_REQUEST = "INVALID_REQUEST"
    UNAVAILABLE = "UNAVAILABLE"
    DAEMON_BUSY = "DAEMON_BUSY"
    RATE_LIMITED = "RATE_LIMITED"
    CALL_TIMEOUT = "CALL_TIMEOUT"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    SERVICE_NOT_FOUND = "SERVICE_NOT_FOUND"
    INTERNAL = "INTERNAL"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    SESSION_ENDED = "SESSION_ENDED"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    BACKEND_REFUSED = "BACKEND_REFUSED"
    ACTIVATION_OFFLINE = "ACTIVATION_OFFLINE"
    ACTIVATION_READER_UNSUPPORTED = "ACTIVATION_READER_UNSUPPORTED"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
    KEY_NEEDS_PIN = "KEY_NEEDS_PIN"
    KEY_NOT_FOUND = "KEY_NOT_FOUND"
    BACKUP_SWITCH_NOT_CONFIRMED = "BACKUP_SWITCH_NOT_CONFIRMED"
    SIGNATURE_REVOKED = "SIGNATURE_REVOKED"


Metadata = Mapping[str, str]


def _no_metadata(_: e.PkcardError) -> dict[str, str]:
    return {}


def _tries_left(err: e.PkcardError) -> dict[str, str]:
    return {"tries_left": str(getattr(err, "tries_left", 0))}


def _rule(err: e.PkcardError) -> dict[str, str]:
    assert isinstance(err, e.WeakPin)
    return {"rule": err.rule.name}


def _sw(err: e.PkcardError) -> dict[str, str]:
    assert isinstance(err, e.ApduError)
    return {"sw": f"{err.sw:04X}"}


def _incident(err: e.PkcardError) -> dict[str, str]:
    assert isinstance(err, e.DaemonInternalError)
    return {"incident_id": err.incident_id}


def _end_reason(err: e.PkcardError) -> dict[str, str]:
    assert isinstance(err, e.SessionEnded)
    return {"end_reason": err.end_reason.name}


def _rebuild_session_ended(metadata: Metadata, message: str) -> e.PkcardError:
    reason = e.SessionEndReason.__members__.get(
        metadata.get("end_reason", ""), e.SessionEndReason.CLOSED
    )
    return e.SessionEnded(reason, message)


def _retry_after(err: e.PkcardError) -> dict[str, str]:
    assert isinstance(err, e.RateLimited)
    return {"retry_after_s": str(err.retry_after_s)}


def _reader(err: e.PkcardError) -> dict[str, str]:
    assert isinstance(err, e.ActivationReaderUnsupported)
    return {"reader": err.reader}


def _backend_reason(err: e.PkcardError) -> dict[str, str]:
    assert isinstance(err, e.BackendRefused)
    return {"backend_reason": err.backend_reason}


def _rejection(err: e.PkcardError) -> dict[str, str]:
    assert isinstance(err, e.SignatureRejected)
    return {"rejection": err.reason.name}


def _rebuild_signature_rejected(metadata: Metadata, message: str) -> e.PkcardError:
    rejection = e.SignatureRejection.__members__.get(
        metadata.get("rejection", ""), e.SignatureRejection.MALFORMED
    )
    return e.SignatureRejected(rejection, message)


def _int(metadata: Metadata, key: str, default: int = 0) -> int:
    try:
        return int(metadata.get(key, default))
    except ValueError:
        return default


def _rebuild_weak_pin(metadata: Metadata, message: str) -> e.PkcardError:
    rule = e.PinRule.__members__.get(metadata.get("rule", ""), e.PinRule.LENGTH)
    return e.WeakPin(rule, message)


def _rebuild_apdu_error(metadata: Metadata, message: str) -> e.PkcardError:
    try:
        sw = int(metadata.get("sw", "0"), 16)
    except ValueError:
        sw = 0
    return e.ApduError(sw, message)


@dataclass(frozen=True)
class ErrorCode:
    """One row of the table: an exception type and how it travels."""

    error_type: type[e.PkcardError]
    reason: Reason
    code: RpcCode
    when: str
    metadata_keys: tuple[str, ...] = ()
    encode: Callable[[e.PkcardError], dict[str, str]] = field(default=_no_metadata, repr=False)
    decode: Callable[[Metadata, str], e.PkcardError] | None = field(default=None, repr=False)

    def rebuild(self, metadata: Metadata, message: str) -> e.PkcardError:
        if self.decode is not None:
            return self.decode(metadata, message)
        return self.error_type(message)


ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(e.WrongPin, Reason.WRONG_PIN, RpcCode.UNAUTHENTICATED,
              "the card refused the secret", ("tries_left",), _tries_left,
              lambda m, msg: e.WrongPin(_int(m, "tries_left"), msg)),
    ErrorCode(e.CardDead, Reason.CARD_DEAD, RpcCode.FAILED_PRECONDITION,
              "PIN and PUK exhausted: the card is unusable with a PIN"),
    ErrorCode(e.PinBlocked, Reason.PIN_BLOCKED, RpcCode.FAILED_PRECONDITION,
              "the secret's try counter is exhausted (unblock the PIN with the PUK)"),
    ErrorCode(e.PinDisabled, Reason.PIN_DISABLED, RpcCode.FAILED_PRECONDITION,
              "the reference can never be used again (TPIN after activation)"),
    ErrorCode(e.TransportPinActive, Reason.TRANSPORT_PIN, RpcCode.FAILED_PRECONDITION,
              "the signing PIN is in transport state: ActivateSignaturePin first"),
    ErrorCode(e.LastTryNotConfirmed, Reason.LAST_TRY_NOT_CONFIRMED, RpcCode.FAILED_PRECONDITION,
              "one try is left and confirm_last_try was false; nothing was sent",
              ("tries_left",), _tries_left,
              lambda m, _msg: e.LastTryNotConfirmed(_int(m, "tries_left", 1))),
    ErrorCode(e.MalformedPin, Reason.MALFORMED_PIN, RpcCode.INVALID_ARGUMENT,
              "empty, wrong length or wrong characters; refused before any APDU"),
    ErrorCode(e.WeakPin, Reason.WEAK_PIN, RpcCode.INVALID_ARGUMENT,
              "the new PIN breaks the PIN policy; rule names which rule",
              ("rule",), _rule, _rebuild_weak_pin),
    ErrorCode(e.PinPadTimeout, Reason.PIN_PAD_TIMEOUT, RpcCode.DEADLINE_EXCEEDED,
              "nobody typed the PIN on the reader's PIN pad in time; no try was spent"),
    ErrorCode(e.PinPadCancelled, Reason.PIN_PAD_CANCELLED, RpcCode.CANCELLED,
              "the holder pressed Cancel on the reader's PIN pad; no try was spent"),
    ErrorCode(e.PinPadError, Reason.PIN_PAD_ERROR, RpcCode.FAILED_PRECONDITION,
              "the PIN pad refused the entry (e.g. wrong PIN length); no try was spent"),
    ErrorCode(e.HostPinEntryRefused, Reason.HOST_PIN_ENTRY_REFUSED, RpcCode.FAILED_PRECONDITION,
              "a secret was sent for a reader with a PIN pad: type it on the reader instead"),
    ErrorCode(e.KeyNeedsPin, Reason.KEY_NEEDS_PIN, RpcCode.FAILED_PRECONDITION,
              "a card key was used before its PIN (SPIN) was verified in this card session"),
    ErrorCode(e.PinError, Reason.PIN_ERROR, RpcCode.FAILED_PRECONDITION,
              "any other refusal about a secret"),
    ErrorCode(e.CardRemoved, Reason.CARD_REMOVED, RpcCode.FAILED_PRECONDITION,
              "no card in the reader, or it was pulled during the call"),
    ErrorCode(e.CardReset, Reason.CARD_RESET, RpcCode.ABORTED,
              "another party reset the card; verified states are gone, retry"),
    ErrorCode(e.NoService, Reason.NO_SERVICE, RpcCode.UNAVAILABLE,
              "the PC/SC service is not running"),
    ErrorCode(e.ReaderNotFound, Reason.READER_NOT_FOUND, RpcCode.NOT_FOUND,
              "no reader of that name"),
    ErrorCode(e.ReaderBusy, Reason.READER_BUSY, RpcCode.UNAVAILABLE,
              "another process holds the reader exclusively"),
    ErrorCode(e.TransportTimeout, Reason.CARD_TIMEOUT, RpcCode.UNAVAILABLE,
              "the card or reader did not answer in time"),
    ErrorCode(e.TransportError, Reason.TRANSPORT_ERROR, RpcCode.UNAVAILABLE,
              "any other failure on the path to the card"),
    ErrorCode(e.EnvironmentMismatch, Reason.ENVIRONMENT_MISMATCH, RpcCode.FAILED_PRECONDITION,
              "a test card and a production card in one session; nothing was signed"),
    ErrorCode(e.WrongCardKind, Reason.WRONG_CARD_KIND, RpcCode.FAILED_PRECONDITION,
              "the card is not the kind the call needs (PK vs KZZ)"),
    ErrorCode(e.KeyNotFound, Reason.KEY_NOT_FOUND, RpcCode.FAILED_PRECONDITION,
              "the card has no such key"),
    ErrorCode(e.NotSupported, Reason.NOT_SUPPORTED, RpcCode.FAILED_PRECONDITION,
              "the card, reader or backend cannot do this"),
    ErrorCode(e.ApduError, Reason.CARD_ERROR, RpcCode.FAILED_PRECONDITION,
              "the card answered an unexpected status word", ("sw",), _sw, _rebuild_apdu_error),
    ErrorCode(e.ProtocolError, Reason.CARD_PROTOCOL_ERROR, RpcCode.UNAVAILABLE,
              "the card broke ISO 7816-4 framing"),
    ErrorCode(e.FormatError, Reason.MALFORMED_CARD_DATA, RpcCode.DATA_LOSS,
              "data read from the card does not parse"),
    ErrorCode(e.SessionNotFound, Reason.SESSION_NOT_FOUND, RpcCode.NOT_FOUND,
              "no session with that id (never opened, or ended long ago)"),
    ErrorCode(e.SessionEnded, Reason.SESSION_ENDED, RpcCode.FAILED_PRECONDITION,
              "the session ended (a card left, or CloseSession); end_reason says why",
              ("end_reason",), _end_reason, _rebuild_session_ended),
    ErrorCode(e.BackupSwitchNotConfirmed, Reason.BACKUP_SWITCH_NOT_CONFIRMED,
              RpcCode.FAILED_PRECONDITION,
              "a backup card that is not active, without backup_switch: using it deactivates "
              "the regular card until it is reactivated; nothing was signed"),
    ErrorCode(e.SignatureRevoked, Reason.SIGNATURE_REVOKED, RpcCode.FAILED_PRECONDITION,
              "the card's KPEP is revoked at the backend; the SPIN was not sent"),
    ErrorCode(e.BackendUnavailable, Reason.BACKEND_UNAVAILABLE, RpcCode.UNAVAILABLE,
              "pkcardd cannot reach the configured backend"),
    ErrorCode(e.BackendRefused, Reason.BACKEND_REFUSED, RpcCode.FAILED_PRECONDITION,
              "the backend refused the call; backend_reason is its ErrorInfo reason",
              ("backend_reason",), _backend_reason,
              lambda m, msg: e.BackendRefused(m.get("backend_reason", ""), msg)),
    ErrorCode(e.SignatureRejected, Reason.SIGNATURE_INVALID, RpcCode.INVALID_ARGUMENT,
              "the CMS signature does not verify over the document; rejection names the rule",
              ("rejection",), _rejection, _rebuild_signature_rejected),
    ErrorCode(e.AccessDenied, Reason.PERMISSION_DENIED, RpcCode.PERMISSION_DENIED,
              "the caller is not on the daemon's allow-list"),
    ErrorCode(e.InvalidRequest, Reason.INVALID_REQUEST, RpcCode.INVALID_ARGUMENT,
              "a request field or x-pkcard-* metadata value is missing or invalid"),
    ErrorCode(e.DaemonUnavailable, Reason.UNAVAILABLE, RpcCode.UNAVAILABLE,
              "the daemon is shutting down"),
    ErrorCode(e.AuditUnavailable, Reason.AUDIT_UNAVAILABLE, RpcCode.UNAVAILABLE,
              "the call's audit record cannot be written (e.g. a full disk); the card was "
              "not touched"),
    ErrorCode(e.RateLimited, Reason.RATE_LIMITED, RpcCode.RESOURCE_EXHAUSTED,
              "too many failed PIN checks for this card within the window; no secret was sent",
              ("retry_after_s",), _retry_after,
              lambda m, msg: e.RateLimited(_int(m, "retry_after_s"), msg)),
    ErrorCode(e.DaemonBusy, Reason.DAEMON_BUSY, RpcCode.RESOURCE_EXHAUSTED,
              "too many calls, or a WatchEvents client read too slowly"),
    ErrorCode(e.ServiceNotFound, Reason.SERVICE_NOT_FOUND, RpcCode.NOT_FOUND,
              "a health check named a service pkcardd does not serve"),
    ErrorCode(e.MethodNotImplemented, Reason.UNIMPLEMENTED, RpcCode.UNIMPLEMENTED,
              "pkcardd has no such method (unknown, or SimulationService without --simulated)"),
    ErrorCode(e.CallTimeout, Reason.CALL_TIMEOUT, RpcCode.DEADLINE_EXCEEDED,
              "the deadline expired while the call was queued; no card operation ran"),
    ErrorCode(e.ActivationOffline, Reason.ACTIVATION_OFFLINE, RpcCode.UNAVAILABLE,
              "signature activation needs the backend (the on-line system) and pkcardd cannot "
              "reach it; the TPIN was not sent"),
    ErrorCode(e.ActivationReaderUnsupported, Reason.ACTIVATION_READER_UNSUPPORTED,
              RpcCode.FAILED_PRECONDITION,
              "signature activation needs one of the readers the seed names (IDBridge CT30, "
              "CT700, CT710, GCR5500); the TPIN was not sent",
              ("reader",), _reader,
              lambda m, msg: e.ActivationReaderUnsupported(m.get("reader", ""), msg)),
    ErrorCode(e.DaemonInternalError, Reason.INTERNAL, RpcCode.INTERNAL,
              "an unexpected failure; details only in the daemon log under incident_id",
              ("incident_id",), _incident,
              lambda m, _msg: e.DaemonInternalError(m.get("incident_id", ""))),
)

BY_TYPE: Mapping[type[e.PkcardError], ErrorCode] = MappingProxyType(
    {row.error_type: row for row in ERROR_CODES}
)
BY_REASON: Mapping[str, ErrorCode] = MappingProxyType(
    {row.reason.value: row for row in ERROR_CODES}
)


@dataclass(frozen=True)
class ErrorDetail:
    """What travels for one error: code, message and the ErrorInfo contents."""

    code: RpcCode
    reason: Reason
    message: str
    metadata: Mapping[str, str]


def lookup(error: e.PkcardError) -> ErrorCode | None:
    """The row for the most specific class of ``error`` in the table, or None."""
    for cls in type(error).__mro__:
        row = BY_TYPE.get(cls)
        if row is not None:
            return row
    return None


def describe(error: e.PkcardError) -> ErrorDetail | None:
    """The status for ``error``; None when the table has no row (treat as internal)."""
    row = lookup(error)
    if row is None:
        return None
    return ErrorDetail(row.code, row.reason, str(error), MappingProxyType(row.encode(error)))


def rebuild(reason: str, metadata: Metadata, message: str) -> e.PkcardError | None:
    """The exception for a received ErrorInfo; None for an unknown reason."""
    row = BY_REASON.get(reason)
    return None if row is None else row.rebuild(metadata, message)
