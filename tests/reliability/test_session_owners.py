"""Break 7 of issue #12: sessions belong to their caller, and they are bounded.

Against the real daemon process, with root and two more local users (both
on the allow-list; one also in the configured admin group) making real
calls from processes running as them:

- another uid's GetSession and RefreshSession answer NOT_FOUND (exactly as
  for an unknown id) and its CloseSession closes nothing; the admin may act;
- one uid cannot take every session slot (limits.max_sessions_per_caller);
- a session not refreshed for the idle time-out, or open longer than the
  maximum lifetime, ends (IDLE_TIMEOUT, LIFETIME_EXCEEDED);
- an OpenSession without a PIN relies only on the same uid's own PIN
  verification of that card, and only for limits.pin_reuse_s.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from multiprocessing.queues import Queue

import pytest
from daemon_harness import KZZ_READER, PK_READER, RunningDaemon, make_root, start_daemon
from dropped_uid import spawn_as

from pkcard.client import PkcardClient
from pkcard.errors import DaemonBusy, PinError, PkcardError, SessionEnded, SessionEndReason
from pkcard.pin import PinRef
from pkcard.sessions import RestrictedMode, RestrictedReason
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.token import NONCE_LENGTH

PIN = load_profile("pk-regular").secret_value(SecretRef.PIN)
PATIENT = "900000011"
TAG = os.getpid() % 100000
OWNER_GROUP = f"pkses{TAG}"
ADMIN_GROUP = f"pkadm{TAG}"
OTHER = f"pkoth{TAG}"
ADMIN = f"pkadu{TAG}"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="needs root, useradd and groupadd",
)


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture(scope="module")
def users() -> Iterator[tuple[pwd.struct_passwd, pwd.struct_passwd]]:
    """``other``: allowed; ``admin``: allowed and in the admin group. Both reach the socket."""
    _run("groupadd", "--system", OWNER_GROUP)
    _run("groupadd", "--system", ADMIN_GROUP)
    try:
        _run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             "--gid", OWNER_GROUP, OTHER)
        _run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             "--gid", ADMIN_GROUP, "--groups", OWNER_GROUP, ADMIN)
        yield pwd.getpwnam(OTHER), pwd.getpwnam(ADMIN)
    finally:
        for user in (OTHER, ADMIN):
            subprocess.run(["userdel", user], check=False, capture_output=True)
        for group in (OWNER_GROUP, ADMIN_GROUP):
            subprocess.run(["groupdel", group], check=False, capture_output=True)


def _daemon(limits: str = "") -> RunningDaemon:
    root = make_root()
    root.chmod(0o711)
    config = root / "pkcardd.toml"
    config.write_text(
        f'[access]\nusers = ["root", "{OTHER}", "{ADMIN}"]\ngroups = []\n'
        f'admin_groups = ["{ADMIN_GROUP}"]\n[limits]\n{limits}'
    )
    running = start_daemon(root, "--config", str(config), "--socket-group", OWNER_GROUP)
    running.socket_path.parent.chmod(0o711)
    return running


@pytest.fixture
def limits() -> str:
    """The ``[limits]`` lines of the test's daemon (overridden by parametrize)."""
    return ""


@pytest.fixture
def daemon(users: object, limits: str) -> Iterator[RunningDaemon]:
    running = _daemon(limits)
    yield running
    running.close()
    shutil.rmtree(running.root, ignore_errors=True)


Action = tuple[str, ...]


def _act(socket_path: str, actions: list[Action], answers: Queue[list[str]]) -> None:
    """In a spawned child, already running as the user: run ``actions``; report each outcome.

    Everything is imported while still root (see ``dropped_uid``).
    """
    results: list[str] = []
    with PkcardClient(socket_path, timeout=30) as client:
        for action in actions:
            try:
                results.append(_one(client, action))
            except PkcardError as exc:
                results.append(type(exc).__name__)
    answers.put(results)


def _one(client: PkcardClient, action: Action) -> str:
    kind = action[0]
    if kind == "get":
        status = client.get_session(action[1])
        return "active" if status.active else f"ended:{status.end_reason.name}"
    if kind == "refresh":
        client.refresh_session(action[1], os.urandom(NONCE_LENGTH))
        return "refreshed"
    if kind == "close":
        return f"closed:{client.close_session(action[1])}"
    if kind == "verify":
        client.verify_pin(action[1], PinRef.PIN, PIN)
        return "verified"
    if kind == "open":
        _open(client, action[1], pin=action[2] if len(action) > 2 else None)
        return "opened"
    raise AssertionError(kind)


