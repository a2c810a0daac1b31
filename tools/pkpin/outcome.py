"""pkpin's exit codes, and what pkpin says about one failure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType


class ExitCode(IntEnum):
    """pkpin's exit status. Stable: scripts depend on these numbers."""

    OK = 0
    USAGE = 1  # bad arguments, no terminal, or more than one card or reader to choose from
    WRONG_PIN = 2  # the card refused the PIN, PUK, signing or transport PIN
    BLOCKED = 3  # the secret is blocked, used up or not activated yet
    REFUSED_PIN = 4  # weak or malformed new PIN, or the two entries differ: nothing sent
    CARD = 5  # no card, card removed or reset, reader or PC/SC problem, unsupported
    DAEMON = 6  # pkcardd unreachable, busy, or it refused the caller
    LAST_TRY_REFUSED = 7  # one try left and it was not confirmed: nothing sent
    CANCELLED = 8  # interrupted (Ctrl-C or end of input) before anything was sent
    INTERNAL = 9  # an unexpected failure
    RATE_LIMITED = 10  # pkcardd's failed-PIN limit holds for this card: nothing asked or sent
    CLOSED_PIPE = 141  # standard output was closed early (128 + SIGPIPE, as a shell reports)


@dataclass(frozen=True)
class Outcome:
    """What pkpin says about a failure, and how it exits.

    ``reason`` is the stable machine name (the daemon's ErrorInfo reason where
    there is one) and ``details`` the error's typed fields; both go into the
    ``--json`` error object, never into the text.
    """

    exit_code: ExitCode
    text: str
    reason: str = "INTERNAL"
    details: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
