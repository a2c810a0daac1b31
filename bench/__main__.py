"""Run every pkcard benchmark in turn: ``.venv/bin/python -m bench``.

Each benchmark runs as its own ``python -m bench.NAME`` process (so one
cannot skew another's memory or threads) and prints its own figures,
ratios against a baseline measured in the same run. A benchmark whose
module is not there is reported as skipped; any failure makes the exit
status 1.

    python -m bench                      # every benchmark, modest default sizes
    python -m bench --quick              # tiny sizes: a smoke run, not figures
    python -m bench daemon verify_tokens # only these
    python -m bench daemon -- --calls 2000 --clients 32   # options after -- pass through
    python -m bench --list
    python -m bench --quick --pcscd-lock-held daemon   # the caller holds the pcscd lock

Options after ``--`` go to every selected benchmark, so use them with one name.

The run ends with one ``GOAL`` line per goal of issue #14 (G1..G9, see
``bench/goals.py``), collected from the ``GOAL`` lines the benchmarks printed
above it; a goal whose benchmark did not run is ``not measured``. The load
average is printed at the start and at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.goals import collect, summary

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


@dataclass(frozen=True)
class Bench:
    """One benchmark module and the arguments of its smoke-sized run."""

    name: str
    summary: str
    quick: tuple[str, ...]
    pcscd: bool = False  # runs its own pcscd: told when the caller holds the lock

    @property
    def present(self) -> bool:
        return (BENCH_DIR / f"{self.name}.py").is_file()


BENCHES: tuple[Bench, ...] = (
    Bench("protocol_overhead", "protocol layer vs raw in-process transmit",
          ("--rounds", "2000")),
    Bench("apdu_roundtrip", "protocol layer vs raw pyscard over pcscd+vpcd", ("--quick",),
          pcscd=True),
    Bench("verify_tokens", "token verifier vs bare signatures; backend redemptions/s",
          ("--tokens", "40", "--redemptions", "16")),
    Bench("pkcs11_sign", "PKCS#11 driver vs raw PyKCS11 on SoftHSM2",
          ("--signatures", "5", "--rounds", "1")),
    Bench("load", "64 clients with card pulls against pkcardd --simulated",
          ("--clients", "8", "--calls", "5")),
    Bench("daemon", "pkcardd vs raw pyscard; concurrency; start-up and memory", ("--quick",),
          pcscd=True),
    Bench("perimeter", "caller check: user socket and public gateway vs the private socket",
          ("--quick",)),
    Bench("events", "card insert/remove: WatchEvents vs a raw SCardGetStatusChange waiter",
          ("--quick",), pcscd=True),
    Bench("backend_scale", "backend on PostgreSQL vs SQLite; 1, 2, 4 instances; anomalies",
          ("--redemptions", "48", "--clients", "4", "--duplicate-every", "4")),
)


@dataclass(frozen=True)
class Outcome:
    bench: Bench
    returncode: int | None  # None: skipped
    seconds: float

    def describe(self) -> str:
        if self.returncode is None:
            return f"skipped (bench/{self.bench.name}.py not present)"
        if self.returncode == 0:
            return f"ok ({self.seconds:.1f} s)"
        return f"FAILED with exit status {self.returncode} ({self.seconds:.1f} s)"


def run_bench(bench: Bench, quick: bool, lock_held: bool, extra: Sequence[str],
              goals: dict[str, str]) -> Outcome:
    """Run one benchmark in a child process, its output copied to ours line by line.

    Its ``GOAL`` lines are recorded in ``goals``.
    """
    if not bench.present:
        return Outcome(bench, None, 0.0)
    command = [sys.executable, "-m", f"bench.{bench.name}",
               *(bench.quick if quick else ()),
               *(("--pcscd-lock-held",) if lock_held and bench.pcscd else ()), *extra]
    print(f"=== bench.{bench.name}: {bench.summary}", flush=True)
    start = time.monotonic()
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          bufsize=1) as child:
        for line in child.stdout or ():
            sys.stdout.write(line)
            sys.stdout.flush()
            collect((line,), goals)
    return Outcome(bench, child.returncode, time.monotonic() - start)


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0],
        epilog="Options after -- are passed to every selected benchmark.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes for a smoke run; the figures mean little")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--pcscd-lock-held", action="store_true",
                        help="the caller holds /tmp/pkcard-pcscd.lock: the pcscd benchmarks"
                             " are told not to take it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in arguments:
        split = arguments.index("--")
        arguments, extra = arguments[:split], arguments[split + 1:]
    parser = _parser()
    args = parser.parse_args(arguments)
    known = {bench.name: bench for bench in BENCHES}
    if args.list:
        for bench in BENCHES:
            state = "" if bench.present else "  (not present)"
            print(f"{bench.name:18s} {bench.summary}{state}")
        return 0
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; see --list")
    selected = [known[name] for name in args.names] if args.names else list(BENCHES)
    print(f"=== machine: {os.cpu_count()} CPUs, {platform.machine()},"
          f" Python {platform.python_version()}, load average {_load()}", flush=True)
    goals: dict[str, str] = {}
    outcomes = [run_bench(bench, args.quick, args.pcscd_lock_held, extra, goals)
                for bench in selected]
    print(f"=== summary (load average now {_load()})")
    for outcome in outcomes:
        print(f"  {outcome.bench.name:18s} {outcome.describe()}")
    print(f"=== goals (issue #14; load average at the end {_load()})")
    for line in summary(goals):
        print(line)
    failed = any(outcome.returncode not in (0, None) for outcome in outcomes)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
