"""The fuzz targets of fuzz/ under hypothesis, their regression corpus, and a short atheris run.

Every target may raise only pkcard errors (it swallows those); anything else
escaping is a finding. CI replays the committed corpus (tests/fuzz/corpus), then
runs a short atheris pass with a fixed seed and a fixed number of executions
(``PKCARD_FUZZ_SEED``, ``PKCARD_FUZZ_RUNS``). ``python -m fuzz run --seconds 600``
is the long, randomly seeded run (600 s in total).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fuzz
import fuzz.__main__ as fuzz_main
import fuzz.targets
from fuzz.targets import TARGETS, seeds

CORPUS = Path(__file__).resolve().parent / "corpus"
ROOT = Path(__file__).resolve().parents[2]
ATHERIS_RUNS = int(os.environ.get("PKCARD_FUZZ_RUNS", "2000"))
ATHERIS_SEED = int(os.environ.get("PKCARD_FUZZ_SEED", "20261125"))


def test_target_names_match() -> None:
    assert tuple(sorted(TARGETS)) == fuzz.TARGET_NAMES


@pytest.mark.parametrize("name", fuzz.TARGET_NAMES)
@given(data=st.binary(max_size=700))
def test_target_raises_only_pkcard_errors(name: str, data: bytes) -> None:
    TARGETS[name](data)


@pytest.mark.parametrize("name", fuzz.TARGET_NAMES)
def test_seeds_and_regression_corpus(name: str) -> None:
    """Every target keeps a committed corpus; CI replays it, in order, before any fuzzing."""
    inputs = list(seeds(name))
    folder = CORPUS / name
    assert folder.is_dir(), f"no committed corpus for {name}"
    committed = [path.read_bytes() for path in sorted(folder.iterdir())]
    assert committed
    inputs += committed
    for data in inputs:
        TARGETS[name](data)


def test_targets_let_other_exceptions_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness is not vacuous: a non-pkcard exception from a parser is a finding."""

    def broken(text: str) -> None:
        raise KeyError(text[:1])

    monkeypatch.setattr(fuzz.targets, "parse_transcript", broken)
    with pytest.raises(KeyError):
        TARGETS["transcript"](b"x")


def test_short_atheris_run(tmp_path: Path) -> None:
    """A fixed-seed pass of a fixed number of executions per target: the same in every run."""
    pytest.importorskip("atheris")
    budget = 60 * len(fuzz.TARGET_NAMES)  # a cap only: the runs end the pass long before
    child = subprocess.run(
        [sys.executable, "-m", "fuzz", "run", "--runs", str(ATHERIS_RUNS),
         "--seed", str(ATHERIS_SEED), "--seconds", str(budget), "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=budget + 120, check=False,
    )
    assert child.returncode == 0, child.stdout + child.stderr[-3000:]
    rows = [line.split() for line in child.stdout.splitlines()[1:]]
    assert sorted(row[0] for row in rows) == sorted(fuzz.TARGET_NAMES)
    assert all(int(row[1]) == ATHERIS_RUNS and row[3] == "none" for row in rows), child.stdout


def test_fuzz_run_seconds_is_the_total_budget(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """``python -m fuzz run --seconds 600`` takes 600 s in all, split evenly over the targets."""
    budgets: list[fuzz_main.Budget] = []

    def record(name: str, budget: fuzz_main.Budget, workdir: Path) -> fuzz_main.TargetRun:
        budgets.append(budget)
        return fuzz_main.TargetRun(name, 1, float(budget.seconds), (), 0)

    monkeypatch.setattr(fuzz_main, "run_target", record)
    assert fuzz_main.main(["run", "--seconds", "600", "--workdir", str(tmp_path)]) == 0
    seconds = [b.seconds for b in budgets]
    assert len(seconds) == len(fuzz.TARGET_NAMES)
    assert sum(seconds) == 600
    assert max(seconds) - min(seconds) <= 1
    assert all(b.seed is None and b.runs is None for b in budgets)
    budgets.clear()
    fuzz_main.main(["run", "--seconds", "10", "--seed", "7", "--runs", "50", "--target", "apdu",
                    "--target", "tlv", "--workdir", str(tmp_path)])
    assert [(b.seconds, b.runs, b.seed) for b in budgets] == [(5, 50, 7), (5, 50, 7)]


def test_a_slow_unit_is_listed_but_is_no_finding(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """libFuzzer writes slow-unit-* when one input took > 10 s, which load alone can cause."""

    def fake_child(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        artifacts = Path(command[command.index("--artifacts") + 1])
        (artifacts / "slow-unit-0123").write_bytes(b"\x01")
        return subprocess.CompletedProcess(command, 0, "", "Done 5 runs in 1 second(s)")

    monkeypatch.setattr(fuzz_main.subprocess, "run", fake_child)
    result = fuzz_main.run_target("kzz", fuzz_main.Budget(1), tmp_path)
    assert result.findings == ()
    assert [p.name for p in result.slow_units] == ["slow-unit-0123"]
    assert result.executions == 5
