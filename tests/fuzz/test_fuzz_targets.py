"""The fuzz targets of fuzz/ under hypothesis, their regression corpus, and a short atheris run.

Every target may raise only pkcard errors (it swallows those); anything else
escaping is a finding. ``python -m fuzz run --seconds 600`` is the long run.
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
import fuzz.targets
from fuzz.targets import TARGETS, seeds

CORPUS = Path(__file__).resolve().parent / "corpus"
ROOT = Path(__file__).resolve().parents[2]
ATHERIS_SECONDS = int(os.environ.get("PKCARD_FUZZ_SECONDS", "2"))


def test_target_names_match() -> None:
    assert tuple(sorted(TARGETS)) == fuzz.TARGET_NAMES


@pytest.mark.parametrize("name", fuzz.TARGET_NAMES)
@given(data=st.binary(max_size=700))
def test_target_raises_only_pkcard_errors(name: str, data: bytes) -> None:
    TARGETS[name](data)


@pytest.mark.parametrize("name", fuzz.TARGET_NAMES)
def test_seeds_and_regression_corpus(name: str) -> None:
    inputs = list(seeds(name))
    folder = CORPUS / name
    if folder.is_dir():
        inputs += [path.read_bytes() for path in sorted(folder.iterdir())]
    assert inputs
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
    pytest.importorskip("atheris")
    child = subprocess.run(
        [sys.executable, "-m", "fuzz", "run", "--seconds", str(ATHERIS_SECONDS),
         "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60 * len(fuzz.TARGET_NAMES),
        check=False,
    )
    assert child.returncode == 0, child.stdout + child.stderr[-3000:]
    rows = [line.split() for line in child.stdout.splitlines()[1:]]
    assert sorted(row[0] for row in rows) == sorted(fuzz.TARGET_NAMES)
    assert all(int(row[1]) > 0 and row[3] == "none" for row in rows), child.stdout
