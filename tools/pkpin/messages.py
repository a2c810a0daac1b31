"""Every word pkpin says, and the one place where errors become words and exit codes.

All text goes through the gettext catalog passed in (see :mod:`pkcard.tools.pkpin.i18n`);
the English msgids are the English output. No text ever holds a secret: the
errors are worded from their type and typed fields (tries left, rule), never
from ``str(error)``.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from datetime import date
from enum import IntEnum

from pkcard import errors as e
from pkcard.cardinfo import CardRole, Environment
from pkcard.expiry import ExpiryKind, ExpiryWarning
from pkcard.pin import PIN_FORMATS, PinRef, PinState, PinStatus
from pkcard.pk import Profession
from pkcard.tools.pkpin.errors import AmbiguousReader, Cancelled, NoPinPad, NoPkCard, NoTerminal


class ExitCode(IntEnum):
    """pkpin's exit status. Stable: scripts depend on these numbers."""

    OK = 0
    USAGE = 1  # bad arguments, no terminal, or more than one card to choose from
    WRONG_PIN = 2  # the card refused the PIN, PUK, signing or transport PIN
    BLOCKED = 3  # the secret is blocked, used up or not activated yet
    REFUSED_PIN = 4  # weak or malformed new PIN, or the two entries differ: nothing sent
    CARD = 5  # no card, card removed or reset, reader or PC/SC problem, unsupported
    DAEMON = 6  # pkcardd unreachable, busy, or it refused the caller
    LAST_TRY_REFUSED = 7  # one try left and it was not confirmed: nothing sent
    CANCELLED = 8  # interrupted (Ctrl-C or end of input) before anything was sent
    INTERNAL = 9  # an unexpected failure


@dataclass(frozen=True)
class Outcome:
    """What pkpin says about a failure, and how it exits."""

    exit_code: ExitCode
    text: str


