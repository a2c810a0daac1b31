"""pkpin's command line: arguments, the path to the card, and exit codes.

``pkpin [--socket PATH | --direct | --simulated] COMMAND``; see docs/pkpin.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from pkcard import __version__
from pkcard.client import DEFAULT_SOCKET
from pkcard.errors import PkcardError
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.pin import PinRef
from pkcard.simcard.card import load_card
from pkcard.simcard.inprocess import PINPAD_READER, SimulatedReaderSystem
from pkcard.simcard.profile import profile_names
from pkcard.tools.pkpin import reactivate
from pkcard.tools.pkpin.commands import (
    PLANS,
    Console,
    PinCommand,
    PinOptions,
    run_pin_command,
    run_readers,
    run_status,
)
from pkcard.tools.pkpin.i18n import language_from_environment, translations
from pkcard.tools.pkpin.messages import ExitCode, Messages
from pkcard.tools.pkpin.service import DaemonService, DirectService, PinService
from pkcard.tools.pkpin.terminal import Terminal

SOCKET_VARIABLE = "PKCARD_SOCKET"
SIMULATED_PROFILE = "pk-regular"

_PIN_COMMANDS = {
    "change-pin": PinCommand.CHANGE_PIN,
    "change-spin": PinCommand.CHANGE_SPIN,
    "unblock": PinCommand.UNBLOCK,
    "activate-signature": PinCommand.ACTIVATE_SIGNATURE,
}


class _Parser(argparse.ArgumentParser):
    """argparse that exits with :attr:`ExitCode.USAGE` on bad arguments."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: {message}\n")


def exit_code_table(words: Messages) -> str:
    t = words
    rows = [
        (ExitCode.OK, t.tr("success")),
        (ExitCode.USAGE, t.tr("bad usage, no terminal, or several cards to choose from")),
        (ExitCode.WRONG_PIN, t.tr("wrong PIN, PUK, signing or transport PIN")),
        (ExitCode.BLOCKED, t.tr("the secret is blocked, used up or not activated")),
        (ExitCode.REFUSED_PIN, t.tr("new PIN refused (weak, malformed, entries differ)")),
        (ExitCode.CARD, t.tr("card or reader problem")),
        (ExitCode.DAEMON, t.tr("pkcardd unreachable or refused")),
        (ExitCode.LAST_TRY_REFUSED, t.tr("last try not confirmed: nothing sent")),
        (ExitCode.CANCELLED, t.tr("cancelled")),
        (ExitCode.INTERNAL, t.tr("unexpected error")),
    ]
    lines = [t.tr("exit codes:")]
    lines += [f"  {int(code)}  {text}" for code, text in rows]
    return "\n".join(lines)


