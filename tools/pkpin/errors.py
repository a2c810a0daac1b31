"""pkpin's own failures: subclasses of the pkcard error tree, worded in error_words.py."""

from __future__ import annotations

from pkcard.errors import PkcardError


class NoPkCard(PkcardError):
    """No reader holds a professional card."""


class AmbiguousReader(PkcardError):
    """More than one reader holds a professional card and ``--reader`` was not given."""

    def __init__(self, readers: tuple[str, ...]) -> None:
        self.readers = readers
        super().__init__(f"{len(readers)} readers hold a professional card")


class NoTerminal(PkcardError):
    """There is no controlling terminal to read a secret from."""


class Cancelled(PkcardError):
    """The person interrupted a prompt (Ctrl-C or end of input): nothing was sent."""


class NoPinPad(PkcardError):
    """``--pinpad`` was given for a reader without a PIN pad."""


class ReaderChoiceAmbiguous(PkcardError):
    """``--reader`` matched more than one reader's name; ``matches`` lists them."""

    def __init__(self, wanted: str, matches: tuple[str, ...]) -> None:
        self.wanted = wanted
        self.matches = matches
        super().__init__(f"--reader matches {len(matches)} readers")


class WaitTimedOut(PkcardError):
    """``--wait`` saw no professional card within ``timeout_s`` seconds."""

    def __init__(self, timeout_s: int) -> None:
        self.timeout_s = timeout_s
        super().__init__(f"no professional card within {timeout_s} s")
