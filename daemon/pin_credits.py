"""When may a session rely on an earlier PIN verification? (issue #12, break 7)

A PK stays "PIN verified" until it is reset or pulled, whoever verified it.
pkcardd does not let that state serve everyone: a successful PIN
verification that pkcardd itself carried out (VerifyPin, ChangePin or
UnblockPin of the PIN, or an OpenSession that presented the PIN or had it
typed on the pad) is credited to the caller that asked for it and to that
card. An OpenSession without a PIN relies on the card's verified state only
if the same caller holds a credit for the same card that is at most
``limits.pin_reuse_s`` old (default 300 s); otherwise the PIN must be sent
again (or typed on the PIN pad again). Relying on a credit does not renew it.

A credit is void once the card loses its verified state under pkcardd's eyes:
the reader's worker found it reset (by another application, or a power loss)
or gone (pulled, pcscd restarted). :meth:`PinCredits.on_card_lost` drops every
credit earned through that reader, so a verification made later by someone
else (the card is verified again, but not by this caller) is never relied on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc

from pkcard.transport import CardContinuity


class PinCredits:
    """Recent PIN verifications per (card serial, caller); thread-safe."""

    def __init__(self, reuse_s: float, caller_of: Callable[[grpc.ServicerContext], str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reuse_s = reuse_s
        self.caller_of = caller_of  # a call's caller key (AccessControl.identify(...).key)
        self._clock = clock
        self._lock = threading.Lock()
        self._at: dict[tuple[str, str], tuple[float, str]] = {}  # -> (when, reader)

    def record(self, serial: str, caller: str, reader: str = "") -> None:
        """``caller`` just had the PIN of card ``serial`` (in ``reader``) verified by pkcardd."""
        now = self._clock()
        with self._lock:
            self._at = {k: v for k, v in self._at.items() if now - v[0] < self.reuse_s}
            self._at[(serial, caller)] = (now, reader)

    def credit(self, context: grpc.ServicerContext, serial: str, reader: str = "") -> None:
        """The caller of ``context`` just had the PIN of card ``serial`` verified."""
        self.record(serial, self.caller_of(context), reader)

    def fresh(self, serial: str, caller: str) -> bool:
        """Whether ``caller`` may rely on card ``serial``'s verified PIN now."""
        with self._lock:
            entry = self._at.get((serial, caller))
        return entry is not None and self._clock() - entry[0] < self.reuse_s

    def forget_reader(self, reader: str) -> None:
        """Drop the credits earned through ``reader`` (and those whose reader is unknown)."""
        with self._lock:
            self._at = {k: v for k, v in self._at.items() if v[1] not in (reader, "")}

    def on_card_lost(self, reader: str, continuity: CardContinuity) -> None:
        """The reader workers' listener: the card in ``reader`` lost its verified state."""
        del continuity  # RESET or GONE: either way the verification is gone
        self.forget_reader(reader)
