"""``pkcard-audit``: check a pkcardd audit log.

``pkcard-audit verify FILE [--head HASH]``

Exit codes: 0 the chain is intact (and ends at HASH when given);
1 the chain is broken: a record was edited, removed, reordered or cut off,
or the last line is torn; 2 usage error or the file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pkcard import __version__
from pkcard.daemon.audit import verify_bytes

EXIT_INTACT = 0
EXIT_BROKEN = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pkcard-audit", description="Check pkcardd audit logs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="verify the hash chain of an audit log")
    verify.add_argument("file", type=Path)
    verify.add_argument("--head", help="the hash the last record must have (detects cut-off tails)")
    args = parser.parse_args(argv)
    path: Path = args.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        sys.stderr.write(f"pkcard-audit: cannot read {path}: {exc.strerror}\n")
        return EXIT_USAGE
    result = verify_bytes(data, expected_head=args.head)
    if result.intact:
        sys.stdout.write(
            f"{path}: OK, {result.records} records, head seq {result.head.seq} {result.head.hash}\n"
        )
        return EXIT_INTACT
    for finding in result.findings:
        where = "end of file" if finding.line == 0 else f"line {finding.line}"
        sys.stdout.write(f"{path}: {where}: {finding.problem.name}: {finding.detail}\n")
    sys.stdout.write(f"{path}: BROKEN, {len(result.findings)} problem(s)\n")
    return EXIT_BROKEN


if __name__ == "__main__":
    raise SystemExit(main())
