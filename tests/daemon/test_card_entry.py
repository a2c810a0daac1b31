"""The daemon's one path to a card (issue #13, finding 2), kept true by an ast walk.

- no daemon module imports an APDU driver (``IsoPkDriver``, ``IsoKzzDriver``, their
  modules) or names a driver class: jobs get the card applications from
  ``daemon/card_backends.py``;
- only ``card_backends`` hands jobs to ``ReaderWorkers.run``;
- the backend kind is the ``CardDriver`` enum, never a ``BACKEND_*`` string;
- only ``pin_entry`` raises ``HostPinEntryRefused`` or touches the failed-PIN limiter's
  ``record_failure`` / ``record_success``.
"""

from __future__ import annotations

import ast
from pathlib import Path

DAEMON = Path(__file__).resolve().parents[2] / "daemon"
DRIVER_MODULES = {"pkcard.pk_iso", "pkcard.kzz_iso"}
DRIVER_NAMES = {"IsoPkDriver", "IsoKzzDriver", "PkDriver", "KzzDriver"}


def _modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted(DAEMON.glob("*.py"))}


def _names(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.add(node.asname or node.name)
    return found


def test_no_daemon_module_names_a_driver() -> None:
    offenders = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in DRIVER_MODULES:
                offenders.append(f"{name}: from {node.module}")
        for used in _names(tree) & DRIVER_NAMES:
            offenders.append(f"{name}: {used}")
    assert offenders == []  # KeySlot, a type of the driver interface, may be named


def test_only_card_backends_runs_jobs_on_the_reader_workers() -> None:
    callers = sorted(name for name, tree in _modules().items()
                     if name != "workers" and any(
                         isinstance(node, ast.Attribute) and node.attr == "run"
                         and isinstance(node.value, ast.Attribute)
                         and node.value.attr == "_workers"
                         for node in ast.walk(tree)))
    assert callers == ["card_backends"]


def test_backend_kind_is_the_card_driver_enum() -> None:
    strings = sorted(f"{name}: {used}" for name, tree in _modules().items()
                     for used in _names(tree) & {"BACKEND_APDU", "BACKEND_PKCS11"})
    assert strings == []


def test_pin_entry_rules_live_in_pin_entry() -> None:
    rules = {"HostPinEntryRefused", "record_failure", "record_success", "PIN_ENTRY_STARTED"}
    found = sorted(f"{name}: {used}" for name, tree in _modules().items()
                   if name not in ("pin_entry", "ratelimit", "errors")
                   for used in _names(tree) & rules)
    assert found == []
