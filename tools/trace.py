"""pkcard-trace: check and normalise APDU transcripts (docs/transcripts.md).

Subcommands:

- ``check FILE...``: parse each file; print ``FILE: ok (N exchanges, card C)``
  or ``FILE: line L: reason`` to standard error.
- ``format FILE``: print the file in canonical form (uppercase hex, single
  spaces, comments dropped).
- ``record OPERATION --reader NAME [--card LABEL] [-o FILE]``: run one
  read-only operation (``read-pk``, ``pin-status``, ``read-kzz``) against the
  card in a PC/SC reader (``--simulated PROFILE`` for an in-process simulated
  card instead) and write its transcript. PIN command bodies are redacted by
  the recorder, so a transcript taken with a real ZZZS test card can be kept
  next to the simulated ones.

Exit codes: 0 every file is valid (or the recording was written), 1 at
least one file is invalid or unreadable (or the card could not be read),
2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path

from pkcard import __version__
from pkcard.errors import FormatError, PkcardError
from pkcard.kzz import HealthInsuranceCard
from pkcard.pk import ProfessionalCard
from pkcard.transcript import (
    RecordingConnection,
    Transcript,
    format_transcript,
    parse_transcript,
)
from pkcard.transport import SmartCardConnection

PROFILE_VERSION = 1
"""The docs/card-profile.md version recorded transcripts are written against."""


class Operation(IntEnum):
    """The read-only operations ``record`` can run; none of them sends a secret."""

    READ_PK = 1
    PIN_STATUS = 2
    READ_KZZ = 3

    @property
    def cli_name(self) -> str:
        return self.name.lower().replace("_", "-")


def _run(operation: Operation, connection: SmartCardConnection) -> None:
    if operation is Operation.READ_PK:
        ProfessionalCard.over(connection).read_card()
    elif operation is Operation.PIN_STATUS:
        ProfessionalCard.over(connection).pin_statuses()
    else:
        HealthInsuranceCard.over(connection).read_card()


def _connect(reader: str | None, simulated: str | None) -> SmartCardConnection:
    if simulated is not None:
        from pkcard.simcard.card import load_card  # noqa: PLC0415 - simulation only on request
        from pkcard.simcard.inprocess import InProcessConnection  # noqa: PLC0415

        return InProcessConnection(load_card(simulated))
    from pkcard.pcsc_bridge import PcscReaderSystem  # noqa: PLC0415 - pyscard only when recording

    assert reader is not None
    return PcscReaderSystem().connect(reader)


def _record(
    operation: Operation, reader: str | None, simulated: str | None, card: str, out: Path | None
) -> ExitCode:
    try:
        with _connect(reader, simulated) as connection:
            recorder = RecordingConnection(connection, card, PROFILE_VERSION)
            _run(operation, recorder)
    except PkcardError as exc:
        sys.stderr.write(f"pkcard-trace: {type(exc).__name__}: {exc}\n")
        return ExitCode.INVALID
    text = format_transcript(recorder.transcript)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        count = len(recorder.transcript.exchanges)
        sys.stdout.write(f"{out}: recorded {count} exchanges\n")
    return ExitCode.OK


class ExitCode(IntEnum):
    OK = 0
    INVALID = 1
    USAGE = 2


def _load(path: Path) -> Transcript:
    return parse_transcript(path.read_text(encoding="utf-8"))


def _check(paths: Sequence[Path]) -> ExitCode:
    result = ExitCode.OK
    for path in paths:
        try:
            transcript = _load(path)
        except (OSError, UnicodeDecodeError, FormatError) as exc:
            sys.stderr.write(f"{path}: {exc}\n")
            result = ExitCode.INVALID
            continue
        count = len(transcript.exchanges)
        sys.stdout.write(f"{path}: ok ({count} exchanges, card {transcript.header.card})\n")
    return result


def _format(path: Path) -> ExitCode:
    try:
        transcript = _load(path)
    except (OSError, UnicodeDecodeError, FormatError) as exc:
        sys.stderr.write(f"{path}: {exc}\n")
        return ExitCode.INVALID
    sys.stdout.write(format_transcript(transcript))
    return ExitCode.OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pkcard-trace", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="parse transcripts and report errors")
    check.add_argument("files", nargs="+", type=Path)
    fmt = commands.add_parser("format", help="print a transcript in canonical form")
    fmt.add_argument("file", type=Path)
    record = commands.add_parser("record", help="record a read-only operation's transcript")
    record.add_argument("operation", choices=[op.cli_name for op in Operation])
    source = record.add_mutually_exclusive_group(required=True)
    source.add_argument("--reader", help="PC/SC reader holding the card")
    source.add_argument("--simulated", metavar="PROFILE", help="an in-process simulated card")
    record.add_argument("--card", default="card", help="card label for the header")
    record.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on bad usage (2)
        return ExitCode.OK if exc.code == 0 else ExitCode.USAGE
    if args.command == "check":
        return _check(args.files)
    if args.command == "record":
        operation = Operation[args.operation.upper().replace("-", "_")]
        return _record(operation, args.reader, args.simulated, args.card, args.output)
    return _format(args.file)


if __name__ == "__main__":
    raise SystemExit(main())
