"""Waiting in the main thread for SIGTERM or SIGINT, whichever thread the kernel hands it to.

A process-directed signal may be delivered to any thread, gRPC's C threads
included. Python then runs its handler only when the main thread next executes
bytecode, so a main thread asleep in ``threading.Event.wait()`` can sleep on
after the signal (seen with ``pkcard-backend``: about one SIGTERM in ten was
lost). :class:`StopSignals` makes the C-level handler write the signal number
to a pipe (``signal.set_wakeup_fd``) and the main thread read that pipe, so the
wait ends whichever thread took the signal.

Create it before starting anything that a signal should stop (a signal that
arrives early is kept in the pipe); main thread only.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from types import FrameType, TracebackType

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: the wakeup pipe carries the news."""


class StopSignals:
    """``with StopSignals() as stop: ...; stop.wait()``: returns the signal that arrived."""

    def __init__(self, signals: Iterable[signal.Signals] = DEFAULT_SIGNALS) -> None:
        self._signals = frozenset(int(s) for s in signals)
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in self._signals:
            signal.signal(signum, _ignore)

    def wait(self) -> int:
        """Block until one of the signals arrives (or has arrived); return its number."""
        while True:
            for signum in os.read(self._read, 64):
                if signum in self._signals:
                    return signum

    def fileno(self) -> int:
        """The pipe's read end, for ``select`` beside other descriptors; then :meth:`poll`."""
        return self._read

    def poll(self) -> int | None:
        """After ``select`` found :meth:`fileno` readable: the signal that arrived, or None
        if the pipe held only others (does not block then)."""
        for signum in os.read(self._read, 64):
            if signum in self._signals:
                return signum
        return None

    def close(self) -> None:
        """Stop listening. The signals stay handled (ignored): shutdown is already under way."""
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._read)
        os.close(self._write)

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
