"""bench.pkcs11_sign still runs (a tiny run; the numbers are not checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pkcard.simcard.softhsm import SOFTHSM_MODULE

ROOT = Path(__file__).resolve().parents[2]


def test_bench_runs_and_reports_every_path() -> None:
    if not SOFTHSM_MODULE.exists():
        pytest.skip(f"SoftHSM2 is not installed ({SOFTHSM_MODULE})")
    result = subprocess.run(
        [sys.executable, "-m", "bench.pkcs11_sign", "--signatures", "3", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = [
        line.split() for line in result.stdout.splitlines() if line.startswith(("kpep", "auth"))
    ]
    assert [(row[0], row[-3]) for row in rows] == [
        ("kpep", "PyKCS11"),
        ("kpep", "driver"),
        ("kpep", "pkcardd"),
        ("auth", "PyKCS11"),
        ("auth", "driver"),
    ]
    assert all(float(row[-1]) > 0 for row in rows)
    assert re.search(r"^GOAL G3 measured=\d+\.\d+ goal<=1\.30 (ok|MISSED)$", result.stdout,
                     re.MULTILINE), result.stdout
