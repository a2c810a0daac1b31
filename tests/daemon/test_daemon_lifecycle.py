"""The daemon process: access control, refusing unsafe directories, SIGTERM, audit at exit."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from daemon_harness import KZZ_READER, PK_READER, daemon_command, start_daemon

from pkcard.client import PkcardClient
from pkcard.daemon.audit import verify_bytes
from pkcard.errors import AccessDenied, DaemonBusy, DaemonUnavailable, PkcardError


def test_caller_outside_the_allow_list_is_denied_and_audited(private_root: Path) -> None:
    config = private_root / "pkcardd.toml"
    config.write_text("[access]\nusers = []\ngroups = []\n")
    daemon = start_daemon(private_root, "--config", str(config))
    try:
        with daemon.client(timeout=10.0) as client, pytest.raises(AccessDenied) as denied:
            client.list_readers()
        assert "not allowed" in str(denied.value)
    finally:
        daemon.close()
    records = [json.loads(line) for line in daemon.audit_path.read_text().splitlines()]
    refused = [r for r in records if r["outcome"] == "PERMISSION_DENIED"]
    assert refused
    assert refused[0]["operation"] == "/pkcard.v1.ReaderService/ListReaders"
    assert isinstance(refused[0]["uid"], int)


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_refuses_to_start_in_a_loose_socket_directory(private_root: Path, mode: int) -> None:
    run = private_root / "run"
    run.mkdir()
    run.chmod(mode)
    result = subprocess.run(daemon_command(private_root), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert "refusing socket directory" in result.stderr
    assert "too open" in result.stderr
    assert not (run / "pkcardd.sock").exists()


def test_refuses_a_socket_directory_that_is_a_symlink(private_root: Path) -> None:
    target = private_root / "elsewhere"
    target.mkdir(mode=0o700)
    (private_root / "run").symlink_to(target)
    result = subprocess.run(daemon_command(private_root), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert "not a directory" in result.stderr


def test_refuses_to_append_to_a_tampered_audit_log(private_root: Path) -> None:
    daemon = start_daemon(private_root)
    daemon.close()
    lines = daemon.audit_path.read_bytes().splitlines(keepends=True)
    daemon.audit_path.write_bytes(b"".join(lines[1:]))  # drop the first record
    result = subprocess.run(daemon_command(private_root), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert "fails verification" in result.stderr


def test_sigterm_lets_in_flight_calls_finish_and_closes_the_audit(private_root: Path) -> None:
    daemon = start_daemon(private_root)
    outcomes: list[object] = []
    started = threading.Barrier(9)

    def call() -> None:
        with daemon.client(timeout=30.0) as client:
            started.wait()
            for _ in range(20):
                try:
                    outcomes.append(client.get_card(PK_READER).kind)
                except PkcardError as exc:
                    outcomes.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.wait()
    daemon.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(60)
    assert daemon.process.wait(timeout=60) == 0
    assert len(outcomes) == 160
    unexpected = [o for o in outcomes if isinstance(o, PkcardError)
                  and not isinstance(o, DaemonUnavailable)]
    assert unexpected == []
    data = daemon.audit_path.read_bytes()
    assert verify_bytes(data).intact
    assert json.loads(data.splitlines()[-1])["operation"] == "DAEMON_STOP"
    assert not daemon.socket_path.exists()
    daemon.close()


def test_socket_activation_serves_on_the_inherited_socket(private_root: Path) -> None:
    public = private_root / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(public))
    listener.listen()
    # Like systemd: the socket is fd 3, LISTEN_PID is the daemon's own pid (kept by exec).
    launcher = (
        "import os, sys; fd = int(sys.argv[1]); fd != 3 and (os.dup2(fd, 3), os.close(fd)); "
        "os.environ['LISTEN_PID'] = str(os.getpid()); os.environ['LISTEN_FDS'] = '1'; "
        "os.execv(sys.executable, sys.argv[2:])"
    )
    fd = listener.fileno()
    command = [sys.executable, "-c", launcher, str(fd), *daemon_command(private_root)]
    log = (private_root / "pkcardd.log").open("wb")
    process = subprocess.Popen(command, stderr=log, pass_fds=(fd,))
    try:
        with PkcardClient(public, timeout=20.0) as client:
            assert {s.reader.name for s in client.list_readers()} == {PK_READER, KZZ_READER}
        assert not (private_root / "run" / "pkcardd.sock").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        log.close()
        listener.close()


def test_beyond_max_concurrent_rpcs_calls_are_refused_as_busy(private_root: Path) -> None:
    config = private_root / "pkcardd.toml"
    config.write_text("[limits]\nmax_concurrent_rpcs = 1\n")
    daemon = start_daemon(private_root, "--config", str(config))
    try:
        with daemon.client(timeout=10.0) as watcher, daemon.client(timeout=10.0) as other:
            stream = watcher.watch_events()
            next(stream)  # the stream now holds the only slot
            with pytest.raises(DaemonBusy):
                other.list_readers()
            stream.close()
    finally:
        daemon.close()


def test_refuses_a_socket_directory_too_long_for_unix_sockets(private_root: Path) -> None:
    command = daemon_command(private_root)
    command[command.index("--socket-dir") + 1] = str(private_root / ("d" * 90))
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "too long for Unix socket paths" in result.stderr


def test_a_second_daemon_on_the_same_directory_refuses_to_start(private_root: Path) -> None:
    first = start_daemon(private_root)
    try:
        result = subprocess.run(daemon_command(private_root), capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 1
        assert "another pkcardd running" in result.stderr
        with first.client(timeout=10.0) as client:  # the first one is unharmed
            assert len(client.list_readers()) == 2
    finally:
        first.close()
