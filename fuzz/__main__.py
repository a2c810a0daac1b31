"""``python -m fuzz``: run the atheris harnesses.

    python -m fuzz list
    python -m fuzz run [--seconds 600] [--runs N] [--seed S] [--target NAME ...] [--workdir DIR]
    python -m fuzz one NAME --seconds N [--runs N] [--seed S] --corpus DIR --artifacts DIR

``run`` starts one process per target (libFuzzer ends a process on a
finding), seeds its corpus from :func:`fuzz.targets.seeds` and the
regression inputs in tests/fuzz/corpus/NAME, and prints one line per target:
executions, seconds, findings. Exit status 1 when any target found a crash.
A finding is a crash, timeout, leak or out-of-memory input; libFuzzer's
``slow-unit-*`` files (one input took over 10 s, which a busy machine alone
can cause) are listed but do not fail the run.

``--seconds`` is the TOTAL budget of the run, split evenly over the targets
(``--seconds 600`` over 7 targets: 86 or 85 s each). ``--runs N`` stops each
target after N executions instead (the budget still caps it). ``--seed S``
fixes libFuzzer's random choices (``-seed=S``) and Python's hash seed, so a run
with the same seed, runs and corpus mutates the same way; CI's short pass uses
it (tests/fuzz/test_fuzz_targets.py). Without ``--seed`` libFuzzer picks one
and prints it (``INFO: Seed: N``); a finding is replayed from its file.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fuzz import TARGET_NAMES

REGRESSIONS = Path(__file__).resolve().parents[1] / "tests" / "fuzz" / "corpus"
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_GRACE_S = 60.0
_SLOW_UNIT = "slow-unit-"


@dataclass(frozen=True)
class TargetRun:
    """What one target's run did."""

    name: str
    executions: int
    seconds: float
    findings: tuple[Path, ...]
    exit_code: int
    slow_units: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Budget:
    """How long one target may run: seconds, and optionally executions and a fixed seed."""

    seconds: int
    runs: int | None = None
    seed: int | None = None

    def libfuzzer_flags(self) -> list[str]:
        flags = [f"-max_total_time={self.seconds}"]
        if self.runs is not None:
            flags.append(f"-runs={self.runs}")
        if self.seed is not None:
            flags.append(f"-seed={self.seed}")
        return flags


def split_seconds(total: int, count: int) -> list[int]:
    """``total`` seconds over ``count`` targets: as even as whole seconds allow, each >= 1."""
    share, extra = divmod(max(total, count), count)
    return [share + (1 if index < extra else 0) for index in range(count)]


def _fuzz_one(name: str, budget: Budget, corpus: Path, artifacts: Path) -> None:
    import atheris  # noqa: PLC0415 - only here: fuzz/ imports without atheris installed

    # pkcard is imported here for the first time, so its code gets coverage hooks.
    with atheris.instrument_imports(include=["pkcard"]):
        from fuzz.targets import TARGETS  # noqa: PLC0415 - after the hooks are in place
    target = TARGETS[name]
    atheris.Setup(
        [sys.argv[0], str(corpus), *budget.libfuzzer_flags(), "-timeout=10",
         f"-artifact_prefix={artifacts}/", "-print_final_stats=1", "-max_len=4096"],
        target,
    )
    atheris.Fuzz()


def run_target(name: str, budget: Budget, workdir: Path) -> TargetRun:
    """Fuzz ``name`` within ``budget`` in a child process."""
    corpus = workdir / name / "corpus"
    artifacts = workdir / name / "findings"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    from fuzz.targets import seeds  # noqa: PLC0415 - pkcard is imported late on purpose

    for index, seed in enumerate(seeds(name)):
        (corpus / f"seed-{index}").write_bytes(seed)
    regressions = REGRESSIONS / name
    if regressions.is_dir():
        for path in regressions.iterdir():
            shutil.copy(path, corpus / f"regression-{path.name}")
    command = [sys.executable, "-m", "fuzz", "one", name, "--seconds", str(budget.seconds),
               "--corpus", str(corpus), "--artifacts", str(artifacts)]
    if budget.runs is not None:
        command += ["--runs", str(budget.runs)]
    environment = dict(os.environ)
    if budget.seed is not None:
        command += ["--seed", str(budget.seed)]
        environment["PYTHONHASHSEED"] = str(budget.seed % 2**32)
    started = time.monotonic()
    child = subprocess.run(  # noqa: S603 - our own interpreter and module
        command, capture_output=True, text=True, timeout=budget.seconds + _GRACE_S,
        check=False, env=environment,
    )
    elapsed = time.monotonic() - started
    done = _DONE.search(child.stderr)
    written = sorted(artifacts.iterdir())
    findings = tuple(p for p in written if not p.name.startswith(_SLOW_UNIT))
    slow = tuple(p for p in written if p.name.startswith(_SLOW_UNIT))
    if child.returncode != 0 and not findings:
        sys.stderr.write(child.stderr[-4000:])
    executions = int(done.group(1)) if done else 0
    return TargetRun(name, executions, elapsed, findings, child.returncode, slow)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list")
    run = commands.add_parser("run")
    run.add_argument("--seconds", type=int, default=600,
                     help="total budget, split evenly over the targets (default 600)")
    run.add_argument("--runs", type=int, help="stop each target after this many executions")
    run.add_argument("--seed", type=int, help="fixed libFuzzer seed (reproducible mutations)")
    run.add_argument("--target", action="append", choices=TARGET_NAMES)
    run.add_argument("--workdir", type=Path)
    one = commands.add_parser("one")
    one.add_argument("name", choices=TARGET_NAMES)
    one.add_argument("--seconds", type=int, required=True)
    one.add_argument("--runs", type=int)
    one.add_argument("--seed", type=int)
    one.add_argument("--corpus", type=Path, required=True)
    one.add_argument("--artifacts", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "list":
        sys.stdout.write("\n".join(TARGET_NAMES) + "\n")
        return 0
    if args.command == "one":
        _fuzz_one(args.name, Budget(args.seconds, args.runs, args.seed), args.corpus,
                  args.artifacts)
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pkcard-fuzz-"))
    failed = False
    names = args.target or list(TARGET_NAMES)
    sys.stdout.write(f"{'target':<12}{'executions':>12}{'seconds':>10}  findings ({workdir})\n")
    for name, seconds in zip(names, split_seconds(args.seconds, len(names)), strict=True):
        result = run_target(name, Budget(seconds, args.runs, args.seed), workdir)
        failed |= bool(result.findings) or result.exit_code != 0
        found = ", ".join(str(p) for p in result.findings) or "none"
        if result.slow_units:
            found += f" (slow, not failing: {', '.join(str(p) for p in result.slow_units)})"
        sys.stdout.write(
            f"{name:<12}{result.executions:>12}{result.seconds:>10.1f}  {found}\n"
        )
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
