"""Break 4 of issue #12: the path to the socket can be trusted.

The attack from the issue, with real processes: pkcardd's socket directory
sits under a 0777 non-sticky parent; another user (``nobody``) renames
``run/`` away, puts its own directory and listening socket in its place and
records every byte it receives. Root's :class:`PkcardClient`, the async
client and pkpin must refuse with :class:`UntrustedDaemonSocket` naming the
impostor's uid, and the impostor must receive no byte (so no PIN). A socket
file and directory that look right but whose listener runs as another user
is caught by SO_PEERCRED. pkcardd itself refuses to start under such a parent.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from daemon_harness import PK_READER, RunningDaemon, daemon_command, make_root, wait_serving

from pkcard.aio_client import AsyncPkcardClient
from pkcard.client import PkcardClient
from pkcard.errors import UntrustedDaemonSocket
from pkcard.pin import PinRef
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.socket_trust import trusted_uids
from pkcard.tools.pkpin.cli import run as pkpin
from pkcard.tools.pkpin.messages import ExitCode

PIN = load_profile("pk-regular").secret_value(SecretRef.PIN)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setuid to nobody)")


@pytest.fixture
def nobody() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody")


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """``<root>/open``: the socket directory's parent; traversable by everyone."""
    root = make_root()
    root.chmod(0o711)
    parent = root / "open"
    parent.mkdir(mode=0o755)
    yield parent
    shutil.rmtree(root, ignore_errors=True)


def _impostor(uid: int, gid: int, run_dir: str, steal: bool, ready: Queue[str],
              got: Queue[int], stop: Event) -> None:
    """In a spawned child: listen on ``run_dir/pkcardd.sock`` as ``uid``; count bytes received.

    ``steal``: rename the real ``run_dir`` away first and make our own (the
    parent must let us). Otherwise bind as root in place, then drop to ``uid``
    before ``listen``: the file and directory are root's, the listener is not.
    """
    import threading  # noqa: PLC0415

    path = os.path.join(run_dir, "pkcardd.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if not steal:
        listener.bind(path)
        os.chmod(path, 0o666)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if steal:
        os.rename(run_dir, run_dir + ".real")
        os.mkdir(run_dir, 0o755)
        listener.bind(path)
        os.chmod(path, 0o666)
    listener.listen(16)
    listener.settimeout(0.2)
    received = 0

    def serve() -> None:
        nonlocal received
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.5)
            try:
                while data := conn.recv(65536):
                    received += len(data)
            except OSError:
                pass
            conn.close()

    worker = threading.Thread(target=serve)
    worker.start()
    ready.put("listening")
    stop.wait(120)
    worker.join()
    got.put(received)


def _start_impostor(user: pwd.struct_passwd, run_dir: Path, *, steal: bool
                    ) -> tuple[multiprocessing.process.BaseProcess, Queue[int], Event]:
    context = multiprocessing.get_context("spawn")
    ready: Queue[str] = context.Queue()
    got: Queue[int] = context.Queue()
    stop = context.Event()
    child = context.Process(target=_impostor, args=(user.pw_uid, user.pw_gid, str(run_dir),
                                                    steal, ready, got, stop))
    child.start()
    assert ready.get(timeout=60) == "listening"
    return child, got, stop


def _bytes_received(child: multiprocessing.process.BaseProcess, got: Queue[int],
                    stop: Event) -> int:
    stop.set()
    received = got.get(timeout=60)
    child.join(30)
    return received


def _assert_names_both(error: UntrustedDaemonSocket, impostor: int) -> None:
    assert error.found_uid == impostor
    assert 0 in error.trusted_uids
    assert f"uid {impostor}" in str(error)
    assert "0" in str(error).split("only uids", 1)[1]


