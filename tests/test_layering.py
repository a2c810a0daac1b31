"""The layering of docs/architecture.md, kept true by walking every import.

Rules (each is one test):
- the library (``pkcard`` without its components) imports none of the components;
- only ``pkcard.pcsc_bridge`` imports pyscard (``smartcard``);
- only ``pkcard.pkcs11`` imports PyKCS11, besides the SoftHSM2 provisioning of the
  simulation (``pkcard.simcard.softhsm``);
- the reference backend imports only the library: never the daemon, the PC/SC
  bridge, the simulation or the tools.

tests/test_runtime_imports.py checks the same rules, and the lazy imports
(pkpin through pkcardd, pkcardd without a PKCS#11 backend), at run time.
"""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("daemon", "backend", "simcard", "pcsc_bridge", "tools")
NOT_INSTALLED = ("tests/", "bench/", "fuzz/", "fixtures/", "scripts/")


def _module_name(path: str) -> str:
    dotted = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return f"pkcard.{dotted}" if dotted.split(".")[0] in COMPONENTS else dotted


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "pkcard":
        return parts[0]
    if len(parts) > 1 and parts[1] in COMPONENTS:
        return f"pkcard.{parts[1]}"
    return "pkcard"


def _imports() -> Iterator[tuple[str, str]]:
    """(importing module, imported module) for every import in the installed code."""
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    for path in tracked:
        if path.startswith(NOT_INSTALLED):
            continue
        module = _module_name(path)
        for node in ast.walk(ast.parse((ROOT / path).read_text(), path)):
            if isinstance(node, ast.Import):
                yield from ((module, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield module, node.module


def _edges(importer_layer: str | None, imported_layers: set[str]) -> list[str]:
    return sorted(f"{src} -> {dst}" for src, dst in _imports()
                  if (importer_layer is None or _layer(src) == importer_layer)
                  and _layer(dst) in imported_layers)


def test_the_library_imports_no_component() -> None:
    assert _edges("pkcard", {f"pkcard.{name}" for name in COMPONENTS}) == []


def test_only_the_pcsc_bridge_imports_pyscard() -> None:
    assert [e for e in _edges(None, {"smartcard"})
            if not e.startswith("pkcard.pcsc_bridge")] == []


def test_only_the_pkcs11_driver_imports_pykcs11() -> None:
    allowed = ("pkcard.pkcs11 ", "pkcard.simcard.softhsm ")
    assert [e for e in _edges(None, {"PyKCS11"}) if not e.startswith(allowed)] == []


def test_the_backend_imports_only_the_library() -> None:
    forbidden = {"pkcard.daemon", "pkcard.pcsc_bridge", "pkcard.simcard", "pkcard.tools",
                 "smartcard", "PyKCS11"}
    assert _edges("pkcard.backend", forbidden) == []


def test_the_rules_see_every_layer() -> None:
    """A walk that finds nothing would pass every rule: make sure it sees the code."""
    layers = {_layer(src) for src, _ in _imports()}
    assert layers >= {"pkcard", *(f"pkcard.{name}" for name in COMPONENTS)}
    assert _edges(None, {"smartcard"}), "pyscard imports not seen"
