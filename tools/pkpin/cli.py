"""pkpin's command line: arguments, the path to the card, and exit codes.

``pkpin [--socket PATH | --direct | --simulated] COMMAND``; see docs/pkpin.md.

Talking to pkcardd (the default) loads neither pyscard nor the simulated
cards: the PC/SC bridge is imported only for ``--direct`` and the simulator
only for ``--simulated`` or a ``--profile`` to check
(tests/test_runtime_imports.py keeps this true).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from pkcard import __version__
from pkcard.client import DEFAULT_SOCKET
from pkcard.coredump import forbid_core_dumps
from pkcard.errors import PkcardError
from pkcard.pin import PinRef
from pkcard.tools.pkpin import holder, reactivate
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
from pkcard.tools.pkpin.messages import ExitCode, Messages, Outcome
from pkcard.tools.pkpin.parsing import Parser
from pkcard.tools.pkpin.service import DaemonService, DirectService, PinService
from pkcard.tools.pkpin.terminal import Terminal
from pkcard.tools.pkpin.waiting import WaitOptions, wait_for_card

SOCKET_VARIABLE = "PKCARD_SOCKET"
SIMULATED_PROFILE = "pk-regular"

_PIN_COMMANDS = {
    "change-pin": PinCommand.CHANGE_PIN,
    "change-spin": PinCommand.CHANGE_SPIN,
    "unblock": PinCommand.UNBLOCK,
    "activate-signature": PinCommand.ACTIVATE_SIGNATURE,
}


def _simulated_profile(value: str) -> str:
    """``--profile``: a profile of the simulator, which is loaded only when one is named.

    Not ``choices=``: argparse lists choices for ``--help`` too, which would load it.
    """
    from pkcard.simcard.profile import profile_names  # noqa: PLC0415 - see the docstring

    names = profile_names()
    if value not in names:
        choices = ", ".join(map(repr, names))
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {choices})")
    return value


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
        (ExitCode.RATE_LIMITED, t.tr("pkcardd pauses PIN entry after too many wrong PINs")),
        (ExitCode.CLOSED_PIPE, t.tr("standard output was closed (as by | head)")),
    ]
    lines = [t.tr("exit codes:")]
    lines += [f"  {int(code):>3}  {text}" for code, text in rows]
    return "\n".join(lines)


def build_parser(words: Messages) -> argparse.ArgumentParser:
    t = words
    parser = Parser(
        prog="pkpin",
        words=words,
        description=t.tr("Manage the PINs of your health professional card (PK)."),
        epilog=exit_code_table(words),
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
        type=_simulated_profile,  # default None: SIMULATED_PROFILE, checked without the simulator
        metavar="NAME",
        help=t.tr("the simulated card's profile (with --simulated)"),
    )
    parser.add_argument(
        "--reader",
        metavar="NAME",
        help=t.tr(
            "the reader to use: its name, a part of it, or its number in pkpin readers "
            "(default: the one with a PK)"
        ),
    )
    parser.add_argument(
        "--wait", action="store_true", help=t.tr("wait for a professional card to be inserted")
    )
    parser.add_argument(
        "--wait-timeout",
        type=int,
        metavar="SECONDS",
        help=t.tr("with --wait: give up after this many seconds (default: wait until Ctrl-C)"),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    readers = commands.add_parser("readers", words=words, help=t.tr("list the card readers"))
    readers.add_argument("--json", action="store_true", help=t.tr("machine-readable output"))
    status = commands.add_parser("status", words=words, help=t.tr("show the card and its PINs"))
    status.add_argument("--json", action="store_true", help=t.tr("machine-readable output"))
    helps = {
        PinCommand.CHANGE_PIN: t.tr("change the PIN"),
        PinCommand.CHANGE_SPIN: t.tr("change the signing PIN"),
        PinCommand.UNBLOCK: t.tr("set a new PIN with the PUK"),
        PinCommand.ACTIVATE_SIGNATURE: t.tr("set the first signing PIN with the transport PIN"),
    }
    for name, command in _PIN_COMMANDS.items():
        sub = commands.add_parser(name, words=words, help=helps[command])
        _add_entry_options(sub, t)
    holder_helps = holder.help_texts(t)
    revoke = commands.add_parser(holder.REVOKE_SIGNATURE, words=words,
                                 help=holder_helps[holder.REVOKE_SIGNATURE])
    revoke.add_argument("--serial", metavar="SERIAL",
                        help=t.tr("the card's serial (default: the PK in the reader)"))
    lost = commands.add_parser(holder.REPORT_LOST, words=words,
                               help=holder_helps[holder.REPORT_LOST])
    lost.add_argument("--serial", metavar="SERIAL",
                      help=t.tr("the lost card's serial, as printed on it (default: the PK in "
                                "the reader)"))
    lost.add_argument("--reason", choices=tuple(holder.LOSS_CHOICES),
                      help=t.tr("why (default: pkpin asks)"))
    backup = commands.add_parser(holder.USE_BACKUP, words=words,
                                 help=holder_helps[holder.USE_BACKUP])
    backup.add_argument("--reason", choices=tuple(holder.SWITCH_CHOICES),
                        help=t.tr("why (default: pkpin asks)"))
    _add_entry_options(backup, t)
    again = commands.add_parser(reactivate.COMMAND, words=words, help=reactivate.help_text(t))
    _add_entry_options(again, t)
    return parser


def _add_entry_options(command: argparse.ArgumentParser, t: Messages) -> None:
    """The options of every command that presents a secret to the card."""
    command.add_argument("--confirm-last-try", action="store_true",
                         help=t.tr("do not ask before spending the last try"))
    command.add_argument("--pinpad", action="store_true",
                         help=t.tr("type the PINs on the reader's PIN pad, not on the computer"))


def _socket(args: argparse.Namespace, environ: Mapping[str, str]) -> Path:
    return Path(args.socket or environ.get(SOCKET_VARIABLE) or DEFAULT_SOCKET)


def _service(args: argparse.Namespace, environ: Mapping[str, str]) -> PinService:
    """The path to the card the arguments ask for."""
    if args.direct:
        from pkcard.pcsc_bridge import PcscReaderSystem  # noqa: PLC0415 - pyscard for --direct only

        return DirectService(PcscReaderSystem())
    if args.simulated:
        from pkcard.simcard.card import load_card  # noqa: PLC0415 - for --simulated only
        from pkcard.simcard.inprocess import PINPAD_READER, SimulatedReaderSystem  # noqa: PLC0415

        system = SimulatedReaderSystem()
        system.insert(PINPAD_READER.name, load_card(args.profile or SIMULATED_PROFILE))
        return DirectService(system)
    return DaemonService(_socket(args, environ))


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
    parser = build_parser(words)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed
        return ExitCode.OK if stop.code in (0, None) else ExitCode.USAGE
    if args.wait_timeout is not None and args.wait_timeout <= 0:
        try:
            parser.error(words.tr("--wait-timeout needs a positive number of seconds"))
        except SystemExit:
            return ExitCode.USAGE
    console = Console(out, err, words)
    try:
        return _run(args, environ, console, open_terminal)
    except BrokenPipeError:  # the reader of our output went away (pkpin status | head -1)
        return ExitCode.CLOSED_PIPE


def _run(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    console: Console,
    open_terminal: Callable[[], Terminal],
) -> ExitCode:
    words = console.words
    as_json = bool(getattr(args, "json", False))
    try:
        if args.command == reactivate.COMMAND:
            return _reactivate(args, environ, console, open_terminal)
        if args.command in holder.COMMANDS:
            return _holder(args, environ, console, open_terminal)
        with _service(args, environ) as service:
            reader = _reader(service, args, console)
            command = _PIN_COMMANDS.get(args.command)
            if command is not None:
                options = PinOptions(reader, args.confirm_last_try, args.pinpad)
                return run_pin_command(service, console, open_terminal, command, options)
            if args.command == "readers":
                return run_readers(service, console, as_json=as_json)
            return run_status(service, console, reader=reader, as_json=as_json)
    except PkcardError as error:
        return _fail(console, _describe(words, error, args, environ), as_json=as_json)
    except KeyboardInterrupt:
        console.note("")
        interrupted = Outcome(ExitCode.CANCELLED, words.interrupted(), "INTERRUPTED")
        return _fail(console, interrupted, as_json=as_json)


def _reader(service: PinService, args: argparse.Namespace, console: Console) -> str | None:
    """The reader the command uses: ``--reader`` as given, or with ``--wait`` the one found."""
    wanted: str | None = args.reader
    if not args.wait or args.command == "readers":
        return wanted
    found = wait_for_card(service, console, wanted, WaitOptions(args.wait_timeout))
    return found.reader.name


def _describe(
    words: Messages, error: PkcardError, args: argparse.Namespace, environ: Mapping[str, str]
) -> Outcome:
    """The words for ``error`` in the context of the command that failed."""
    socket = "" if args.direct or args.simulated else str(_socket(args, environ))
    if args.command == reactivate.COMMAND:
        return reactivate.describe(words, error, socket)
    if args.command in holder.COMMANDS:
        return holder.describe(words, error, socket, args.command)
    command = _PIN_COMMANDS.get(args.command)
    plan = PLANS[command] if command is not None else None
    return words.describe(
        error,
        ref=plan.presented if plan else PinRef.PIN,
        new_ref=plan.target if plan else None,
        socket=socket,
    )


def _fail(console: Console, outcome: Outcome, *, as_json: bool) -> ExitCode:
    """Say ``outcome``: text on standard error, or with --json one object on standard output."""
    if as_json:
        document = {
            "error": {
                "reason": outcome.reason,
                "exit_code": int(outcome.exit_code),
                "message": outcome.text,
                "details": dict(outcome.details),
            }
        }
        console.say(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        console.note(outcome.text)
    return outcome.exit_code


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
    reader = args.reader
    if args.wait:
        with DaemonService(socket) as service:
            reader = _reader(service, args, console)
    return reactivate.run_reactivate(socket, console, open_terminal, reader,
                                     use_pin_pad=args.pinpad,
                                     confirm_last_try=args.confirm_last_try)


def _holder(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    console: Console,
    open_terminal: Callable[[], Terminal],
) -> ExitCode:
    if args.direct or args.simulated:
        console.note(holder.needs_daemon(console.words))
        return ExitCode.USAGE
    socket = _socket(args, environ)
    reader = args.reader
    if args.wait:
        with DaemonService(socket) as service:
            reader = _reader(service, args, console)
    options = holder.HolderOptions(
        socket, reader, serial=getattr(args, "serial", None),
        reason=getattr(args, "reason", None), use_pin_pad=getattr(args, "pinpad", False),
        confirm_last_try=getattr(args, "confirm_last_try", False))
    run = {holder.REVOKE_SIGNATURE: holder.run_revoke_signature,
           holder.REPORT_LOST: holder.run_report_lost,
           holder.USE_BACKUP: holder.run_use_backup}[args.command]
    return run(options, console, open_terminal)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``pkpin`` console script."""
    forbid_core_dumps()  # PINs are typed into this process (docs/security.md)
    code = run(
        sys.argv[1:] if argv is None else argv,
        environ=os.environ,
        out=sys.stdout,
        err=sys.stderr,
    )
    if code is ExitCode.CLOSED_PIPE:
        _silence_closed_output()
    return int(code)


def _silence_closed_output() -> None:
    """Point stdout and stderr at /dev/null, so flushing them at exit raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            continue
    os.close(devnull)
