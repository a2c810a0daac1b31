"""The daemon's one policy for presenting a secret to a card (issue #13, finding 1).

Every RPC that presents a PIN, PUK, TPIN, SPIN or password (CardService's PIN
calls, OpenSession and ReactivateCard, SignDocument) goes through a
:class:`PinPresenter`, so these rules live here and nowhere else:

* **Pad or host.** A reader with a PIN pad asks the holder for the secret; a
  secret sent from the host for such a reader is refused
  (:class:`~pkcard.errors.HostPinEntryRefused`) unless ``allow_host_pin_entry``.
  A request without a secret is typed on the pad: each secret is a
  :data:`pkcard.pin.PinEntry`, a :class:`~pkcard.secret.Secret` or a
  :class:`~pkcard.pin.PadEntry` (:func:`pkcard.pin.entry_from_field` turns
  the wire's empty field into the latter), never an empty string standing
  for "the pad".
* **Events.** While the pad asks, WatchEvents clients see PIN_ENTRY_STARTED
  and then PIN_ENTRY_FINISHED for the reader.
* **The failed-PIN limit.** A card over :class:`~pkcard.daemon.ratelimit.FailedPinLimiter`'s
  limit is refused (:class:`~pkcard.errors.RateLimited`) before any secret
  reaches it; a wrong or blocked secret counts, a success clears the count.
* **Reuse of a verified PIN** (:mod:`pkcard.daemon.pin_credits`): a PIN that
  pkcardd verified for a caller is credited to that caller and card, and only
  that caller may rely on it for a while.

The caller decides *when* to present (inside its card job, after it read the
card's serial) and *what* to run; this module decides *how*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc

from pkcard.daemon.pin_credits import PinCredits
from pkcard.daemon.ratelimit import FailedPinLimiter
from pkcard.errors import HostPinEntryRefused, PinBlocked, PinNotVerified, WrongPin
from pkcard.pin import PadEntry, PinEntry
from pkcard.readers import ReaderEvent, ReaderEventKind
from pkcard.secret import Secret

T = TypeVar("T")

Announce = Callable[[ReaderEvent], None]


def from_host(entries: Sequence[PinEntry]) -> bool:
    """Whether the request sent any secret from the host (else: everything on the pad)."""
    return any(isinstance(entry, Secret) for entry in entries)


@dataclass(frozen=True)
class PinEntryPolicy:
    """The daemon-wide settings of secret entry; one instance serves every service."""

    allow_host_pin_entry: bool = False
    limiter: FailedPinLimiter | None = None  # None: no daemon-side limit (in-process tests)
    credits: PinCredits | None = None  # None: any verified PIN may be relied on
    announce: Announce | None = None  # the event hub's publish

    def presenter(self, reader: str,
                  context: grpc.ServicerContext | None = None) -> PinPresenter:
        """The presenter of one call on ``reader``; ``context`` names the caller for credits."""
        caller = None
        if context is not None and self.credits is not None:
            caller = self.credits.caller_of(context)
        return PinPresenter(self, reader, caller)


class PinPresenter:
    """Presents the secrets of one call on one reader, under :class:`PinEntryPolicy`."""

    def __init__(self, policy: PinEntryPolicy, reader: str, caller: str | None) -> None:
        self._policy = policy
        self._reader = reader
        self._caller = caller

    # --- pad or host --------------------------------------------------------------

    def on_pad(self, secrets: Sequence[PinEntry], pin_pad: bool, what: str = "PIN") -> bool:
        """Whether the pad takes ``secrets``; :class:`HostPinEntryRefused` by policy.

        Secrets from the host on a PIN-pad reader are refused unless
        ``allow_host_pin_entry``; a request without secrets on a reader without
        a pad goes to the host path, where the card application refuses the
        empty secret (:class:`~pkcard.errors.MalformedPin`).
        """
        if not from_host(secrets):
            return pin_pad
        if pin_pad and not self._policy.allow_host_pin_entry:
            raise HostPinEntryRefused(
                f"reader {self._reader!r} has a PIN pad: type the {what} on the reader"
            )
        return False

    def _announce(self, kind: ReaderEventKind) -> None:
        if self._policy.announce is not None:
            self._policy.announce(ReaderEvent(kind, self._reader))

    def _typed(self, operation: Callable[[], T]) -> T:
        self._announce(ReaderEventKind.PIN_ENTRY_STARTED)
        try:
            return operation()
        finally:
            self._announce(ReaderEventKind.PIN_ENTRY_FINISHED)

    # --- the limit ----------------------------------------------------------------

    def check(self, serial: str) -> None:
        """:class:`~pkcard.errors.RateLimited` if card ``serial`` is over the failed-PIN limit."""
        if self._policy.limiter is not None:
            self._policy.limiter.check(serial)

    def _limited(self, serial: str, operation: Callable[[], T]) -> T:
        limiter = self._policy.limiter
        if limiter is None:
            return operation()
        limiter.check(serial)  # before any secret reaches the card
        try:
            result = operation()
        except (WrongPin, PinBlocked):
            limiter.record_failure(serial)
            raise
        limiter.record_success(serial)
        return result

    # --- presenting ---------------------------------------------------------------

    def present(
        self, serial: str, secrets: Sequence[PinEntry], pin_pad: bool, *,
        host: Callable[[], T], pad: Callable[[], T], what: str = "PIN",
    ) -> T:
        """Run ``pad`` (announced) or ``host`` for card ``serial``, under the limit."""
        typed = self.on_pad(secrets, pin_pad, what)
        return self._limited(serial, (lambda: self._typed(pad)) if typed else host)

    def credit(self, serial: str) -> None:
        """The caller just had card ``serial``'s PIN verified by pkcardd."""
        credits = self._policy.credits
        if credits is not None and self._caller is not None:
            credits.record(serial, self._caller, self._reader)

    def may_reuse(self, serial: str) -> bool:
        """Whether the caller may rely on card ``serial``'s verified PIN now."""
        credits = self._policy.credits
        return credits is None or self._caller is None or credits.fresh(serial, self._caller)

    def ensure_verified(
        self, serial: str, pin: PinEntry, pin_pad: bool, *, verified: bool,
        host: Callable[[Secret], object], pad: Callable[[], object],
    ) -> bool:
        """Get the PIN verified for a session; True if verified now, False if relied on.

        ``pin`` is the client's PIN, or :class:`~pkcard.pin.PadEntry` (rely on an
        earlier verification, or the pad); ``verified`` is the card's state now.
        Without a PIN, a verified card counts only under :meth:`may_reuse`, and a
        reader without a pad refuses (:class:`~pkcard.errors.PinNotVerified`).
        """
        self.check(serial)  # a card over the limit is refused even when nothing is typed
        if isinstance(pin, PadEntry):
            if verified and self.may_reuse(serial):
                return False
            if not pin_pad:
                raise PinNotVerified(
                    "the PK's PIN is not verified: send the PIN" if not verified else
                    "send the PIN: this caller has not verified this card's PIN within "
                    "limits.pin_reuse_s (an earlier verification by another caller does not count)"
                )
            self.present(serial, (pin,), pin_pad, host=pad, pad=pad)
        else:
            secret = pin
            self.present(serial, (secret,), pin_pad, host=lambda: host(secret), pad=pad)
        self.credit(serial)
        return True