def _start_under(parent: Path) -> RunningDaemon:
    """A real pkcardd whose socket directory is ``parent/run``."""
    root = parent.parent
    command = daemon_command(root)
    command[command.index("--socket-dir") + 1] = str(parent / "run")
    stderr_path = root / "pkcardd.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(command, stderr=stderr, stdout=subprocess.DEVNULL)
    running = RunningDaemon(root, process, stderr_path, root / "audit.jsonl",
                            parent / "run" / "pkcardd.sock")
    wait_serving(running)
    return running


def test_break4_pkcardd_refuses_a_socket_dir_under_a_world_writable_parent(
    open_parent: Path,
) -> None:
    open_parent.chmod(0o777)
    command = daemon_command(open_parent.parent)
    command[command.index("--socket-dir") + 1] = str(open_parent / "run")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert f"{open_parent} (mode 0777) is writable by group or others" in done.stderr
    # a sticky parent (like /tmp) is fine: others cannot rename what they do not own
    open_parent.chmod(0o1777)
    running = _start_under(open_parent)
    try:
        with running.client(timeout=20) as client:
            assert client.list_readers()
    finally:
        running.close()


@pytest.fixture
def swapped(open_parent: Path, nobody: pwd.struct_passwd) -> Iterator[tuple[Path, Path]]:
    """A real daemon under ``open_parent``; then the parent is opened and ``run/`` stolen."""
    running = _start_under(open_parent)
    with running.client(timeout=20) as client:  # the real daemon passes the client's check
        assert client.get_card(PK_READER).pk is not None
    open_parent.chmod(0o777)  # after start: the daemon could not have known
    yield open_parent / "run", running.stderr_path
    running.close()


def test_break4_a_root_client_sends_no_pin_to_a_swapped_in_socket(
    swapped: tuple[Path, Path], nobody: pwd.struct_passwd
) -> None:
    run_dir, _ = swapped
    child, got, stop = _start_impostor(nobody, run_dir, steal=True)
    socket_path = run_dir / "pkcardd.sock"
    try:
        with PkcardClient(socket_path, timeout=10) as client, \
                pytest.raises(UntrustedDaemonSocket) as refused:
            client.verify_pin(PK_READER, PinRef.PIN, PIN)
        _assert_names_both(refused.value, nobody.pw_uid)

        async def aio() -> None:
            async with AsyncPkcardClient(socket_path, timeout=10) as client:
                await client.verify_pin(PK_READER, PinRef.PIN, PIN)

        with pytest.raises(UntrustedDaemonSocket) as refused:
            asyncio.run(aio())
        _assert_names_both(refused.value, nobody.pw_uid)
        out, err = io.StringIO(), io.StringIO()
        code = pkpin(["--socket", str(socket_path), "status"], environ={}, out=out, err=err)
        assert code is ExitCode.DAEMON, err.getvalue()
    finally:
        received = _bytes_received(child, got, stop)
    assert received == 0


def test_break4_so_peercred_catches_a_listener_of_another_user(
    nobody: pwd.struct_passwd,
) -> None:
    """Directory and socket file are root's; the process listening is not."""
    assert {0, os.geteuid()} <= trusted_uids({})
    assert nobody.pw_uid not in trusted_uids({})
    assert nobody.pw_uid in trusted_uids({"PKCARD_DAEMON_USER": "nobody"})
    assert 12345 in trusted_uids({"PKCARD_DAEMON_USER": "12345"})
    root = make_root()
    root.chmod(0o711)
    run_dir = root / "run"
    run_dir.mkdir(mode=0o755)
    child, got, stop = _start_impostor(nobody, run_dir, steal=False)
    try:
        assert (run_dir / "pkcardd.sock").stat().st_uid == 0
        with PkcardClient(run_dir / "pkcardd.sock", timeout=10) as client, \
                pytest.raises(UntrustedDaemonSocket) as refused:
            client.verify_pin(PK_READER, PinRef.PIN, PIN)
        _assert_names_both(refused.value, nobody.pw_uid)
        assert "listening on it runs as another user" in str(refused.value)
    finally:
        received = _bytes_received(child, got, stop)
        shutil.rmtree(root, ignore_errors=True)
    assert received == 0
