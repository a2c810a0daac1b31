"""Fixtures of the embedded-backend tests: a private directory per test, a daemon in it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from embeddedrig import EmbeddedDaemon, start_daemon


@pytest.fixture
def root() -> Iterator[Path]:
    """A short private directory (Unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="pke-", dir="/tmp"))
    path.chmod(0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(root: Path) -> Iterator[EmbeddedDaemon]:
    """``pkcardd --simulated`` with nothing else configured; stopped after the test."""
    running = start_daemon(root)
    try:
        yield running
    finally:
        running.stop()
