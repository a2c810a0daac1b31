"""``pkpin reactivate``: make the regular PK active again after the backup card was used.

The reactivation password goes through pkcardd to the backend, which checks
it (salted scrypt, limited tries); there is no offline path. A try counts
only with the regular card's proof of possession, so pkcardd has the card's
PIN verified (typed here, or on the reader's PIN pad with ``--pinpad``) and
lets the card sign a fresh backend challenge. The secrets are read from the
terminal without echo, held as :class:`Secret` and wiped after the call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pkcard.client import PkcardClient
from pkcard.errors import BackendRefused, MalformedPin, PkcardError
from pkcard.pin import PadEntry, PinEntry, PinRef
from pkcard.tools.pkpin.commands import Console
from pkcard.tools.pkpin.error_words import row
from pkcard.tools.pkpin.errors import Cancelled, NoPinPad
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
    *,
    use_pin_pad: bool = False,
    confirm_last_try: bool = False,
) -> ExitCode:
    """Ask for the password and the card's PIN (unless ``use_pin_pad``) and reactivate the
    regular PK in ``reader`` (or the only PK): the card proves to the backend that it is
    in the reader, which needs its PIN verified."""
    words = console.words
    with DaemonService(socket) as service:
        state = service.pick_reader(reader)
    chosen = state.reader.name
    has_pad = state.reader.capabilities.pin_pad is True
    if use_pin_pad and not has_pad:
        raise NoPinPad("the reader has no PIN pad")
    if has_pad and not use_pin_pad:
        console.note(words.pin_pad_notice())
    with open_terminal() as terminal:
        try:
            password = terminal.read_secret(words.tr("Reactivation password: "))
            pin: PinEntry = PadEntry() if use_pin_pad else terminal.read_secret(
                words.prompt_current(PinRef.PIN))
        except (KeyboardInterrupt, EOFError):
            raise Cancelled("cancelled at a prompt") from None
    with password, pin, PkcardClient(socket) as client:
        try:  # the card's PIN first, so its errors are worded as PIN errors
            client.verify_pin(chosen, PinRef.PIN, pin, confirm_last_try=confirm_last_try)
        except PkcardError as error:
            outcome = words.describe(error, ref=PinRef.PIN, socket=str(socket))
            console.note(outcome.text)
            return outcome.exit_code
        serial = client.reactivate_card(chosen, password, pin=pin,
                                        confirm_last_try=confirm_last_try)
    console.say(words.tr("Your regular card %(serial)s is active again; the backup card "
                         "can no longer be used.") % {"serial": serial})
    return ExitCode.OK
