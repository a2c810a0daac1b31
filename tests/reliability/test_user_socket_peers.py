"""Issue #14 G2: each allowed user's own socket, checked by the kernel, with real second users.

pkcardd offers every allowed user ``users/<uid>/pkcardd.sock`` next to the
public socket, with POSIX ACLs such that only that user can connect. Against
the real daemon process, with two more local users (one on the allow-list,
one only able to reach the public socket through its group):

- the allowed user has a socket of its own, the stranger has none;
- neither can connect to another user's socket (EACCES from the kernel);
- the allowed user's calls on its own socket are its own: the audit record
  carries its uid (and no pid: the kernel's check names no process), and
  with ``PKCARD_USER_SOCKET=0`` the same client goes through the public
  socket's gateway, whose record carries its pid as before;
- the stranger, refused on the public socket as before, is audited there.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from multiprocessing.queues import Queue
from pathlib import Path

import grpc
import pytest
from daemon_harness import PK_READER, RunningDaemon, make_root, start_daemon
from dropped_uid import spawn_as
from test_socket_peers import SYSTEM_PYTHON, probe_as

from pkcard.client import PkcardClient
from pkcard.endpoint import USER_SOCKET_VARIABLE, connect_socket, user_socket
from pkcard.errors import AccessDenied, WrongPin
from pkcard.pin import PinRef
from pkcard.v1 import simulation_pb2, simulation_pb2_grpc

TAG = os.getpid() % 100000
GROUP = f"pkusg{TAG}"
ALLOWED = f"pkusa{TAG}"
STRANGER = f"pkuss{TAG}"
WRONG_PIN = "40404041"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None or not Path(SYSTEM_PYTHON).exists(),
    reason="needs root, useradd and /usr/bin/python3",
)


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture(scope="module")
def users() -> Iterator[tuple[pwd.struct_passwd, pwd.struct_passwd]]:
    """``allowed``: on the allow-list; ``stranger``: reaches the public socket, not allowed."""
    _run("groupadd", "--system", GROUP)
    try:
        for name in (ALLOWED, STRANGER):
            _run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 "--gid", GROUP, name)
        yield pwd.getpwnam(ALLOWED), pwd.getpwnam(STRANGER)
    finally:
        for name in (ALLOWED, STRANGER):
            subprocess.run(["userdel", name], check=False, capture_output=True)
        subprocess.run(["groupdel", GROUP], check=False, capture_output=True)


@pytest.fixture(scope="module")
def daemon(users: object) -> Iterator[RunningDaemon]:
    root = make_root()
    root.chmod(0o711)
    config = root / "pkcardd.toml"
    config.write_text(f'[access]\nusers = ["root", "{ALLOWED}"]\ngroups = []\n')
    running = start_daemon(root, "--config", str(config), "--socket-group", GROUP)
    running.socket_path.parent.chmod(0o711)
    # A channel closed at once: the tests fork (probes, spawned users), and gRPC's
    # fork handlers can hang on a channel still open in this process.
    with grpc.insecure_channel(f"unix:{running.socket_path}") as channel:
        simulation_pb2_grpc.SimulationServiceStub(channel).InsertCard(
            simulation_pb2.InsertCardRequest(reader=PK_READER, profile="pk-regular"), timeout=10)
    yield running
    running.close()
    shutil.rmtree(root, ignore_errors=True)


def _wrong_pin(public: str, gateway: bool, answers: Queue[str]) -> None:
    """In a spawned child, already the user (see ``dropped_uid``): one audited card call."""
    if gateway:
        os.environ[USER_SOCKET_VARIABLE] = "0"
    used = connect_socket(Path(public))
    try:
        with PkcardClient(public, timeout=20) as client:
            client.verify_pin(PK_READER, PinRef.PIN, WRONG_PIN)
    except WrongPin:
        answers.put(f"wrong-pin {os.getpid()} {used}")
    except AccessDenied:
        answers.put(f"denied {os.getpid()} {used}")
    except Exception as exc:  # reported to the test, which fails on anything unexpected
        answers.put(f"{type(exc).__name__}: {exc}")
    else:
        answers.put("verified?")


def call_as(user: pwd.struct_passwd, daemon: RunningDaemon, gateway: bool) -> tuple[str, int, str]:
    child = spawn_as(user.pw_uid, user.pw_gid, [], _wrong_pin, str(daemon.socket_path), gateway)
    try:
        answer: str = child.get(timeout=60)
    finally:
        exitcode = child.close(60)
    assert exitcode == 0, f"the client process ended with {exitcode}"
    outcome, pid, used = answer.split(" ", 2)
    return outcome, int(pid), used


def _records(daemon: RunningDaemon, uid: int, operation: str) -> list[dict[str, object]]:
    records = [json.loads(line) for line in daemon.audit_path.read_text().splitlines()]
    return [r for r in records
            if r.get("uid") == uid and str(r.get("operation")).endswith(operation)]


def test_only_allowed_users_get_a_socket_and_only_they_can_connect_to_it(
    users: tuple[pwd.struct_passwd, pwd.struct_passwd], daemon: RunningDaemon
) -> None:
    allowed, stranger = users
    mine = user_socket(daemon.socket_path, allowed.pw_uid)
    roots = user_socket(daemon.socket_path, 0)
    assert stat.S_ISSOCK(mine.lstat().st_mode)
    assert stat.S_ISSOCK(roots.lstat().st_mode)
    assert not user_socket(daemon.socket_path, stranger.pw_uid).parent.exists()
    # the kernel's check: each socket admits its own user and nobody else
    assert probe_as(allowed, mine) == "connected"
    assert probe_as(allowed, roots) == "refused"
    assert probe_as(stranger, mine) == "refused"
    assert probe_as(stranger, roots) == "refused"
    # the public socket still admits both (their group); the allow-list decides there
    assert probe_as(allowed, daemon.socket_path) == "connected"
    assert probe_as(stranger, daemon.socket_path) == "connected"


def test_a_call_on_a_user_socket_is_that_users_and_the_gateway_still_names_the_pid(
    users: tuple[pwd.struct_passwd, pwd.struct_passwd], daemon: RunningDaemon
) -> None:
    allowed, _ = users
    outcome, _pid, used = call_as(allowed, daemon, gateway=False)
    assert (outcome, used) == ("wrong-pin", str(user_socket(daemon.socket_path, allowed.pw_uid)))
    record = _records(daemon, allowed.pw_uid, "VerifyPin")[-1]
    assert record["outcome"] == "WRONG_PIN"
    assert record.get("pid") is None  # the kernel checked the user; no process is named
    outcome, pid, used = call_as(allowed, daemon, gateway=True)
    assert (outcome, used) == ("wrong-pin", str(daemon.socket_path))
    record = _records(daemon, allowed.pw_uid, "VerifyPin")[-1]
    assert record["pid"] == pid  # SO_PEERCRED through the gateway, as before


def test_a_stranger_uses_the_public_socket_and_is_refused_and_audited_there(
    users: tuple[pwd.struct_passwd, pwd.struct_passwd], daemon: RunningDaemon
) -> None:
    _, stranger = users
    outcome, pid, used = call_as(stranger, daemon, gateway=False)
    assert (outcome, used) == ("denied", str(daemon.socket_path))
    refused = [r for r in _records(daemon, stranger.pw_uid, "VerifyPin")
               if r.get("outcome") == "PERMISSION_DENIED"]
    assert refused
    assert refused[-1]["pid"] == pid