def build_parser(words: Messages) -> argparse.ArgumentParser:
    t = words
    parser = _Parser(
        prog="pkpin",
        description=t.tr("Manage the PINs of your health professional card (PK)."),
        epilog=exit_code_table(words),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    path = parser.add_mutually_exclusive_group()
    path.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help=t.tr("pkcardd's socket (default: $PKCARD_SOCKET or %(default)s)")
        % {"default": DEFAULT_SOCKET},
    )
    path.add_argument(
        "--direct", action="store_true", help=t.tr("talk to the reader through PC/SC, not pkcardd")
    )
    path.add_argument(
        "--simulated",
        action="store_true",
        help=t.tr("talk to a simulated card in this process (demonstrations)"),
    )
    parser.add_argument(
        "--profile",
        default=SIMULATED_PROFILE,
        choices=profile_names(),
        metavar="NAME",
        help=t.tr("the simulated card's profile (with --simulated)"),
    )
    parser.add_argument(
        "--reader", metavar="NAME", help=t.tr("the reader to use (default: the one with a PK)")
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    readers = commands.add_parser("readers", help=t.tr("list the card readers"))
    readers.add_argument("--json", action="store_true", help=t.tr("machine-readable output"))
    status = commands.add_parser("status", help=t.tr("show the card and its PINs"))
    status.add_argument("--json", action="store_true", help=t.tr("machine-readable output"))
    helps = {
        PinCommand.CHANGE_PIN: t.tr("change the PIN"),
        PinCommand.CHANGE_SPIN: t.tr("change the signing PIN"),
        PinCommand.UNBLOCK: t.tr("set a new PIN with the PUK"),
        PinCommand.ACTIVATE_SIGNATURE: t.tr("set the first signing PIN with the transport PIN"),
    }
    for name, command in _PIN_COMMANDS.items():
        sub = commands.add_parser(name, help=helps[command])
        sub.add_argument(
            "--confirm-last-try",
            action="store_true",
            help=t.tr("do not ask before spending the last try"),
        )
        sub.add_argument(
            "--pinpad",
            action="store_true",
            help=t.tr("type the PINs on the reader's PIN pad, not on the computer"),
        )
    again = commands.add_parser(reactivate.COMMAND, help=reactivate.help_text(t))
    again.add_argument(
        "--confirm-last-try",
        action="store_true",
        help=t.tr("do not ask before spending the last try"),
    )
    again.add_argument(
        "--pinpad",
        action="store_true",
        help=t.tr("type the PINs on the reader's PIN pad, not on the computer"),
    )
    return parser


def _socket(args: argparse.Namespace, environ: Mapping[str, str]) -> Path:
    return Path(args.socket or environ.get(SOCKET_VARIABLE) or DEFAULT_SOCKET)


def _service(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[PinService, str]:
    """The path to the card the arguments ask for, and the daemon socket (for messages)."""
    if args.direct:
        return DirectService(PcscReaderSystem()), ""
    if args.simulated:
        system = SimulatedReaderSystem()
        system.insert(PINPAD_READER.name, load_card(args.profile))
        return DirectService(system), ""
    socket = _socket(args, environ)
    return DaemonService(socket), str(socket)


def run(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    open_terminal: Callable[[], Terminal] = Terminal.open,
) -> ExitCode:
    """pkpin with explicit inputs and outputs (for embedding and tests)."""
    words = Messages(translations(language_from_environment(environ)))
    try:
        args = build_parser(words).parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed
        return ExitCode.OK if stop.code in (0, None) else ExitCode.USAGE
    console = Console(out, err, words)
    command = _PIN_COMMANDS.get(args.command)
    plan = PLANS[command] if command is not None else None
    socket = ""
    if args.command == reactivate.COMMAND:
        return _reactivate(args, environ, console, open_terminal)
    try:
        service, socket = _service(args, environ)
        with service:
            if command is not None:
                options = PinOptions(args.reader, args.confirm_last_try, args.pinpad)
                return run_pin_command(service, console, open_terminal, command, options)
            if args.command == "readers":
                return run_readers(service, console, as_json=args.json)
            return run_status(service, console, reader=args.reader, as_json=args.json)
    except PkcardError as error:
        outcome = words.describe(
            error,
            ref=plan.presented if plan else PinRef.PIN,
            new_ref=plan.target if plan else None,
            socket=socket,
        )
        console.note(outcome.text)
        return outcome.exit_code
    except KeyboardInterrupt:
        console.note("")
        console.note(words.interrupted())
        return ExitCode.CANCELLED


def _reactivate(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    console: Console,
    open_terminal: Callable[[], Terminal],
) -> ExitCode:
    words = console.words
    if args.direct or args.simulated:
        console.note(reactivate.needs_daemon(words))
        return ExitCode.USAGE
    socket = _socket(args, environ)
    try:
        return reactivate.run_reactivate(socket, console, open_terminal, args.reader,
                                         use_pin_pad=args.pinpad,
                                         confirm_last_try=args.confirm_last_try)
    except PkcardError as error:
        outcome = reactivate.describe(words, error, str(socket))
        console.note(outcome.text)
        return outcome.exit_code
    except KeyboardInterrupt:
        console.note("")
        console.note(words.interrupted())
        return ExitCode.CANCELLED


def main(argv: Sequence[str] | None = None) -> int:
    """The ``pkpin`` console script."""
    return int(
        run(
            sys.argv[1:] if argv is None else argv,
            environ=os.environ,
            out=sys.stdout,
            err=sys.stderr,
        )
    )
