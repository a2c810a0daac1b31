"""The one table where pkcard errors become pkpin's words and exit codes.

Each row names an error type; :func:`lookup` walks the error's class
hierarchy (its MRO) and takes the first row it finds, as
:func:`pkcard.error_codes.lookup` does for gRPC statuses. So a new subclass
is worded like its parent until it gets a row of its own, and
tests/pkpin/test_error_words.py checks that every :class:`PkcardError`
subclass reaches a row other than the catch-all, in every language.

A command may pass ``overrides``: rows that win over the table for the same
class or a more general one (``pkpin reactivate`` words a malformed password
its own way). Texts come from the error's type and typed fields, never from
``str(error)``, so no text can carry a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar, cast

from pkcard import error_codes
from pkcard import errors as e
from pkcard.pin import PinRef
from pkcard.tools.pkpin.errors import (
    AmbiguousReader,
    Cancelled,
    NoPinPad,
    NoPkCard,
    NoTerminal,
    ReaderChoiceAmbiguous,
    WaitTimedOut,
)
from pkcard.tools.pkpin.outcome import ExitCode, Outcome

if TYPE_CHECKING:
    from pkcard.tools.pkpin.messages import Messages

E = TypeVar("E", bound=e.PkcardError)


@dataclass(frozen=True)
class ErrorContext:
    """What the wording needs besides the error.

    ``ref`` is the secret presented (whose tries count), ``new_ref`` the one
    being set (default ``ref``), ``socket`` the daemon's address.
    """

    ref: PinRef = PinRef.PIN
    new_ref: PinRef | None = None
    socket: str = ""


Wording = Callable[["Messages", e.PkcardError, ErrorContext], str]
Details = Callable[[e.PkcardError], dict[str, object]]


def _no_details(_: e.PkcardError) -> dict[str, object]:
    return {}


@dataclass(frozen=True)
class ErrorWords:
    """One row: an error type, its exit code and its words.

    ``reason`` names errors that have no ErrorInfo reason (pkpin's own);
    ``details`` adds typed fields the ErrorInfo metadata does not carry.
    """

    error_type: type[e.PkcardError]
    exit_code: ExitCode
    words: Wording = field(repr=False)
    reason: str = ""
    details: Details = field(default=_no_details, repr=False)


def row(
    error_type: type[E],
    exit_code: ExitCode,
    words: Callable[[Messages, E, ErrorContext], str],
    *,
    reason: str = "",
    details: Callable[[E], dict[str, object]] | None = None,
) -> ErrorWords:
    """A row whose functions receive the row's own error type (checked by mypy)."""
    return ErrorWords(
        error_type,
        exit_code,
        cast(Wording, words),
        reason,
        _no_details if details is None else cast(Details, details),
    )


def _not_supported(w: Messages, _: e.NotSupported, c: ErrorContext) -> str:
    if c.ref in (PinRef.SPIN, PinRef.TPIN):
        return w.tr("This card has no signing PIN.")
    return w.tr("This card or reader does not support that.")


def _internal(w: Messages, err: e.DaemonInternalError, _: ErrorContext) -> str:
    text = w.tr("Internal error in pkcardd (incident %(incident)s).")
    return text % {"incident": err.incident_id or "?"}


def _unexpected(w: Messages, err: e.PkcardError, _: ErrorContext) -> str:
    return w.tr("Unexpected error (%(kind)s).") % {"kind": type(err).__name__}


CODE = ExitCode

ERROR_WORDS: tuple[ErrorWords, ...] = (
    # --- secrets -----------------------------------------------------------------
    row(e.WrongPin, CODE.WRONG_PIN, lambda w, err, c: w.wrong(c.ref, err.tries_left)),
    row(e.CardDead, CODE.BLOCKED, lambda w, _, c: w.dead()),
    row(e.PinBlocked, CODE.BLOCKED, lambda w, _, c: w.blocked(c.ref)),
    row(e.PinDisabled, CODE.BLOCKED, lambda w, _, c: w.disabled(c.ref)),
    row(e.TransportPinActive, CODE.BLOCKED, lambda w, _, c: w.transport()),
    row(e.LastTryNotConfirmed, CODE.LAST_TRY_REFUSED, lambda w, _, c: w.last_try_unconfirmed()),
    row(e.WeakPin, CODE.REFUSED_PIN, lambda w, err, c: w.weak(c.new_ref or c.ref, err.rule)),
    row(e.MalformedPin, CODE.REFUSED_PIN, lambda w, _, c: w.malformed(c.ref)),
    row(e.HostPinEntryRefused, CODE.DAEMON, lambda w, _, c: w.tr(
        "pkcardd takes PINs for this reader only from its PIN pad: run again with --pinpad.")),
    row(e.PinPadTimeout, CODE.CANCELLED,
        lambda w, _, c: w.tr("Nobody typed the PIN on the reader in time.")),
    row(e.PinPadCancelled, CODE.CANCELLED,
        lambda w, _, c: w.tr("PIN entry was cancelled on the reader.")),
    row(e.PinPadWrongLength, CODE.REFUSED_PIN,
        lambda w, _, c: w.tr("The PIN typed on the reader had the wrong length.")),
    row(e.PinPadError, CODE.CARD,
        lambda w, _, c: w.tr("The PIN-pad reader failed the PIN entry.")),
    row(e.KeyNeedsPin, CODE.CARD, lambda w, _, c: w.tr(
        "The card's key needs its PIN verified first: try again.")),
    row(e.PinError, CODE.BLOCKED, lambda w, _, c: w.disabled(c.ref)),
    # --- the card and the path to it ----------------------------------------------
    row(e.CardRemoved, CODE.CARD,
        lambda w, _, c: w.tr("Card removed: insert the card and try again.")),
    row(e.CardReset, CODE.CARD,
        lambda w, _, c: w.tr("The card was reset by another program: try again.")),
    row(e.NoService, CODE.CARD,
        lambda w, _, c: w.tr("The smart-card service (pcscd) is not running.")),
    row(e.ReaderNotFound, CODE.CARD,
        lambda w, _, c: w.tr("No such card reader: see pkpin readers.")),
    row(e.ReaderBusy, CODE.CARD,
        lambda w, _, c: w.tr("Another program is using the reader: try again later.")),
    row(e.TransportTimeout, CODE.CARD, lambda w, _, c: w.tr("The card did not answer in time.")),
    row(e.TransportError, CODE.CARD, lambda w, _, c: w.tr("The connection to the card failed.")),
    row(e.WrongCardKind, CODE.CARD,
        lambda w, _, c: w.tr("The card in the reader is not a professional card (PK).")),
    row(e.EnvironmentMismatch, CODE.CARD, lambda w, _, c: w.tr(
        "A test card and a production card cannot be used together.")),
    row(e.KeyNotFound, CODE.CARD, lambda w, _, c: w.tr("This card has no key for that.")),
    row(e.NotSupported, CODE.CARD, _not_supported),
    row(e.ApduError, CODE.CARD, lambda w, _, c: w.tr("The card refused the command.")),
    row(e.ProtocolError, CODE.CARD,
        lambda w, _, c: w.tr("The card answered in a way pkpin does not understand.")),
    row(e.FormatError, CODE.CARD, lambda w, _, c: w.tr("The data on the card could not be read.")),
    # --- pkcardd ------------------------------------------------------------------
    row(e.DaemonUnavailable, CODE.DAEMON, lambda w, _, c: w.daemon_unreachable(c.socket)),
    row(e.AccessDenied, CODE.DAEMON,
        lambda w, _, c: w.tr("pkcardd refused access: your user may not use the cards.")),
    row(e.DaemonBusy, CODE.DAEMON, lambda w, _, c: w.tr("pkcardd is busy: try again.")),
    row(e.UnsafeFile, CODE.DAEMON,
        lambda w, err, c: w.tr("A file of pkcard is not safe to use: {path}. Ask your IT staff"
                               " to check it.").format(path=err.path)),
    row(e.UntrustedDaemonSocket, CODE.DAEMON,
        lambda w, err, c: w.tr("The pkcardd socket belongs to uid {uid}, not to a trusted user:"
                               " nothing was sent to it. Ask your IT staff to check it.")
        .format(uid=err.found_uid)),
    row(e.RateLimited, CODE.RATE_LIMITED, lambda w, err, c: w.rate_limited(err.retry_after_s)),
    row(e.CallTimeout, CODE.DAEMON, lambda w, _, c: w.tr("pkcardd did not answer in time.")),
    row(e.InvalidRequest, CODE.DAEMON,
        lambda w, _, c: w.tr("pkcardd refused the request as invalid.")),
    row(e.DaemonInternalError, CODE.INTERNAL, _internal),
    row(e.BackendUnavailable, CODE.DAEMON,
        lambda w, _, c: w.tr("The card registry cannot be reached: try again later.")),
    row(e.BackendRefused, CODE.DAEMON,
        lambda w, _, c: w.tr("The card registry refused the request.")),
    row(e.BackupSwitchNotConfirmed, CODE.CARD, lambda w, _, c: w.tr(
        "Using this backup card deactivates your regular card until you reactivate it with "
        "the reactivation password: confirm the switch and say why (pkpin use-backup).")),
    row(e.SignatureRevoked, CODE.CARD, lambda w, _, c: w.tr(
        "The qualified signing certificate (KPEP) of this card is revoked: it no longer "
        "signs.")),
    row(e.DaemonError, CODE.DAEMON, lambda w, _, c: w.tr("pkcardd refused the request.")),
    # --- errors pkpin does not expect from its calls --------------------------------
    row(e.SignatureRejected, CODE.INTERNAL,
        lambda w, _, c: w.tr("A signature did not verify."), reason="SIGNATURE_INVALID"),
    row(e.TokenRefused, CODE.INTERNAL,
        lambda w, _, c: w.tr("A session token was refused."), reason="TOKEN_REFUSED"),
    row(e.RegistryError, CODE.DAEMON,
        lambda w, _, c: w.tr("The card registry refused the change."), reason="REGISTRY_REFUSED"),
    # --- pkpin's own --------------------------------------------------------------
    row(NoPkCard, CODE.CARD, lambda w, _, c: w.no_pk(), reason="NO_PK_CARD"),
    row(AmbiguousReader, CODE.USAGE, lambda w, err, c: w.ambiguous(err.readers),
        reason="SEVERAL_PK_CARDS", details=lambda err: {"readers": list(err.readers)}),
    row(ReaderChoiceAmbiguous, CODE.USAGE,
        lambda w, err, c: w.reader_choice_ambiguous(err.wanted, err.matches),
        reason="READER_AMBIGUOUS", details=lambda err: {"matches": list(err.matches)}),
    row(WaitTimedOut, CODE.CARD, lambda w, err, c: w.wait_timed_out(err.timeout_s),
        reason="WAIT_TIMEOUT", details=lambda err: {"timeout_s": err.timeout_s}),
    row(NoTerminal, CODE.USAGE, lambda w, _, c: w.no_terminal(), reason="NO_TERMINAL"),
    row(Cancelled, CODE.CANCELLED, lambda w, _, c: w.cancelled(), reason="CANCELLED"),
    row(NoPinPad, CODE.CARD, lambda w, _, c: w.no_pin_pad(), reason="NO_PIN_PAD"),
    # --- KPEP activation prerequisites (issue 15) ------------------------------------
    row(e.ActivationReaderUnsupported, CODE.CARD,
        lambda w, err, c: w.activation_reader(err.reader)),
    row(e.ActivationOffline, CODE.DAEMON, lambda w, _, c: w.activation_offline()),
    # --- the catch-all --------------------------------------------------------------
    row(e.PkcardError, CODE.INTERNAL, _unexpected, reason="INTERNAL"),
)

BY_TYPE: Mapping[type[e.PkcardError], ErrorWords] = MappingProxyType(
    {r.error_type: r for r in ERROR_WORDS}
)

_NUMBERS = frozenset({"tries_left", "retry_after_s"})  # ErrorInfo metadata that are counts


def lookup(
    error_type: type[e.PkcardError], overrides: Sequence[ErrorWords] = ()
) -> ErrorWords:
    """The row for the most specific class of ``error_type`` (``overrides`` first)."""
    extra = {r.error_type: r for r in overrides}
    for cls in error_type.__mro__:
        found = extra.get(cls) or BY_TYPE.get(cls)
        if found is not None:
            return found
    raise TypeError(f"{error_type.__name__} is not a PkcardError")


def describe(
    words: Messages,
    error: e.PkcardError,
    context: ErrorContext,
    overrides: Sequence[ErrorWords] = (),
) -> Outcome:
    """The words, exit code, reason and details for ``error``."""
    found = lookup(type(error), overrides)
    wire = error_codes.describe(error)
    details: dict[str, object] = {}
    if wire is not None:
        details = {
            key: int(value) if key in _NUMBERS and value.isdigit() else value
            for key, value in wire.metadata.items()
        }
    details.update(found.details(error))
    reason = wire.reason.value if wire is not None else (found.reason or "INTERNAL")
    return Outcome(
        found.exit_code,
        found.words(words, error, context),
        reason,
        MappingProxyType(details),
    )


__all__ = ["ERROR_WORDS", "ErrorContext", "ErrorWords", "describe", "lookup", "row"]
