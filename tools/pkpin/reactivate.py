"""``pkpin reactivate``: make the regular PK active again after the backup card was used.

The reactivation password goes through pkcardd to the backend, which checks
it (salted scrypt, limited tries); there is no offline path. The password
is read from the terminal without echo, held as a :class:`Secret` and wiped
after the call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pkcard.client import PkcardClient
from pkcard.errors import BackendRefused, MalformedPin, PkcardError
from pkcard.pin import PinRef
from pkcard.tools.pkpin.commands import Console
from pkcard.tools.pkpin.error_words import row
from pkcard.tools.pkpin.errors import Cancelled
from pkcard.tools.pkpin.messages import ExitCode, Messages, Outcome
from pkcard.tools.pkpin.service import DaemonService
from pkcard.tools.pkpin.terminal import Terminal

COMMAND = "reactivate"


def help_text(words: Messages) -> str:
    return words.tr("make your regular card active again after using the backup card")


def needs_daemon(words: Messages) -> str:
    return words.tr("pkpin reactivate works only through pkcardd (not with --direct or "
                    "--simulated): the backend checks the password.")


REACTIVATE_WORDS = (
    row(BackendRefused, ExitCode.DAEMON,
        lambda w, _, c: w.tr("The card registry refused to reactivate this card.")),
    row(MalformedPin, ExitCode.REFUSED_PIN,
        lambda w, _, c: w.tr("That is not a valid reactivation password.")),
)
"""This command's own words, over the table in error_words.py."""


def describe(words: Messages, error: PkcardError, socket: str) -> Outcome:
    """The words for an error of this command (others as for every command)."""
    return words.describe(
        error, ref=PinRef.REACTIVATION, socket=socket, overrides=REACTIVATE_WORDS
    )


def run_reactivate(
    socket: Path,
    console: Console,
    open_terminal: Callable[[], Terminal],
    reader: str | None,
) -> ExitCode:
    """Ask for the password and reactivate the regular PK in ``reader`` (or the only PK)."""
    words = console.words
    with DaemonService(socket) as service:
        chosen = service.pick_reader(reader).reader.name
    with open_terminal() as terminal:
        try:
            password = terminal.read_secret(words.tr("Reactivation password: "))
        except (KeyboardInterrupt, EOFError):
            raise Cancelled("cancelled at a prompt") from None
    with password, PkcardClient(socket) as client:
        serial = client.reactivate_card(chosen, password)
    console.say(words.tr("Your regular card %(serial)s is active again; the backup card "
                         "can no longer be used.") % {"serial": serial})
    return ExitCode.OK
