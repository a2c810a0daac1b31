"""Every word pkpin says (errors become words through the table in error_words.py).

All text goes through the gettext catalog passed in (see :mod:`pkcard.tools.pkpin.i18n`);
the English msgids are the English output. No text ever holds a secret: the
errors are worded from their type and typed fields (tries left, rule), never
from ``str(error)``.
"""

from __future__ import annotations

import gettext
from collections.abc import Sequence
from datetime import date

from pkcard import errors as e
from pkcard.cardinfo import CardRole, Environment
from pkcard.expiry import ExpiryKind, ExpiryWarning
from pkcard.pin import PIN_FORMATS, PinRef, PinState, PinStatus
from pkcard.pk_driver import Profession
from pkcard.tools.pkpin import error_words, policy_words
from pkcard.tools.pkpin.error_words import ErrorContext, ErrorWords
from pkcard.tools.pkpin.outcome import ExitCode, Outcome

__all__ = ["ExitCode", "Messages", "Outcome"]


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
                "Warning: the signing certificate (KPEP) expires in %(days)d day: fill in the "
                "KPEP application (Vloga za pridobitev KPEP) and hand it in in person at a "
                "ZZZS registration office",
                "Warning: the signing certificate (KPEP) expires in %(days)d days: fill in the "
                "KPEP application (Vloga za pridobitev KPEP) and hand it in in person at a "
                "ZZZS registration office",
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
        return self.tr(
            "Transport PIN blocked: the signing PIN can no longer be activated. "
            "A new professional card (PK) must be ordered."
        )

    def dead(self) -> str:
        return self.tr(
            "PUK blocked: this card can no longer be used. Return it to ZZZS "
            "(Služba za poslovanje s karticami, Miklošičeva cesta 24, 1507 Ljubljana) "
            "and order a new professional card (PK)."
        )

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
        text = texts.get(rule) or policy_words.rule_text(t, rule) or texts[e.PinRule.LENGTH]
        return text % {
            "secret": self.secret_name(ref),
            "min": fmt.min_length,
            "max": fmt.max_length,
        }

    def choice_advice(self) -> str:
        """The seed's advice, printed before a new PIN or signing PIN is asked for."""
        return policy_words.advice(self._t)

    def tpin_notice(self) -> str:
        """Said before the transport PIN is asked for (the seed's lost-envelope rule)."""
        return self.tr(
            "You need the transport PIN (TPIN) from the envelope that came with the card. "
            "If you lost the envelope, a new professional card (PK) must be ordered."
        )

    def activation_reader(self, reader: str) -> str:
        return self.tr(
            "Signature activation needs a Gemalto (Thales) IDBridge CT700, CT710, CT30 or "
            "Gemalto GCR5500-Si reader; %(reader)s is not one. The transport PIN was not used."
        ) % {"reader": reader}

    def activation_offline(self) -> str:
        return self.tr(
            "Signature activation needs a workstation where the on-line system works, and "
            "the backend cannot be reached. The transport PIN was not used: try again when "
            "the workstation is on line."
        )

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

    def duration(self, seconds: int) -> str:
        """A wait such as ``41 s``, ``4 min`` or ``4 min 41 s`` (unit symbols: no plurals)."""
        minutes, rest = divmod(max(0, seconds), 60)
        if not minutes:
            return self.tr("%(s)d s") % {"s": rest}
        if not rest:
            return self.tr("%(min)d min") % {"min": minutes}
        return self.tr("%(min)d min %(s)d s") % {"min": minutes, "s": rest}

    def rate_limited(self, retry_after_s: int) -> str:
        return self.tr(
            "Too many wrong PINs for this card lately: pkcardd accepts the next one in "
            "%(wait)s. Nothing was sent to the card."
        ) % {"wait": self.duration(retry_after_s)}

    def label_rate_limit(self) -> str:
        return self.tr("PIN entry")

    def rate_limit_state(self, retry_after_s: int) -> str:
        return self.tr(
            "paused by pkcardd after too many wrong PINs: possible again in %(wait)s"
        ) % {"wait": self.duration(retry_after_s)}

    def choose_again(self, attempts_left: int) -> str:
        text = self._t.ngettext(
            "Choose again (%(n)d more attempt).",
            "Choose again (%(n)d more attempts).",
            attempts_left,
        )
        return text % {"n": attempts_left}

    def reader_choice_ambiguous(self, wanted: str, matches: tuple[str, ...]) -> str:
        head = self.tr(
            "--reader %(wanted)s matches more than one reader; give more of its name, "
            "or its number from pkpin readers:"
        ) % {"wanted": wanted}
        return "\n".join([head, *(f"  {name}" for name in matches)])

    def waiting(self, reader: str | None) -> str:
        if reader is None:
            return self.tr("Waiting for a professional card (PK) in any reader...")
        return self.tr("Waiting for a professional card (PK) in %(reader)s...") % {
            "reader": reader
        }

    def waiting_live(self, reader: str | None, elapsed_s: int) -> str:
        text = self.tr("%(waiting)s %(elapsed)s (Ctrl-C to stop)")
        return text % {"waiting": self.waiting(reader), "elapsed": self.duration(elapsed_s)}

    def card_found(self, reader: str) -> str:
        return self.tr("Professional card (PK) found in %(reader)s.") % {"reader": reader}

    def wait_timed_out(self, timeout_s: int) -> str:
        return self.tr("No professional card (PK) was inserted within %(wait)s.") % {
            "wait": self.duration(timeout_s)
        }

    def describe(
        self,
        error: e.PkcardError,
        *,
        ref: PinRef = PinRef.PIN,
        new_ref: PinRef | None = None,
        socket: str = "",
        overrides: Sequence[ErrorWords] = (),
    ) -> Outcome:
        """The words and exit code for ``error``, from the table in :mod:`.error_words`.

        ``ref`` is the secret presented (whose tries count), ``new_ref`` the
        one being set (default ``ref``), ``socket`` the daemon's address.
        """
        context = ErrorContext(ref=ref, new_ref=new_ref, socket=socket)
        return error_words.describe(self, error, context, overrides)