def _open(client: PkcardClient, reader: str, pin: str | None = None) -> str:
    """A restricted session on the PK in ``reader`` (no KZZ needed)."""
    opened = client.open_session(reader, os.urandom(NONCE_LENGTH), ["I002"], pin=pin,
                                 restricted=RestrictedMode(RestrictedReason.EMERGENCY, PATIENT))
    return opened.session_id


def as_user(user: pwd.struct_passwd, daemon: RunningDaemon, *actions: Action) -> list[str]:
    child = spawn_as(user.pw_uid, user.pw_gid, os.getgrouplist(user.pw_name, user.pw_gid), _act,
                     str(daemon.socket_path), list(actions))
    try:
        answer: list[str] = child.get(timeout=120)
        return answer
    finally:
        child.close()


def test_break7_another_uid_can_neither_see_nor_refresh_nor_close_a_session(
    users: tuple[pwd.struct_passwd, pwd.struct_passwd], daemon: RunningDaemon
) -> None:
    other, admin = users
    with daemon.client(timeout=30) as client:
        session = _open(client, PK_READER, PIN)
        assert as_user(other, daemon, ("get", session), ("refresh", session),
                       ("close", session), ("get", "no-such-session")) == [
            "SessionNotFound", "SessionNotFound", "closed:False", "SessionNotFound"]
        assert client.get_session(session).active  # untouched
        client.refresh_session(session, os.urandom(NONCE_LENGTH))
        # the admin group may act on any session
        assert as_user(admin, daemon, ("get", session), ("refresh", session),
                       ("close", session)) == ["active", "refreshed", "closed:True"]
        assert client.get_session(session).end_reason is SessionEndReason.CLOSED


@pytest.mark.parametrize("limits", ["max_sessions_per_caller = 2\n"])
def test_break7_one_uid_cannot_take_every_session(
    users: tuple[pwd.struct_passwd, pwd.struct_passwd], daemon: RunningDaemon
) -> None:
    other, _ = users
    with daemon.client(timeout=30) as client:
        first = _open(client, PK_READER, PIN)
        _open(client, PK_READER)  # relies on root's own fresh verification
        with pytest.raises(DaemonBusy, match="max_sessions_per_caller"):
            _open(client, PK_READER)
        # another uid still gets its own session
        assert as_user(other, daemon, ("open", PK_READER, PIN)) == ["opened"]
        assert client.close_session(first)
        _open(client, PK_READER)


@pytest.mark.parametrize("limits", ["session_idle_timeout_s = 2.0\nsession_max_lifetime_s = 6.0\n"])
def test_break7_idle_and_old_sessions_end(daemon: RunningDaemon) -> None:
    with daemon.client(timeout=30) as client:
        idle = _open(client, PK_READER, PIN)
        busy = _open(client, PK_READER)
        opened_at = time.monotonic()
        ended: SessionEnded | None = None
        while time.monotonic() - opened_at < 30:
            time.sleep(0.5)
            try:
                client.refresh_session(busy, os.urandom(NONCE_LENGTH))
            except SessionEnded as exc:
                ended = exc
                break
        assert ended is not None
        assert ended.end_reason is SessionEndReason.LIFETIME_EXCEEDED
        assert client.get_session(idle).end_reason is SessionEndReason.IDLE_TIMEOUT
        assert client.get_session(busy).end_reason is SessionEndReason.LIFETIME_EXCEEDED
    records = daemon.audit_path.read_text()
    assert '"outcome":"IDLE_TIMEOUT"' in records.replace(" ", "")
    assert '"outcome":"LIFETIME_EXCEEDED"' in records.replace(" ", "")


@pytest.mark.parametrize("limits", ["pin_reuse_s = 4.0\n"])
def test_break7_a_session_relies_only_on_the_callers_own_recent_pin(
    users: tuple[pwd.struct_passwd, pwd.struct_passwd], daemon: RunningDaemon
) -> None:
    other, _ = users
    # the PK in the reader without a PIN pad, so "send the PIN" is the only way
    daemon.insert(KZZ_READER, "pk-regular")
    daemon.insert(PK_READER, "kzz")
    with daemon.client(timeout=30) as client:
        client.verify_pin(KZZ_READER, PinRef.PIN, PIN)
        _open(client, KZZ_READER)  # root's own verification, just now
        # the card is verified, but not by this uid: it must send the PIN itself
        # (PIN_ERROR on the wire, with a message naming limits.pin_reuse_s)
        assert as_user(other, daemon, ("open", KZZ_READER), ("verify", KZZ_READER),
                       ("open", KZZ_READER)) == ["PinError", "verified", "opened"]
        time.sleep(5)  # root's verification is now older than pin_reuse_s
        with pytest.raises(PinError, match="pin_reuse_s"):
            _open(client, KZZ_READER)
        _open(client, KZZ_READER, PIN)
