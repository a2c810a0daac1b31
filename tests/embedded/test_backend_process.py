"""``pkcardd --simulated`` runs its embedded test backend as a child process (issue #14, G6).

Real ``pkcardd`` processes: the backend answers from a process of its own (the
daemon's child), the daemon's process loads none of the backend, the child
stops with the daemon (SIGTERM or SIGKILL of the daemon), and a child that dies
on its own is reported in the daemon's log.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from embeddedrig import EmbeddedDaemon, start_daemon

from pkcard.daemon.simulation import DEFAULT_CARDS

PK_READER = DEFAULT_CARDS[0][0]
WAIT_S = 30.0
BACKEND_MODULES = ("pkcard.backend", "sqlite3", "_sqlite3")


def _children(pid: int) -> list[int]:
    return [int(child) for child in
            Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii").split()]


def _command(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (and, being someone else's child, been reaped or zombie)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1]
        except FileNotFoundError:
            return True
        if state.split()[0] in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _backend_child(daemon: EmbeddedDaemon) -> int:
    children = [pid for pid in _children(daemon.process.pid)
                if "pkcard.daemon.embedded_backend" in _command(pid)]
    assert len(children) == 1, children
    return children[0]


def test_the_backend_answers_from_a_child_process(daemon: EmbeddedDaemon) -> None:
    child = _backend_child(daemon)
    assert daemon.challenge()  # the developer's socket: the child answers
    with daemon.client() as client:
        assert client.get_pin_status(PK_READER)
    # The daemon's process maps neither SQLite nor the backend's libraries; the child does.
    assert "libsqlite3" not in _maps(daemon.process.pid)
    assert "libsqlite3" in _maps(child)
    assert "_rust.abi3.so" not in _maps(daemon.process.pid)  # cryptography: first signature


def test_the_child_writes_no_core(daemon: EmbeddedDaemon) -> None:
    """It holds reactivation passwords: core dumps off, as in pkcard-backend (security.md)."""
    child = _backend_child(daemon)
    limits = Path(f"/proc/{child}/limits").read_text(encoding="ascii")
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"]


def test_the_child_stops_with_the_daemon(root: Path) -> None:
    daemon = start_daemon(root)
    child = _backend_child(daemon)
    assert daemon.stop() == 0
    assert _gone(child)
    assert not daemon.backend_socket.exists()


def test_the_child_stops_when_the_daemon_is_killed(root: Path) -> None:
    daemon = start_daemon(root)
    child = _backend_child(daemon)
    daemon.process.kill()  # no chance to stop it: its standard input closes
    daemon.process.wait()
    try:
        assert _gone(child)
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)


def test_a_dead_backend_is_reported(daemon: EmbeddedDaemon) -> None:
    child = _backend_child(daemon)
    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + WAIT_S
    while "exited with status" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"the embedded test backend (pid {child}) exited with status -9" in daemon.log()
    with daemon.client() as client:  # the daemon itself keeps serving its cards
        assert client.get_pin_status(PK_READER)
