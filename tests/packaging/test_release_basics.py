"""Release basics: one version (pyproject.toml) behind ``pkcard.__version__`` and every
command's ``--version``; a LICENSE and full project metadata."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import metadata
from pathlib import Path

import pytest

import pkcard

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COMMANDS = {
    "pkcardd": "pkcard.daemon.main",
    "pkpin": "pkcard.tools.pkpin",
    "pkcard-sim": "pkcard.tools.sim",
    "pkcard-trace": "pkcard.tools.trace",
    "pkcard-audit": "pkcard.daemon.audit_cli",
    "pkcard-backend": "pkcard.backend.main",
}


def test_version_comes_from_the_project_metadata() -> None:
    assert pkcard.__version__ == PYPROJECT["project"]["version"]
    assert pkcard.__version__ == metadata("pkcard")["Version"]


def test_every_console_script_is_covered() -> None:
    assert set(PYPROJECT["project"]["scripts"]) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_version(command: str) -> None:
    installed = Path(sys.executable).parent / command
    argv = [str(installed)] if installed.exists() else [sys.executable, "-m", COMMANDS[command]]
    result = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{command} {pkcard.__version__}\n"


def test_license_and_metadata() -> None:
    project = PYPROJECT["project"]
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert project["requires-python"] == ">=3.11"
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(project["urls"])
    classifiers = project["classifiers"]
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Typing :: Typed" in classifiers
    # With a license expression, a "License ::" classifier is an error for setuptools.
    assert not [c for c in classifiers if c.startswith("License ::")]
    installed = metadata("pkcard")
    assert installed["License-Expression"] == "Apache-2.0"
