"""pkcard-trace: check and normalise APDU transcripts (docs/transcripts.md).

Subcommands:

- ``check FILE...``: parse each file; print ``FILE: ok (N exchanges, card C)``
  or ``FILE: line L: reason`` to standard error.
- ``format FILE``: print the file in canonical form (uppercase hex, single
  spaces, comments dropped).

Exit codes: 0 every file is valid, 1 at least one file is invalid or
unreadable, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path

from pkcard.errors import FormatError
from pkcard.transcript import Transcript, format_transcript, parse_transcript


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
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="parse transcripts and report errors")
    check.add_argument("files", nargs="+", type=Path)
    fmt = commands.add_parser("format", help="print a transcript in canonical form")
    fmt.add_argument("file", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on bad usage (2)
        return ExitCode.OK if exc.code == 0 else ExitCode.USAGE
    if args.command == "check":
        return _check(args.files)
    return _format(args.file)


if __name__ == "__main__":
    raise SystemExit(main())
