"""``pkpin revoke-signature``, ``pkpin report-lost`` and ``pkpin use-backup``: the holder's
calls to the card registry (the backend), through pkcardd only.

Each names what it does and asks before doing it. The reactivation password
(and, for ``use-backup``, the backup card's PIN) is read from the terminal
without echo, held as :class:`Secret` and wiped after the call.
``report-lost`` ends with what the seed says the holder does next: apply for
a new card, report a lost card within eight days, and ZZZS's contact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pkcard.cardinfo import CardRole
from pkcard.client import PkcardClient
from pkcard.errors import BackendRefused, MalformedPin, PkcardError
from pkcard.holder import BackupSwitchReason, LossReason
from pkcard.pin import PadEntry, PinEntry, PinRef
from pkcard.tools.pkpin.commands import Console
from pkcard.tools.pkpin.error_words import row
from pkcard.tools.pkpin.errors import Cancelled, NoPinPad
from pkcard.tools.pkpin.holder_words import HolderWords
from pkcard.tools.pkpin.messages import ExitCode, Messages, Outcome
from pkcard.tools.pkpin.service import DaemonService
from pkcard.tools.pkpin.terminal import Terminal

REVOKE_SIGNATURE = "revoke-signature"
REPORT_LOST = "report-lost"
USE_BACKUP = "use-backup"
COMMANDS = (REVOKE_SIGNATURE, REPORT_LOST, USE_BACKUP)
ANSWER_ATTEMPTS = 3

LOSS_CHOICES = {"lost": LossReason.LOST, "stolen": LossReason.STOLEN,
                "misused": LossReason.MISUSED}
SWITCH_CHOICES = {"fault": BackupSwitchReason.FAULT, "loss": BackupSwitchReason.LOSS,
                  "block": BackupSwitchReason.BLOCK}


def help_texts(words: Messages) -> dict[str, str]:
    return {
        REVOKE_SIGNATURE: words.tr("revoke the card's qualified signing certificate (KPEP) "
                                   "with the reactivation password"),
        REPORT_LOST: words.tr("report a card lost, stolen or misused: it is revoked for good"),
        USE_BACKUP: words.tr("switch to the backup card: the regular card is deactivated"),
    }


def needs_daemon(words: Messages) -> str:
    return words.tr("This command works only through pkcardd (not with --direct or "
                    "--simulated): the card registry does it.")


HOLDER_WORDS = (
    row(BackendRefused, ExitCode.DAEMON,
        lambda w, _, c: w.tr("The card registry refused the request.")),
    row(MalformedPin, ExitCode.REFUSED_PIN,
        lambda w, _, c: w.tr("That is not a valid reactivation password.")),
)
"""These commands' own words, over the table in error_words.py."""


def describe(words: Messages, error: PkcardError, socket: str, command: str) -> Outcome:
    """The words for an error of these commands (a wrong secret is the reactivation password,
    except for use-backup, where it is the backup card's PIN)."""
    ref = PinRef.PIN if command == USE_BACKUP else PinRef.REACTIVATION
    return words.describe(error, ref=ref, socket=socket, overrides=HOLDER_WORDS)


@dataclass(frozen=True)
class HolderOptions:
    socket: Path
    reader: str | None
    serial: str | None = None
    reason: str | None = None
    use_pin_pad: bool = False
    confirm_last_try: bool = False


def _choose(terminal: Terminal, console: Console, question: str, choices: tuple[object, ...],
            again: str) -> object:
    """Ask ``question`` until the answer is 1..len(choices); the chosen value."""
    for _ in range(ANSWER_ATTEMPTS):
        answer = terminal.ask(question).strip()
        if answer.isdigit() and 1 <= int(answer) <= len(choices):
            return choices[int(answer) - 1]
        console.note(again)
    raise Cancelled("no valid answer")


def _card_serial(options: HolderOptions) -> tuple[str, str | None]:
    """(serial, reader): the ``--serial`` given, or the PK in the reader."""
    if options.serial:
        return options.serial.strip().upper(), None
    with DaemonService(options.socket) as service:
        state = service.pick_reader(options.reader)
        return service.card(state.reader.name).card.card_serial, state.reader.name


