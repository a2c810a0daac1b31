"""Socket permissions, tested with a second, unprivileged user created here (useradd).

The public socket is mode 0660 (owner and the pkcard group); a user outside
both cannot connect at all, even when every directory on the way is
traversable. The test user is removed afterwards.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import RunningDaemon, make_root, start_daemon

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
