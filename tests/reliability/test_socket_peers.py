"""Socket permissions and the allow-list, tested with a second, unprivileged user (useradd).

The public socket is mode 0660 (owner and the pkcard group); a user outside
both cannot connect at all, even when every directory on the way is
traversable. A user who can reach the socket (its group) is then judged by
the daemon's allow-list on its SO_PEERCRED uid, with a real gRPC call from a
process running as that user. The test user is removed afterwards.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from multiprocessing.queues import Queue
from pathlib import Path

import pytest
from daemon_harness import RunningDaemon, make_root, start_daemon
from dropped_uid import spawn_as

from pkcard.client import PkcardClient
from pkcard.errors import AccessDenied

USER = f"pkrel{os.getpid() % 100000}"
SYSTEM_PYTHON = "/usr/bin/python3"  # the venv's interpreter lives under /root, mode 0700

PROBE = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("refused")
else:
    print("connected")
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None or not Path(SYSTEM_PYTHON).exists(),
    reason="needs root, useradd and /usr/bin/python3",
)


@pytest.fixture
def stranger() -> Iterator[pwd.struct_passwd]:
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    USER], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(USER)
    finally:
        subprocess.run(["userdel", USER], check=False, capture_output=True)


@pytest.fixture
def daemon() -> Iterator[RunningDaemon]:
    root = make_root()
    running = start_daemon(root)
    yield running
    running.close()
    shutil.rmtree(root, ignore_errors=True)


def probe_as(user: pwd.struct_passwd, socket_path: Path) -> str:
    done = subprocess.run([SYSTEM_PYTHON, "-c", PROBE, str(socket_path)], user=user.pw_uid,
                          group=user.pw_gid, extra_groups=[], capture_output=True, text=True,
                          timeout=30, check=False, cwd="/")
    return done.stdout.strip() or done.stderr.strip()


def test_a_user_outside_owner_and_group_cannot_connect(
    stranger: pwd.struct_passwd, daemon: RunningDaemon
) -> None:
    socket_path = daemon.socket_path
    mode = stat.S_IMODE(socket_path.stat().st_mode)
    assert mode == 0o660
    assert stat.S_IMODE(socket_path.parent.stat().st_mode) & 0o022 == 0
    assert probe_as(stranger, socket_path) == "refused"
    # even with every directory on the way opened for traversal, the socket's mode holds
    daemon.root.chmod(0o711)
    socket_path.parent.chmod(0o711)
    assert probe_as(stranger, socket_path) == "refused"
    # and root (the daemon's own uid) still gets in
    with daemon.client(timeout=10) as client:
        assert client.list_readers()
    callers = {json.loads(line).get("uid") for line in daemon.audit_path.read_text().splitlines()}
    assert stranger.pw_uid not in callers


def _list_readers(socket_path: str, answers: Queue[str]) -> None:
    """In a spawned child, already the user (see ``dropped_uid``): make one real gRPC call."""
    try:
        with PkcardClient(socket_path, timeout=20) as client:
            client.list_readers()
    except AccessDenied:
        answers.put("denied")
    except Exception as exc:  # reported to the test, which fails on anything unexpected
        answers.put(f"{type(exc).__name__}: {exc}")
    else:
        answers.put("allowed")


def call_as(user: pwd.struct_passwd, socket_path: Path) -> str:
    child = spawn_as(user.pw_uid, user.pw_gid, [], _list_readers, str(socket_path))
    try:
        answer: str = child.get(timeout=60)
    finally:
        exitcode = child.close(60)
    assert exitcode == 0, f"the client process ended with {exitcode}"
    return answer


def _reachable_daemon(user: pwd.struct_passwd, access: str) -> tuple[Path, RunningDaemon]:
    """A daemon whose socket the user can connect to (socket group), with ``access`` rules."""
    root = make_root()
    root.chmod(0o711)
    config = root / "pkcardd.toml"
    config.write_text(access)
    group = grp.getgrgid(user.pw_gid).gr_name
    running = start_daemon(root, "--config", str(config), "--socket-group", group)
    running.socket_path.parent.chmod(0o711)
    return root, running


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        ('[access]\nusers = ["root"]\ngroups = []\n', "denied"),
        ('[access]\nusers = ["root", "{user}"]\ngroups = []\n', "allowed"),
    ],
)
def test_the_allow_list_decides_for_a_user_who_can_reach_the_socket(
    stranger: pwd.struct_passwd, access: str, expected: str
) -> None:
    """The socket lets the user in (its group); SO_PEERCRED and the allow-list decide."""
    root, running = _reachable_daemon(stranger, access.format(user=stranger.pw_name))
    try:
        assert call_as(stranger, running.socket_path) == expected
        records = [json.loads(line) for line in running.audit_path.read_text().splitlines()]
        refused = [
            r for r in records
            if r.get("uid") == stranger.pw_uid and r.get("outcome") == "PERMISSION_DENIED"
        ]
        # a refusal is audited with the caller's uid (SO_PEERCRED); an allowed call is not refused
        assert bool(refused) == (expected == "denied")
    finally:
        running.close()
        shutil.rmtree(root, ignore_errors=True)
