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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc


class PinCredits:
    """Recent PIN verifications per (card serial, caller); thread-safe."""

    def __init__(self, reuse_s: float, caller_of: Callable[[grpc.ServicerContext], str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reuse_s = reuse_s
        self.caller_of = caller_of  # a call's caller key (AccessControl.identify(...).key)
        self._clock = clock
        self._lock = threading.Lock()
        self._at: dict[tuple[str, str], float] = {}

    def record(self, serial: str, caller: str) -> None:
        """``caller`` just had the PIN of card ``serial`` verified by pkcardd."""
        now = self._clock()
        with self._lock:
            self._at = {k: t for k, t in self._at.items() if now - t < self.reuse_s}
            self._at[(serial, caller)] = now

    def credit(self, context: grpc.ServicerContext, serial: str) -> None:
        """The caller of ``context`` just had the PIN of card ``serial`` verified."""
        self.record(serial, self.caller_of(context))

    def fresh(self, serial: str, caller: str) -> bool:
        """Whether ``caller`` may rely on card ``serial``'s verified PIN now."""
        with self._lock:
            at = self._at.get((serial, caller))
        return at is not None and self._clock() - at < self.reuse_s
