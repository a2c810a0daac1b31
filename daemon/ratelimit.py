"""The limit on failed PIN checks per card, across every client of the daemon.

After ``max_failures`` refused secrets (wrong PIN, PUK, SPIN, TPIN or
password; a blocked reference counts too) for one card serial within
``window_s`` seconds, the daemon refuses further PIN operations on that card
with :class:`~pkcard.errors.RateLimited` *before* any secret reaches it, until
the oldest counted failure is older than the window. A success clears the
card's count. The card's own try counters still apply; this limit keeps a
local process from cycling PUK unblocks or cards faster than a person could.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from pkcard.errors import RateLimited

DEFAULT_MAX_FAILURES = 5
DEFAULT_WINDOW_S = 300.0
_MAX_TRACKED_CARDS = 4096  # bounded memory: the oldest card's record goes first


class FailedPinLimiter:
    """Sliding-window counts of failed PIN checks by card serial. Thread-safe."""

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures and window_s must be positive")
        self._max = max_failures
        self._window = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, serial: str) -> int:
        """Whole seconds until ``serial`` may present a secret again; 0 when it may now.

        Read-only: GetPinStatus reports it so clients can say so before asking for a PIN.
        """
        with self._lock:
            times = self._current(serial)
            if len(times) < self._max:
                return 0
            return max(1, math.ceil(times[0] + self._window - self._clock()))

    def check(self, serial: str) -> None:
        """Raise :class:`RateLimited` if ``serial`` used up its failures in the window."""
        wait = self.retry_after(serial)
        if wait:
            raise RateLimited(wait)

    def record_failure(self, serial: str) -> None:
        with self._lock:
            times = self._current(serial)
            times.append(self._clock())
            self._failures[serial] = times
            if len(self._failures) > _MAX_TRACKED_CARDS:
                del self._failures[next(iter(self._failures))]

    def record_success(self, serial: str) -> None:
        with self._lock:
            self._failures.pop(serial, None)

    def _current(self, serial: str) -> deque[float]:
        """The failures of ``serial`` still in the window (older ones dropped). Under lock."""
        times = self._failures.pop(serial, deque())
        horizon = self._clock() - self._window
        while times and times[0] <= horizon:
            times.popleft()
        if times:
            self._failures[serial] = times  # re-inserted: most recently used last
        return times
