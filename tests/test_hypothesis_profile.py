"""Hypothesis in CI is derandomized: a failing example is found again on every run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import runpy, sys
from hypothesis import settings
sys.path.insert(0, "tests")  # as pytest's rootdir conftest sees it (its helpers live there)
runpy.run_path("tests/conftest.py")
print(settings.default.derandomize, settings.default.database is None,
      settings.default.print_blob, settings.default.max_examples)
"""


def _profile(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.split()


def test_ci_runs_are_derandomized_and_write_no_database() -> None:
    assert _profile(CI="true") == ["True", "True", "True", "200"]


def test_developer_runs_are_random_but_print_how_to_replay() -> None:
    derandomize, _, print_blob, examples = _profile()
    assert (derandomize, print_blob, examples) == ("False", "True", "200")


def test_an_explicit_profile_wins() -> None:
    assert _profile(CI="true", HYPOTHESIS_PROFILE="slow")[0::3] == ["False", "5000"]
