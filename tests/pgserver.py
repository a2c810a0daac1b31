"""The private PostgreSQL server of the test session, and real ``pkcard-backend`` processes on it.

``pg_server`` (session scope) initdb's a cluster into a folder under /tmp,
starts it on its own Unix socket (as the ``postgres`` user when the tests run
as root) and stops it at the end. Without Debian's PostgreSQL the tests that
use it skip on a developer machine and FAIL in CI (``CI`` set): the
multi-instance tests must never silently not run there.

``pg_database`` gives each test a fresh database. :class:`BackendProcess`
runs ``pkcard-backend --db postgresql://...`` as a real process on a free
TCP port.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from pkcard.backend.pg_harness import PostgresMissing, PostgresServer, find_bin_dir
from pkcard.backend.service import CLIENT_METADATA_KEY
from pkcard.backend.v1 import backend_pb2_grpc as pb_grpc

STARTUP_LIMIT_S = 30.0
BACKEND_EXE = Path(sys.executable).parent / "pkcard-backend"
_names = itertools.count(1)


def _unavailable(reason: str) -> None:
    message = f"PostgreSQL unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the whole session (fsync off: tests, not figures)."""
    if find_bin_dir() is None:
        _unavailable("no /usr/lib/postgresql/<version>/bin (install Debian's postgresql)")
    try:
        server = PostgresServer.create(fsync=False)
    except (PostgresMissing, KeyError, subprocess.CalledProcessError) as exc:
        _unavailable(f"initdb failed: {exc}")
        raise
    try:
        server.start()
    except subprocess.CalledProcessError:
        log = server.log()
        server.remove()
        pytest.fail(f"postgres did not start:\n{log}")
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server; its URL."""
    return pg_server.create_database(f"t{os.getpid()}_{next(_names)}")


def md(client: str) -> tuple[tuple[str, str], ...]:
    return ((CLIENT_METADATA_KEY, client),)


@dataclass
class BackendProcess:
    """A ``pkcard-backend`` process and a channel to it."""

    process: subprocess.Popen[bytes]
    log_path: Path
    port: int
    channel: grpc.Channel

    @property
    def session(self) -> pb_grpc.SessionServiceStub:
        return pb_grpc.SessionServiceStub(self.channel)

    @property
    def admin(self) -> pb_grpc.RegistryAdminServiceStub:
        return pb_grpc.RegistryAdminServiceStub(self.channel)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no handler, no rollback, no goodbye."""
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> int:
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def backend_command(db: str, anchors: tuple[Path, Path], *extra: str) -> list[str]:
    return [str(BACKEND_EXE), "--db", db, "--listen", "127.0.0.1:0", "--environment", "test",
            "--pk-anchor", str(anchors[0]), "--kzz-anchor", str(anchors[1]),
            "--dev-metadata-identity", "--admin", "registry-admin",
            "--restricted-authorization", "I002", *extra]


def start_backends(db: str, anchors: tuple[Path, Path], log_dir: Path,
                   count: int) -> list[BackendProcess]:
    """Start ``count`` instances at once and wait until each listens."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []
    for _ in range(count):
        log_path = log_dir / f"backend-{next(_names)}.log"
        with log_path.open("ab") as log:
            started.append((subprocess.Popen(backend_command(db, anchors), stderr=log,
                                             stdout=subprocess.DEVNULL), log_path))
    running: list[BackendProcess] = []
    for process, log_path in started:
        port = _wait_listening(process, log_path)
        running.append(BackendProcess(process, log_path, port,
                                      grpc.insecure_channel(f"127.0.0.1:{port}")))
    return running


def _wait_listening(process: subprocess.Popen[bytes], log_path: Path) -> int:
    give_up = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < give_up:
        found = re.search(r"listening on port (\d+)", log_path.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    pytest.fail(f"pkcard-backend did not start:\n{log_path.read_text(errors='replace')}")
