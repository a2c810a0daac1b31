"""pkpin on a pty, through a real ``pkcardd --simulated`` process (``--socket``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from daemon_harness import PK_READER, RunningDaemon
from pkpin_secrets import NEW_PIN, PIN, PUK
from ptyrun import PkpinSession, base_environment, run_pkpin

from pkcard.errors import WrongPin
from pkcard.pin import PinRef, PinState
from pkcard.tools.pkpin.commands import NEW_PIN_ATTEMPTS
from pkcard.tools.pkpin.messages import ExitCode

WRONG = "11223344"


def args(daemon: RunningDaemon, *rest: str) -> list[str]:
    return ["--socket", str(daemon.socket_path), *rest]


def pin_tries(daemon: RunningDaemon) -> int:
    with daemon.client() as client:
        (status,) = client.get_pin_status(PK_READER, PinRef.PIN)
    tries: int = status.tries_left
    return tries


def spend_pin_tries(daemon: RunningDaemon, count: int) -> None:
    with daemon.client() as client:
        for _ in range(count):
            with pytest.raises(WrongPin):
                client.verify_pin(PK_READER, PinRef.PIN, WRONG)


def change_pin(session: PkpinSession, old: str, new: str) -> None:
    session.type_secret("Current PIN: ", old)
    session.type_secret("New PIN: ", new)
    session.type_secret("New PIN again: ", new)


def test_status_json_through_the_daemon(daemon: RunningDaemon) -> None:
    code, out = run_pkpin(args(daemon, "status", "--json"))
    assert code == ExitCode.OK
    document = json.loads(out)
    assert document["reader"] == PK_READER
    assert document["card"]["serial"] == "PK0000100001"
    states = {s["ref"]: s["state"] for s in document["secrets"]}
    assert states["PIN"] == "VERIFIABLE"
    assert states["SPIN"] == "VERIFIABLE"


def test_socket_from_the_environment(daemon: RunningDaemon) -> None:
    env = base_environment(PKCARD_SOCKET=str(daemon.socket_path))
    code, out = run_pkpin(["readers"], env)
    assert code == ExitCode.OK
    assert f"{PK_READER}: professional card (PK) (PIN pad)" in out
    assert "health insurance card (KZZ)" in out


def test_change_pin_through_the_daemon(daemon: RunningDaemon) -> None:
    session = PkpinSession(args(daemon, "change-pin"))
    change_pin(session, PIN, NEW_PIN)
    session.expect_exit(ExitCode.OK)
    assert "PIN changed." in session.rest()
    session.assert_no_secret_shown()
    with daemon.client() as client:  # the new PIN is the card's PIN now
        assert client.verify_pin(PK_READER, PinRef.PIN, NEW_PIN).state is PinState.VERIFIED
    logs = daemon.stderr() + (daemon.audit_path.read_text() if daemon.audit_path.exists() else "")
    assert "ChangePin" in logs  # the call was logged and audited (DEBUG level) ...
    assert PIN not in logs  # ... without either PIN
    assert NEW_PIN not in logs


def test_wrong_pin_then_last_try_refused_then_confirmed(daemon: RunningDaemon) -> None:
    session = PkpinSession(args(daemon, "change-pin"))
    change_pin(session, WRONG, NEW_PIN)
    session.expect_exit(ExitCode.WRONG_PIN)
    assert "Wrong PIN: 2 tries left" in session.rest()

    spend_pin_tries(daemon, 1)
    assert pin_tries(daemon) == 1

    session = PkpinSession(args(daemon, "change-pin"))
    session.expect("Only 1 try left. A wrong PIN blocks the card. Continue? [y/N] ")
    session.type_line("n")
    session.expect_exit(ExitCode.LAST_TRY_REFUSED)
    rest = session.rest()
    assert "Cancelled: nothing was sent to the card." in rest
    assert "Current PIN" not in rest
    assert pin_tries(daemon) == 1  # nothing spent

    session = PkpinSession(args(daemon, "change-pin"))
    session.expect("Continue? [y/N] ")
    session.type_line("y")
    change_pin(session, PIN, NEW_PIN)
    session.expect_exit(ExitCode.OK)
    assert "PIN changed." in session.rest()
    assert pin_tries(daemon) == 3
    session.assert_no_secret_shown()


def test_confirmed_last_try_blocks_then_unblock(daemon: RunningDaemon) -> None:
    spend_pin_tries(daemon, 2)
    session = PkpinSession(args(daemon, "change-pin", "--confirm-last-try"))
    change_pin(session, WRONG, NEW_PIN)  # no question asked
    session.expect_exit(ExitCode.BLOCKED)
    assert "PIN blocked: unblock it with your PUK (pkpin unblock)" in session.rest()
    assert "Continue?" not in session.transcript

    session = PkpinSession(args(daemon, "unblock"))
    session.type_secret("Current PUK: ", PUK)
    session.type_secret("New PIN: ", NEW_PIN)
    session.type_secret("New PIN again: ", NEW_PIN)
    session.expect_exit(ExitCode.OK)
    assert "PIN unblocked: the new PIN is set." in session.rest()
    assert pin_tries(daemon) == 3
    session.assert_no_secret_shown()


def test_slovenian_weak_pin_through_the_daemon(daemon: RunningDaemon) -> None:
    env = base_environment(LC_ALL="sl_SI.UTF-8")
    session = PkpinSession(args(daemon, "change-pin"), env)
    session.type_secret("Trenutni PIN: ", PIN)
    for _ in range(NEW_PIN_ATTEMPTS):
        session.type_secret("Novi PIN: ", "7777")
    session.expect_exit(ExitCode.REFUSED_PIN)
    assert "Novi PIN ne sme biti ena sama ponovljena števka, kot je 1111." in session.rest()
    assert pin_tries(daemon) == 3


def test_birth_date_refused_by_the_daemon(daemon: RunningDaemon) -> None:
    session = PkpinSession(args(daemon, "change-pin"))
    change_pin(session, PIN, "1981")
    for _ in range(NEW_PIN_ATTEMPTS - 1):  # refused by the daemon's policy: asked again
        session.type_secret("New PIN: ", "1981")
        session.type_secret("New PIN again: ", "1981")
    session.expect_exit(ExitCode.REFUSED_PIN)
    assert "The new PIN must not be your birth date." in session.rest()
    assert pin_tries(daemon) == 3


@pytest.mark.parametrize("path", ["daemon", "simulated"])
def test_both_paths_give_the_same_words(daemon: RunningDaemon, path: str) -> None:
    where = args(daemon) if path == "daemon" else ["--simulated"]
    session = PkpinSession([*where, "change-pin"])
    change_pin(session, WRONG, NEW_PIN)
    session.expect_exit(ExitCode.WRONG_PIN)
    assert session.rest().strip() == "Wrong PIN: 2 tries left"


def test_card_removed(daemon: RunningDaemon) -> None:
    daemon.remove(PK_READER)
    code, out = run_pkpin(args(daemon, "--reader", PK_READER, "status"))
    assert code == ExitCode.CARD
    assert "Card removed: insert the card and try again." in out
    code, out = run_pkpin(args(daemon, "status"))
    assert code == ExitCode.CARD
    assert "No professional card (PK) found in any reader." in out


def test_daemon_unreachable(tmp_path: Path) -> None:
    socket = tmp_path / "absent.sock"
    code, out = run_pkpin(["--socket", str(socket), "status"])
    assert code == ExitCode.DAEMON
    assert f"Cannot reach the card service pkcardd at {socket}" in out
