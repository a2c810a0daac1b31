"""The test folders named like packages must not shadow the real packages."""

import importlib

import pytest


@pytest.mark.parametrize("name", ["simcard", "daemon", "backend", "pkcard", "tools"])
def test_real_package_is_imported(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None, f"{name} resolved to a namespace package (a tests/ folder)"
    assert "/tests/" not in module.__file__