class Messages:
    """pkpin's words in one language."""

    def __init__(self, translations: gettext.NullTranslations) -> None:
        self._t = translations

    def tr(self, text: str) -> str:
        return self._t.gettext(text)

    # --- names --------------------------------------------------------------

    def secret_name(self, ref: PinRef) -> str:
        t = self._t
        names = {
            PinRef.PIN: t.gettext("PIN"),
            PinRef.PUK: t.gettext("PUK"),
            PinRef.SPIN: t.gettext("signing PIN"),
            PinRef.TPIN: t.gettext("transport PIN"),
            PinRef.REACTIVATION: t.gettext("reactivation password"),
        }
        return names[ref]

    def profession(self, profession: Profession) -> str:
        t = self._t
        names = {
            Profession.DOCTOR: t.gettext("doctor"),
            Profession.DENTIST: t.gettext("dentist"),
            Profession.NURSE: t.gettext("nurse"),
            Profession.PHARMACIST: t.gettext("pharmacist"),
            Profession.BLOOD_DONATION_STAFF: t.gettext("blood donation staff"),
            Profession.OTHER_HEALTH_WORKER: t.gettext("other health worker"),
            Profession.ADMINISTRATIVE: t.gettext("administrative staff"),
        }
        return names[profession]

    def role(self, role: CardRole) -> str:
        if role is CardRole.BACKUP:
            return self._t.gettext("backup card")
        return self._t.gettext("regular card")

    def environment(self, environment: Environment) -> str:
        if environment is Environment.PRODUCTION:
            return self._t.gettext("production")
        return self._t.gettext("test")

    def pin_state(self, status: PinStatus) -> str:
        t = self._t
        state = status.state
        if state is PinState.VERIFIED:
            return t.gettext("verified")
        if state is PinState.VERIFIABLE:
            return t.gettext("%(left)d of %(max)d tries left") % {
                "left": status.tries_left,
                "max": status.max_tries,
            }
        if state is PinState.TRANSPORT:
            return t.gettext("not activated yet (pkpin activate-signature)")
        if state is PinState.BLOCKED:
            return t.gettext("blocked")
        if state is PinState.DEAD:
            return t.gettext("blocked for good")
        return t.gettext("used, no longer needed")

    # --- status labels --------------------------------------------------------

    def label_reader(self) -> str:
        return self.tr("Reader")

    def label_holder(self) -> str:
        return self.tr("Holder")

    def label_card(self) -> str:
        return self.tr("Card")

    def label_valid(self) -> str:
        return self.tr("Valid")

    def label_issuer(self) -> str:
        return self.tr("Issuer")

    def label_signing_certificate(self) -> str:
        return self.tr("Signing certificate")

    def valid_range(self, start: date, end: date) -> str:
        text = self.tr("%(start)s to %(end)s")
        return text % {"start": start.isoformat(), "end": end.isoformat()}

    def valid_until(self, end: date) -> str:
        return self.tr("valid until %(end)s") % {"end": end.isoformat()}

    def no_signing_certificate(self) -> str:
        return self.tr("none")

    def reader_line(self, name: str, card: str, pin_pad: bool | None) -> str:
        if pin_pad:
            return self.tr("%(reader)s: %(card)s (PIN pad)") % {"reader": name, "card": card}
        return self.tr("%(reader)s: %(card)s") % {"reader": name, "card": card}

    def card_kind_none(self) -> str:
        return self.tr("no card")

    def card_kind_pk(self) -> str:
        return self.tr("professional card (PK)")

    def card_kind_kzz(self) -> str:
        return self.tr("health insurance card (KZZ)")

    def card_kind_unknown(self) -> str:
        return self.tr("unknown card")

    def no_readers(self) -> str:
        return self.tr("No card reader found.")

    def warning(self, warning: ExpiryWarning) -> str:
        t = self._t
        days = warning.days_left
        when = warning.expires_on.isoformat()
        if warning.kind is ExpiryKind.CARD_REPLACEMENT_DUE:
            text = t.ngettext(
                "Warning: card due for replacement in %(days)d day",
                "Warning: card due for replacement in %(days)d days",
                days,
            )
        elif warning.kind is ExpiryKind.KPEP_RENEWAL_DUE:
            text = t.ngettext(
                "Warning: the signing certificate (KPEP) expires in %(days)d day: renew it",
                "Warning: the signing certificate (KPEP) expires in %(days)d days: renew it",
                days,
            )
        elif warning.kind is ExpiryKind.CARD_EXPIRED:
            text = t.gettext("Warning: the card expired on %(date)s: ask ZZZS for a new card")
        else:
            text = t.gettext("Warning: the signing certificate (KPEP) expired on %(date)s")
        return text % {"days": days, "date": when}

    # --- prompts ------------------------------------------------------------

    def prompt_current(self, ref: PinRef) -> str:
        return self.tr("Current %(secret)s: ") % {"secret": self.secret_name(ref)}

    def prompt_new(self, ref: PinRef) -> str:
        return self.tr("New %(secret)s: ") % {"secret": self.secret_name(ref)}

    def prompt_again(self, ref: PinRef) -> str:
        return self.tr("New %(secret)s again: ") % {"secret": self.secret_name(ref)}

    def prompt_last_try(self, ref: PinRef) -> str:
        if ref is PinRef.PUK:
            return self.tr(
                "Only 1 try left. A wrong PUK makes the card unusable for good. Continue? [y/N] "
            )
        if ref is PinRef.PIN:
            return self.tr("Only 1 try left. A wrong PIN blocks the card. Continue? [y/N] ")
        return self.tr("Only 1 try left. A wrong %(secret)s blocks it. Continue? [y/N] ") % {
            "secret": self.secret_name(ref)
        }

    def is_yes(self, answer: str) -> bool:
        """Whether ``answer`` to a [y/N] question means yes (English words always count)."""
        words = {"y", "yes", *self.tr("y|yes").split("|")}
        return answer.strip().lower() in words

    def pin_pad_notice(self) -> str:
        return self.tr(
            "This reader has a PIN pad: type the PIN on the reader (pkpin COMMAND --pinpad). "
            "Without --pinpad, type it here."
        )

    def pin_pad_steps(self, presented: PinRef, target: PinRef) -> str:
        """What to type on the PIN pad, in order."""
        text = self.tr(
            "This reader has a PIN pad: type the PIN on the reader. "
            "First the current %(presented)s, then the new %(target)s twice."
        )
        return text % {
            "presented": self.secret_name(presented),
            "target": self.secret_name(target),
        }

    # --- results ------------------------------------------------------------

    def changed(self, ref: PinRef) -> str:
        if ref is PinRef.SPIN:
            return self.tr("Signing PIN changed.")
        return self.tr("PIN changed.")

    def unblocked(self) -> str:
        return self.tr("PIN unblocked: the new PIN is set.")

    def activated(self) -> str:
        return self.tr("Signing PIN activated.")

    # --- failures -----------------------------------------------------------

    def wrong(self, ref: PinRef, tries_left: int) -> str:
        text = self._t.ngettext(
            "Wrong %(secret)s: %(tries)d try left",
            "Wrong %(secret)s: %(tries)d tries left",
            tries_left,
        )
        return text % {"secret": self.secret_name(ref), "tries": tries_left}

    def blocked(self, ref: PinRef) -> str:
        if ref is PinRef.PIN:
            return self.tr("PIN blocked: unblock it with your PUK (pkpin unblock)")
        if ref is PinRef.PUK:
            return self.dead()
        if ref is PinRef.SPIN:
            return self.tr("Signing PIN blocked: ask ZZZS to unblock it")
        return self.tr("Transport PIN blocked: the signing PIN cannot be activated; ask ZZZS")

    def dead(self) -> str:
        return self.tr("PUK blocked: this card can no longer be used; ask ZZZS for a new card")

    def disabled(self, ref: PinRef) -> str:
        if ref in (PinRef.SPIN, PinRef.TPIN):
            return self.tr("The signing PIN is already activated: use pkpin change-spin")
        return self.tr("The %(secret)s can no longer be used") % {"secret": self.secret_name(ref)}

    def transport(self) -> str:
        return self.tr("Signature PIN not activated yet: run pkpin activate-signature")

    def last_try_declined(self) -> str:
        return self.tr("Cancelled: nothing was sent to the card.")

    def last_try_unconfirmed(self) -> str:
        return self.tr(
            "Only 1 try is left: nothing was sent. "
            "Run again and confirm, or pass --confirm-last-try."
        )

    def malformed(self, ref: PinRef) -> str:
        fmt = PIN_FORMATS[ref]
        secret = self.secret_name(ref)
        if not fmt.digits_only:
            return self.tr(
                "The %(secret)s must be %(min)d to %(max)d printable characters long."
            ) % {"secret": secret, "min": fmt.min_length, "max": fmt.max_length}
        if fmt.min_length == fmt.max_length:
            text = self._t.ngettext(
                "The %(secret)s must be exactly %(n)d digit.",
                "The %(secret)s must be exactly %(n)d digits.",
                fmt.max_length,
            )
            return text % {"secret": secret, "n": fmt.max_length}
        return self.tr("The %(secret)s must be %(min)d to %(max)d digits.") % {
            "secret": secret,
            "min": fmt.min_length,
            "max": fmt.max_length,
        }

    def weak(self, ref: PinRef, rule: e.PinRule) -> str:
        """The refusal of a new ``ref`` value, naming the rule it breaks."""
        t = self._t
        fmt = PIN_FORMATS[ref]
        texts = {
            e.PinRule.DIGITS_ONLY: t.gettext("The new %(secret)s must contain only digits."),
            e.PinRule.LENGTH: t.gettext("The new %(secret)s must be %(min)d to %(max)d digits."),
            e.PinRule.SEQUENCE: t.gettext(
                "The new %(secret)s must not be a sequence of digits such as 1234."
            ),
            e.PinRule.REPEATED: t.gettext(
                "The new %(secret)s must not repeat one digit, such as 1111."
            ),
            e.PinRule.DATE: t.gettext("The new %(secret)s must not be a date."),
            e.PinRule.BIRTH_DATE: t.gettext("The new %(secret)s must not be your birth date."),
            e.PinRule.SAME_AS_OLD: t.gettext(
                "The new %(secret)s must differ from the current one."
            ),
            e.PinRule.CONFIRMATION_MISMATCH: t.gettext(
                "The two entries of the new %(secret)s differ: nothing was changed."
            ),
        }
        return texts[rule] % {
            "secret": self.secret_name(ref),
            "min": fmt.min_length,
            "max": fmt.max_length,
        }

    def no_pk(self) -> str:
        return self.tr("No professional card (PK) found in any reader.")

    def ambiguous(self, readers: tuple[str, ...]) -> str:
        head = self.tr("More than one reader holds a professional card; choose one with --reader:")
        return "\n".join([head, *(f"  {name}" for name in readers)])

    def no_terminal(self) -> str:
        return self.tr("No terminal to read the PIN from: run pkpin in a terminal.")

    def no_pin_pad(self) -> str:
        return self.tr("This reader has no PIN pad: run without --pinpad.")

    def cancelled(self) -> str:
        return self.tr("Cancelled: nothing was sent to the card.")

    def interrupted(self) -> str:
        return self.tr("Interrupted.")

    def daemon_unreachable(self, socket: str) -> str:
        return self.tr(
            "Cannot reach the card service pkcardd at %(socket)s: is it running? "
            "(--direct talks to the reader without it)"
        ) % {"socket": socket}

    def _pin_pad_outcome(self, error: e.PkcardError) -> Outcome | None:
        t = self._t
        code = ExitCode
        if isinstance(error, e.HostPinEntryRefused):
            return Outcome(
                code.DAEMON,
                t.gettext(
                    "pkcardd takes PINs for this reader only from its PIN pad: "
                    "run again with --pinpad."
                ),
            )
        if isinstance(error, e.PinPadTimeout):
            return Outcome(code.CANCELLED, t.gettext("Nobody typed the PIN on the reader in time."))
        if isinstance(error, e.PinPadCancelled):
            return Outcome(code.CANCELLED, t.gettext("PIN entry was cancelled on the reader."))
        if isinstance(error, e.PinPadWrongLength):
            return Outcome(
                code.REFUSED_PIN, t.gettext("The PIN typed on the reader had the wrong length.")
            )
        if isinstance(error, e.PinPadError):
            return Outcome(code.CARD, t.gettext("The PIN-pad reader failed the PIN entry."))
        return None

    def describe(
        self,
        error: e.PkcardError,
        *,
        ref: PinRef = PinRef.PIN,
        new_ref: PinRef | None = None,
        socket: str = "",
    ) -> Outcome:
        """The words and exit code for ``error``.

        ``ref`` is the secret presented (whose tries count), ``new_ref`` the
        one being set (default ``ref``), ``socket`` the daemon's address.
        """
        t = self._t
        code = ExitCode
        if isinstance(error, e.WrongPin):
            return Outcome(code.WRONG_PIN, self.wrong(ref, error.tries_left))
        if isinstance(error, e.CardDead):
            return Outcome(code.BLOCKED, self.dead())
        if isinstance(error, e.PinBlocked):
            return Outcome(code.BLOCKED, self.blocked(ref))
        if isinstance(error, e.PinDisabled):
            return Outcome(code.BLOCKED, self.disabled(ref))
        if isinstance(error, e.TransportPinActive):
            return Outcome(code.BLOCKED, self.transport())
        if isinstance(error, e.LastTryNotConfirmed):
            return Outcome(code.LAST_TRY_REFUSED, self.last_try_unconfirmed())
        if isinstance(error, e.WeakPin):
            return Outcome(code.REFUSED_PIN, self.weak(new_ref or ref, error.rule))
        if isinstance(error, e.MalformedPin):
            return Outcome(code.REFUSED_PIN, self.malformed(ref))
        pad = self._pin_pad_outcome(error)
        if pad is not None:
            return pad
        if isinstance(error, e.PinError):
            return Outcome(code.BLOCKED, self.disabled(ref))
        if isinstance(error, NoPkCard):
            return Outcome(code.CARD, self.no_pk())
        if isinstance(error, AmbiguousReader):
            return Outcome(code.USAGE, self.ambiguous(error.readers))
        if isinstance(error, NoTerminal):
            return Outcome(code.USAGE, self.no_terminal())
        if isinstance(error, Cancelled):
            return Outcome(code.CANCELLED, self.cancelled())
        if isinstance(error, NoPinPad):
            return Outcome(code.CARD, self.no_pin_pad())
        if isinstance(error, e.NotSupported) and ref in (PinRef.SPIN, PinRef.TPIN):
            return Outcome(code.CARD, t.gettext("This card has no signing PIN."))
        transport: list[tuple[type[e.PkcardError], str]] = [
            (e.CardRemoved, t.gettext("Card removed: insert the card and try again.")),
            (e.CardReset, t.gettext("The card was reset by another program: try again.")),
            (e.NoService, t.gettext("The smart-card service (pcscd) is not running.")),
            (e.ReaderNotFound, t.gettext("No such card reader: see pkpin readers.")),
            (e.ReaderBusy, t.gettext("Another program is using the reader: try again later.")),
            (e.TransportTimeout, t.gettext("The card did not answer in time.")),
            (e.TransportError, t.gettext("The connection to the card failed.")),
            (e.WrongCardKind, t.gettext("The card in the reader is not a professional card (PK).")),
            (e.NotSupported, t.gettext("This card or reader does not support that.")),
            (e.ApduError, t.gettext("The card refused the command.")),
            (e.ProtocolError, t.gettext("The card answered in a way pkpin does not understand.")),
            (e.FormatError, t.gettext("The data on the card could not be read.")),
        ]
        for error_type, text in transport:
            if isinstance(error, error_type):
                return Outcome(code.CARD, text)
        if isinstance(error, e.DaemonUnavailable):
            return Outcome(code.DAEMON, self.daemon_unreachable(socket))
        if isinstance(error, e.AccessDenied):
            return Outcome(
                code.DAEMON, t.gettext("pkcardd refused access: your user may not use the cards.")
            )
        if isinstance(error, e.DaemonBusy):
            return Outcome(code.DAEMON, t.gettext("pkcardd is busy: try again."))
        if isinstance(error, e.CallTimeout):
            return Outcome(code.DAEMON, t.gettext("pkcardd did not answer in time."))
        if isinstance(error, e.DaemonInternalError):
            return Outcome(
                code.INTERNAL,
                t.gettext("Internal error in pkcardd (incident %(incident)s).")
                % {"incident": error.incident_id or "?"},
            )
        if isinstance(error, e.DaemonError):
            return Outcome(code.DAEMON, t.gettext("pkcardd refused the request."))
        return Outcome(
            code.INTERNAL,
            t.gettext("Unexpected error (%(kind)s).") % {"kind": type(error).__name__},
        )
