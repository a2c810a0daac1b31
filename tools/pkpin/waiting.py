"""``--wait``: wait for a professional card, showing that pkpin waits, as pcsc_scan does.

On a terminal, one status line is redrawn in place (``\\r`` and erase to the
end of the line) with the time waited so far; a reader whose card changes
gets a line of its own above it. When standard error is not a terminal,
plain lines only: one when the wait starts, one per change, one at the end.
The readers are polled (each poll spends no try and touches no card); no
thread is started. A card that is already there is taken without a word.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pkcard.readers import CardKind, ReaderState
from pkcard.tools.pkpin.choice import find_reader, holding_pk
from pkcard.tools.pkpin.commands import Console, kind_words
from pkcard.tools.pkpin.errors import AmbiguousReader, WaitTimedOut
from pkcard.tools.pkpin.service import PinService

_ERASE_LINE = "\r\x1b[K"  # back to the line's start, erase to its end (ECMA-48 EL)


@dataclass(frozen=True)
class WaitOptions:
    """How long to wait (``timeout_s``; None: until Ctrl-C) and how often to look."""

    timeout_s: int | None = None
    poll_s: float = 0.5


def _ready(
    states: Sequence[ReaderState], wanted: str | None
) -> tuple[str | None, ReaderState | None]:
    """The reader waited for (None: any) and, if it holds a PK now, its state."""
    if wanted is not None:
        state = find_reader(states, wanted)
        return state.reader.name, state if state.card_kind is CardKind.PK else None
    holding = holding_pk(states)
    if len(holding) > 1:
        raise AmbiguousReader(tuple(state.reader.name for state in holding))
    return None, holding[0] if holding else None


class _Display:
    """The waiting line on standard error: live on a terminal, plain lines otherwise."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live = console.err.isatty()
        self._drawn = False  # a live line is on the screen
        self._announced = False  # the plain "waiting" line was printed

    def line(self, text: str) -> None:
        """A line of its own (above the live line, which is redrawn later)."""
        self.clear()
        self._console.note(text)

    def waiting(self, text: str, live_text: str) -> None:
        if self._live:
            self._console.err.write(_ERASE_LINE + live_text)
            self._console.err.flush()
            self._drawn = True
        elif not self._announced:
            self._console.note(text)
            self._announced = True

    def clear(self) -> None:
        if self._drawn:
            self._console.err.write(_ERASE_LINE)
            self._console.err.flush()
            self._drawn = False


def wait_for_card(
    service: PinService,
    console: Console,
    wanted: str | None,
    options: WaitOptions,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReaderState:
    """The reader holding a PK (``wanted``, or the only one) once there is one.

    Raises :class:`WaitTimedOut` after ``options.timeout_s``; the errors of
    :func:`pkcard.tools.pkpin.choice.find_reader` for a ``wanted`` that names no
    reader or several; whatever the service raises (pkcardd or pcscd gone).
    """
    words = console.words
    display = _Display(console)
    start = clock()
    seen: dict[str, CardKind] | None = None
    try:
        while True:
            states = service.readers()
            now = {state.reader.name: state.card_kind for state in states}
            if seen is not None:
                for state in states:
                    if seen.get(state.reader.name) is not state.card_kind:
                        kind = kind_words(words, state.card_kind)
                        display.line(words.reader_line(
                            state.reader.name, kind, state.reader.capabilities.pin_pad))
            target, found = _ready(states, wanted)
            if found is not None:
                if seen is not None:
                    display.line(words.card_found(found.reader.name))
                return found
            seen = now
            elapsed = int(clock() - start)
            if options.timeout_s is not None and elapsed >= options.timeout_s:
                raise WaitTimedOut(options.timeout_s)
            display.waiting(words.waiting(target), words.waiting_live(target, elapsed))
            sleep(options.poll_s)
    finally:
        display.clear()
