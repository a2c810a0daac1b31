"""``pkcard-audit``: check a pkcardd audit log.

``pkcard-audit verify FILE [--head HASH] [--no-head-file] [--only]``

Checks FILE together with its rotated predecessors (``FILE.000001``, ...,
oldest first) as one chain, and against the head file ``FILE.head`` that
pkcardd keeps (the last committed record's seq and hash), so records cut
off the end are caught without ``--head``. ``--only`` checks FILE alone.

Exit codes: 0 the chain is intact (and ends at HASH when given);
1 the chain is broken: a record was edited, removed, reordered or cut off,
a file does not continue its predecessor, or the last line is torn;
2 usage error or a file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pkcard import __version__
from pkcard.daemon.audit import (
    ChainHead,
    head_file,
    parse_head,
    rotated_files,
    verify_files,
)

EXIT_INTACT = 0
EXIT_BROKEN = 1
EXIT_USAGE = 2


def _remembered(path: Path, use_head_file: bool) -> tuple[ChainHead | None, str | None]:
    """The head file's head, and a note for the report (or an error: raises OSError)."""
    if not use_head_file:
        return None, None
    side = head_file(path)
    try:
        data = side.read_bytes()
    except FileNotFoundError:
        return None, f"{side}: no head file (records cut off the end are not checked)"
    try:
        return parse_head(data), None
    except ValueError as exc:
        raise OSError(f"{side}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pkcard-audit", description="Check pkcardd audit logs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="verify the hash chain of an audit log")
    verify.add_argument("file", type=Path)
    verify.add_argument("--head", help="the hash the last record must have (detects cut-off tails)")
    verify.add_argument("--no-head-file", action="store_true",
                        help="do not check against FILE.head")
    verify.add_argument("--only", action="store_true",
                        help="check FILE alone, not its rotated predecessors")
    args = parser.parse_args(argv)
    path: Path = args.file
    files = [path] if args.only else [*rotated_files(path), path]
    try:
        remembered, note = _remembered(path, not args.no_head_file and not args.only)
        result = verify_files(files, expected_head=args.head, remembered=remembered)
    except OSError as exc:
        sys.stderr.write(f"pkcard-audit: cannot read {path}: {exc.strerror or exc}\n")
        return EXIT_USAGE
    if note is not None:
        sys.stdout.write(f"note: {note}\n")
    for finding_path, finding in result.findings:
        where = "end of file" if finding.line == 0 else f"line {finding.line}"
        name = path if finding_path is None else finding_path
        sys.stdout.write(f"{name}: {where}: {finding.problem.name}: {finding.detail}\n")
    if result.intact:
        first = result.files[0][1].start.seq + 1 if result.files else 1
        sys.stdout.write(
            f"{path}: OK, {result.records} records in {len(files)} file(s), seq {first} to "
            f"{result.head.seq}, head {result.head.hash}\n"
        )
        return EXIT_INTACT
    sys.stdout.write(f"{path}: BROKEN, {len(result.findings)} problem(s)\n")
    return EXIT_BROKEN


if __name__ == "__main__":
    raise SystemExit(main())
