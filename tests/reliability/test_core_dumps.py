"""Break 6 of issue #12: secrets must not reach core dumps.

Each program that holds a PIN, a PUK or a reactivation password (pkcardd,
pkpin, pkcard-backend) is started with core dumps enabled (RLIMIT_CORE
unlimited, in a scratch working directory, where the kernel's plain
``core_pattern`` puts the file), made to hold a known secret, and aborted
with SIGABRT. No core file may result, and if one did it must not hold the
secret. pkcardd is the real daemon process, holding a wrong PIN that a real
client sent it over the real socket.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serving
from daemon_harness import PK_READER, daemon_command, make_root

from pkcard.client import PkcardClient
from pkcard.errors import WrongPin
from pkcard.pin import PinRef
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef

SECRET_PIN = "73105926"
SECRET_PASSWORD = "core-dump-canary-Reaktivacija-5521"
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")


def _plain_core_pattern() -> bool:
    try:
        pattern = CORE_PATTERN.read_text().strip()
    except OSError:
        return False
    return bool(pattern) and not pattern.startswith("|") and "/" not in pattern


pytestmark = pytest.mark.skipif(
    not _plain_core_pattern(),
    reason="the kernel's core_pattern does not write plain core files into the working directory",
)


def _cores_on(command: list[str]) -> list[str]:
    """``command`` run with ``ulimit -c unlimited`` (a shell sets the limit, then execs)."""
    return ["/bin/sh", "-c", 'ulimit -c unlimited && exec "$@"', "sh", *command]


@pytest.fixture
def scratch() -> Iterator[Path]:
    root = make_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _cores(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name == "core" or p.name.startswith("core.")]


def _assert_no_secret_in_cores(directory: Path, *secrets: str) -> None:
    for core in _cores(directory):
        data = core.read_bytes()
        for secret in secrets:
            for encoding in ("ascii", "utf-16-le", "utf-32-le"):
                assert secret.encode(encoding) not in data, f"{core} holds the secret"
        pytest.fail(f"a core file was written: {core} ({len(data)} bytes)")


def test_break6_pkcardd_aborted_with_a_pin_in_memory_leaves_no_core(scratch: Path) -> None:
    assert load_profile("pk-regular").secret_value(SecretRef.PIN) != SECRET_PIN
    workdir = scratch / "cwd"
    workdir.mkdir()
    log = scratch / "pkcardd.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(_cores_on(daemon_command(scratch)), stderr=stderr,
                                   stdout=subprocess.DEVNULL, cwd=workdir)
    socket_path = scratch / "run" / "pkcardd.sock"
    try:
        serving.wait_serving(process, socket_path, log.read_text, process.kill)
        with PkcardClient(socket_path, timeout=20) as client, pytest.raises(WrongPin):
            client.verify_pin(PK_READER, PinRef.PIN, SECRET_PIN)
        process.send_signal(signal.SIGABRT)
        assert process.wait(timeout=30) == -signal.SIGABRT
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _assert_no_secret_in_cores(workdir, SECRET_PIN)


# A child that enters a program's real entry point, which must switch core dumps
# off first; the next step of that program is replaced by "hold a secret, abort".
_CHILD = """
import os, sys
secret = bytearray(sys.argv[1].encode())
def hold_and_abort(*args, **kwargs):
    copy = bytes(secret) + b"|" + bytes(secret)
    os.abort()
import {module} as entry
entry.{step} = hold_and_abort
entry.main({argv})
"""


@pytest.mark.parametrize(
    ("program", "module", "step", "argv"),
    [
        ("pkpin", "pkcard.tools.pkpin.cli", "run", "['status']"),
        ("pkcard-backend", "pkcard.backend.main", "_parser", "[]"),
        ("pkcardd", "pkcard.daemon.main", "_parser", "[]"),
    ],
)
def test_break6_entry_point_holding_a_secret_aborts_without_a_core(
    scratch: Path, program: str, module: str, step: str, argv: str
) -> None:
    workdir = scratch / program
    workdir.mkdir()
    code = _CHILD.format(module=module, step=step, argv=argv)
    done = subprocess.run(_cores_on([sys.executable, "-c", code, SECRET_PASSWORD]), cwd=workdir,
                          capture_output=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONFAULTHANDLER": ""})
    assert done.returncode == -signal.SIGABRT, done.stderr.decode(errors="replace")
    _assert_no_secret_in_cores(workdir, SECRET_PASSWORD)
