"""Installed import names: everything lives under ``pkcard``; no generic top-level names.

The repository keeps its component folders (``daemon/``, ``backend/``, ``simcard/``,
``pcsc_bridge/``, ``tools/``); ``pkcard/<name>`` links to each, so the one import name
is ``pkcard.<name>`` both in the checkout and in the installed wheel.
"""

import ast
import importlib
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ["daemon", "backend", "simcard", "pcsc_bridge", "tools"]


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_is_imported_under_pkcard(name: str) -> None:
    module = importlib.import_module(f"pkcard.{name}")
    assert module.__file__ is not None, f"pkcard.{name} resolved to a namespace package"
    assert Path(module.__file__).resolve().parent == ROOT / name


def _python_files() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    return [ROOT / f for f in tracked]


def test_no_code_imports_a_generic_top_level_name() -> None:
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in COMPONENTS]
    assert offenders == []