def run_revoke_signature(options: HolderOptions, console: Console,
                         open_terminal: Callable[[], Terminal]) -> ExitCode:
    words = HolderWords(console.words)
    serial, reader = _card_serial(options)
    console.say(words.revoke_warning(serial))
    with open_terminal() as terminal:
        try:
            if not console.words.is_yes(terminal.ask(words.revoke_question())):
                console.say(words.not_revoked())
                return ExitCode.CANCELLED
            password = terminal.read_secret(console.words.tr("Reactivation password: "))
        except (KeyboardInterrupt, EOFError):
            raise Cancelled("cancelled at a prompt") from None
    with password, PkcardClient(options.socket) as client:
        if reader is not None:
            done = client.revoke_signature(password, reader=reader)
        else:
            done = client.revoke_signature(password, card_serial=serial)
    console.say(words.revoked(done))
    return ExitCode.OK


def run_report_lost(options: HolderOptions, console: Console,
                    open_terminal: Callable[[], Terminal]) -> ExitCode:
    words = HolderWords(console.words)
    serial, reader = _card_serial(options)
    with open_terminal() as terminal:
        try:
            if options.reason is not None:
                reason = LOSS_CHOICES[options.reason]
            else:
                chosen = _choose(terminal, console, words.loss_question(serial),
                                 tuple(LOSS_CHOICES.values()), words.answer_one_two_three())
                assert isinstance(chosen, LossReason)
                reason = chosen
            console.say(words.loss_warning(serial))
            if not console.words.is_yes(terminal.ask(words.loss_confirm())):
                console.say(words.nothing_reported())
                return ExitCode.CANCELLED
            password = terminal.read_secret(console.words.tr("Reactivation password: "))
        except (KeyboardInterrupt, EOFError):
            raise Cancelled("cancelled at a prompt") from None
    with password, PkcardClient(options.socket) as client:
        if reader is not None:
            done = client.report_card_lost(reason, password, reader=reader)
        else:
            done = client.report_card_lost(reason, password, card_serial=serial)
    console.say(words.reported(done, reason))
    for line in words.duties():
        console.say(line)
    return ExitCode.OK


def run_use_backup(options: HolderOptions, console: Console,
                   open_terminal: Callable[[], Terminal]) -> ExitCode:
    words = HolderWords(console.words)
    with DaemonService(options.socket) as service:
        state = service.pick_reader(options.reader)
        card = service.card(state.reader.name).card
    serial, reader = card.card_serial, state.reader.name
    if card.role is not CardRole.BACKUP:
        console.note(words.not_a_backup(serial))
        return ExitCode.CARD
    has_pad = state.reader.capabilities.pin_pad is True
    if options.use_pin_pad and not has_pad:
        raise NoPinPad("the reader has no PIN pad")
    console.say(words.switch_warning(serial))
    with open_terminal() as terminal:
        try:
            if options.reason is not None:
                reason = SWITCH_CHOICES[options.reason]
            else:
                chosen = _choose(terminal, console, words.switch_question(),
                                 tuple(SWITCH_CHOICES.values()), words.answer_one_two_three())
                assert isinstance(chosen, BackupSwitchReason)
                reason = chosen
            if not console.words.is_yes(terminal.ask(words.switch_confirm())):
                console.say(words.not_switched())
                return ExitCode.CANCELLED
            if has_pad and not options.use_pin_pad:
                console.note(console.words.pin_pad_notice())
            pin: PinEntry = PadEntry() if options.use_pin_pad else terminal.read_secret(
                console.words.prompt_current(PinRef.PIN))
        except (KeyboardInterrupt, EOFError):
            raise Cancelled("cancelled at a prompt") from None
    with pin, PkcardClient(options.socket) as client:
        client.activate_backup(reader, reason, pin=pin,
                               confirm_last_try=options.confirm_last_try)
    console.say(words.switched(serial))
    return ExitCode.OK
