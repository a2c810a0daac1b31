"""Issue #14 G2: the daemon's socket for each allowed user (pkcard.daemon.user_sockets).

The kernel lets only that user connect (POSIX ACLs; for the daemon's own
uid, plain modes); the gRPC server on it knows every caller is that user.
The second-user side (who cannot connect, who gets no socket) is in
tests/reliability/test_user_socket_peers.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import PK_READER, RunningDaemon, make_root, start_daemon

from pkcard.client import PkcardClient
from pkcard.daemon.user_sockets import ACL_XATTR, R, W, X, acl_granting, grant_only
from pkcard.endpoint import USER_SOCKET_VARIABLE, USERS_DIR_NAME, connect_socket, user_socket
from pkcard.errors import WrongPin
from pkcard.pin import PinRef

WRONG_PIN = "40404041"


@pytest.fixture
def user_client(pkcardd: RunningDaemon) -> Iterator[PkcardClient]:
    pkcardd.insert(PK_READER, "pk-regular")
    with pkcardd.client(timeout=10.0) as client:
        yield client


def test_the_daemon_offers_its_own_user_a_socket_only_it_can_use(pkcardd: RunningDaemon) -> None:
    mine = user_socket(pkcardd.socket_path, os.geteuid())
    assert mine == pkcardd.socket_path.parent / USERS_DIR_NAME / str(os.geteuid()) / "pkcardd.sock"
    assert stat.S_ISSOCK(mine.lstat().st_mode)
    assert stat.S_IMODE(mine.lstat().st_mode) == 0o600
    assert stat.S_IMODE(mine.parent.lstat().st_mode) == 0o700
    assert stat.S_IMODE(mine.parent.parent.lstat().st_mode) == 0o711
    assert connect_socket(pkcardd.socket_path, {}) == mine
    assert connect_socket(pkcardd.socket_path, {USER_SOCKET_VARIABLE: "0"}) == pkcardd.socket_path
    # no socket for a uid the daemon does not serve: the public one
    assert connect_socket(pkcardd.socket_path, {}, uid=4242) == pkcardd.socket_path


def test_a_call_on_the_user_socket_is_audited_with_our_uid_and_no_pid(
    pkcardd: RunningDaemon, user_client: PkcardClient
) -> None:
    with pytest.raises(WrongPin):
        user_client.verify_pin(PK_READER, PinRef.PIN, WRONG_PIN)
    records = [json.loads(line) for line in pkcardd.audit_path.read_text().splitlines()]
    last = [r for r in records if r["operation"] == "VerifyPin"][-1]
    assert last["outcome"] == "WRONG_PIN"
    assert last["uid"] == os.geteuid()
    assert last.get("pid") is None  # the kernel checked the user; no process is named
    assert f"VerifyPin reader={PK_READER!r} uid={os.geteuid()} " in pkcardd.stderr()


def test_user_sockets_are_gone_after_stop_and_cleared_at_start() -> None:
    root = make_root()
    try:
        stale = root / "run" / USERS_DIR_NAME / "4242"
        stale.mkdir(parents=True, mode=0o700)
        (root / "run").chmod(0o700)
        running = start_daemon(root)
        try:
            assert not stale.exists()
            mine = user_socket(running.socket_path, os.geteuid())
            assert mine.is_socket()
        finally:
            running.close()
        assert not mine.exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_acl_grants_one_uid_and_nobody_else(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"")
    try:
        grant_only(target, 4242, R | W, owner=0)
    except OSError as exc:
        pytest.skip(f"no POSIX ACLs here: {exc}")
    raw = os.getxattr(target, ACL_XATTR)
    assert raw == acl_granting(4242, R | W, owner=0)
    version, = struct.unpack_from("<I", raw)
    entries = [struct.unpack_from("<HHI", raw, 4 + 8 * i) for i in range((len(raw) - 4) // 8)]
    assert version == 2
    # owner ---, user:4242 rw-, group ---, mask rw-, other ---
    assert entries == [(0x01, 0, 0xFFFFFFFF), (0x02, R | W, 4242), (0x04, 0, 0xFFFFFFFF),
                       (0x10, R | W, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    assert stat.S_IMODE(target.stat().st_mode) == 0o060  # the group bits show the mask
    own = tmp_path / "d"
    own.mkdir()
    grant_only(own, os.geteuid(), X, owner=R | W | X)
    assert stat.S_IMODE(own.stat().st_mode) == 0o700


def _answer(path: Path) -> tuple[socket.socket, bytes]:
    """Connect, send the HTTP/2 preface and empty SETTINGS; the first bytes back (b"": closed)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(30)
    conn.connect(str(path))
    try:
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
        return conn, conn.recv(64)
    except (BrokenPipeError, ConnectionResetError):  # closed before or after our bytes
        return conn, b""


def test_a_user_socket_takes_at_most_max_connections_per_uid() -> None:
    root = make_root()
    config = root / "pkcardd.toml"
    config.write_text("[limits]\nmax_connections_per_uid = 2\n")
    running = start_daemon(root, "--config", str(config))
    held: list[socket.socket] = []
    try:
        mine = user_socket(running.socket_path, os.geteuid())
        answers = []
        for _ in range(3):
            conn, answer = _answer(mine)
            held.append(conn)
            answers.append(answer)
        assert answers[0][3] == answers[1][3] == 0x04  # the server's SETTINGS frame
        assert answers[2] == b""  # the third is closed at accept
    finally:
        for conn in held:
            conn.close()
        running.close()
        shutil.rmtree(root, ignore_errors=True)
