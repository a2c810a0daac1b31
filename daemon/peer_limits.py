"""Per-peer limits of the Unix-socket front: connections per uid, and throttled log lines.

:class:`ConnectionLimits` decides at ``accept`` time, on the caller's
SO_PEERCRED uid, whether a connection may stay open: at most
``per_uid`` connections per uid and ``total`` in all. A connection over a
limit is closed at once, before it costs a connection to the gRPC server.
:class:`ThrottledLog` keeps an attacker (or an ordinary ``EMFILE`` storm)
from flooding the log: the first occurrence of a kind of trouble is logged,
the rest within the interval are only counted, and the count is logged with
the next occurrence after the interval (or by :meth:`ThrottledLog.flush`).

Both are used only from the gateway's event-loop thread; they take no lock.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

from pkcard.daemon.config import Limits

LOG_INTERVAL_S = 10.0
FDS_PER_CONNECTION = 3  # the caller's socket, our socket to gRPC, gRPC's end of it
FD_RESERVE = 256  # readers, pcscd, the audit log, the backend, gRPC's own


@dataclass
class _Window:
    since: float
    suppressed: int = 0


class ThrottledLog:
    """Log a kind of event at most once per ``interval_s``, with the count of the rest."""

    def __init__(self, logger: logging.Logger, interval_s: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval = interval_s
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def note(self, key: str, message: str) -> None:
        """One occurrence of ``key``; ``message`` is logged if the interval allows."""
        now = self._clock()
        window = self._windows.get(key)
        if window is not None and now - window.since < self._interval:
            window.suppressed += 1
            return
        if window is not None and window.suppressed:
            self._logger.warning("%s (and %d more times in the last %.0f s)",
                                 message, window.suppressed, now - window.since)
        else:
            self._logger.warning("%s", message)
        self._windows[key] = _Window(since=now)

    def flush(self) -> None:
        """Log the counts still held back (at shutdown)."""
        now = self._clock()
        for key, window in self._windows.items():
            if window.suppressed:
                self._logger.warning("%s: %d more times in the last %.0f s", key,
                                     window.suppressed, now - window.since)
        self._windows.clear()


class ConnectionLimits:
    """Open connections per uid and in all; :meth:`admit` and :meth:`release` pair up."""

    def __init__(self, per_uid: int, total: int) -> None:
        self.per_uid = per_uid
        self.total = total
        self._open: dict[int, int] = {}
        self._count = 0

    def admit(self, uid: int) -> bool:
        """Count a new connection of ``uid``; False (nothing counted) if over a limit."""
        held = self._open.get(uid, 0)
        if held >= self.per_uid or self._count >= self.total:
            return False
        self._open[uid] = held + 1
        self._count += 1
        return True

    def release(self, uid: int) -> None:
        held = self._open.get(uid, 0)
        if held <= 1:
            self._open.pop(uid, None)
        else:
            self._open[uid] = held - 1
        self._count = max(0, self._count - 1)

    def held(self, uid: int) -> int:
        return self._open.get(uid, 0)


def raise_fd_limit(connections: int, direct: int = 0) -> int:
    """Raise the soft RLIMIT_NOFILE (up to the hard one) so the connections fit; the new soft.

    ``connections`` through the gateway, ``direct`` ones on user sockets (one
    descriptor each).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections * FDS_PER_CONNECTION + direct + FD_RESERVE
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    return soft


def connection_limits(limits: Limits) -> ConnectionLimits:
    """The gateway's limits from ``[limits]``; raises the fd limit so they fit."""
    raise_fd_limit(limits.max_connections)
    return ConnectionLimits(per_uid=limits.max_connections_per_uid, total=limits.max_connections)
