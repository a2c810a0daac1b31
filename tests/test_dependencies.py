"""The dependencies: every runtime one is used, the lock agrees with pyproject, pip is pinned."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The installed code (the component folders are installed under pkcard, see pkcard/__init__.py).
SOURCES = ("pkcard", "daemon", "backend", "tools", "simcard", "pcsc_bridge")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
_LOCK_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", re.MULTILINE)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [_NAME.match(spec) for spec in project["dependencies"]]
    return [_normalized(m.group(0)) for m in found if m]


def _imported_top_level_names() -> set[str]:
    names: set[str] = set()
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names


def test_every_runtime_dependency_is_imported() -> None:
    """A runtime dependency nobody imports is attack surface and install weight for nothing."""
    providers: dict[str, set[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            providers.setdefault(_normalized(distribution), set()).add(module)
    imported = _imported_top_level_names()
    unused = [d for d in _runtime_dependencies() if not providers.get(d, set()) & imported]
    assert unused == []


def test_the_lock_pins_each_runtime_dependency_and_names_no_stale_parent() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {_normalized(name) for name in _LOCK_ENTRY.findall(lock)}
    assert set(_runtime_dependencies()) <= pinned
    parents = set()
    for line in lock.splitlines():
        via = re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)$", line)
        if via and via.group(1) != "via":
            parents.add(_normalized(via.group(1)))
    assert parents - {"pkcard", "r"} <= pinned, parents - pinned


def test_pip_is_pinned_and_hash_checked_in_bootstrap() -> None:
    pip_lock = (ROOT / "requirements-pip.lock").read_text()
    assert [_normalized(n) for n in _LOCK_ENTRY.findall(pip_lock)] == ["pip"]
    assert re.search(r"--hash=sha256:[0-9a-f]{64}", pip_lock)
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    assert "--require-hashes -r requirements-pip.lock" in bootstrap
    assert "--upgrade pip" not in bootstrap
