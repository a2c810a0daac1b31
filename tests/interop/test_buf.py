"""buf (from npm) lints protos/ and catches breaking changes against the committed baseline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "tests" / "interop" / "node" / "node_modules" / ".bin" / "buf"
BASELINE = ROOT / "tests" / "interop" / "proto-baseline"


@pytest.fixture(scope="module")
def buf() -> Path:
    subprocess.run([str(ROOT / "scripts" / "node-deps")], check=True, timeout=300)
    return BUF


def _copy_protos(tmp_path: Path) -> Path:
    protos = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", protos)
    return protos


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_protos_pass_lint_and_the_breaking_check() -> None:
    result = _run(str(ROOT / "scripts" / "buf-check"), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_undocumented_field_or_a_bad_zero_value_fails_lint(buf: Path, tmp_path: Path) -> None:
    protos = _copy_protos(tmp_path)
    simulation = protos / "pkcard" / "v1" / "simulation.proto"
    simulation.write_text(simulation.read_text() + "\nmessage Extra {\n  string x = 1;\n}\n"
                          "\n// An enum.\nenum Color {\n  // Red.\n  COLOR_RED = 0;\n}\n")
    result = _run(str(buf), "lint", cwd=protos)
    assert result.returncode != 0
    assert 'Message "Extra" should have a non-empty comment' in result.stdout
    assert 'Field "x" should have a non-empty comment' in result.stdout
    assert 'Enum zero value name "COLOR_RED" should be suffixed with "_UNSPECIFIED"' \
        in result.stdout


def test_a_renumbered_field_is_a_breaking_change(buf: Path, tmp_path: Path) -> None:
    protos = _copy_protos(tmp_path)
    simulation = protos / "pkcard" / "v1" / "simulation.proto"
    simulation.write_text(simulation.read_text().replace("string profile = 2;",
                                                         "string profile = 3;"))
    result = _run(str(buf), "breaking", str(protos), "--against", str(BASELINE), cwd=tmp_path)
    assert result.returncode != 0
    assert "InsertCardRequest" in result.stdout
