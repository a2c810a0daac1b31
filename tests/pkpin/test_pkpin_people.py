"""pkpin for people (issue #11 F): each behaviour on a pty, simulated and through pkcardd.

The pause after too many wrong PINs is asked for first, a refused new PIN is
asked for again, the PIN-pad notice shows only where it means something, a
closed pipe ends pkpin quietly, help and usage errors speak Slovenian,
``--json`` errors are JSON, ``--reader`` takes a part of a name or a number,
and ``--wait`` waits for a card with a live line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import KZZ_READER, PK_READER, RunningDaemon, make_root, start_daemon
from pkpin_secrets import NEW_PIN, PIN
from ptyrun import REPO, PkpinSession, base_environment, run_pkpin

from pkcard.errors import WrongPin
from pkcard.pin import PinRef
from pkcard.tools.pkpin.messages import ExitCode

SIM = ["--simulated"]
SLOVENIAN = base_environment(LANG="sl_SI.UTF-8")
WRONG = "11223344"
WRONG_PUK = "19283746"


def args(daemon: RunningDaemon, *rest: str) -> list[str]:
    return ["--socket", str(daemon.socket_path), *rest]


def run_split(
    argv: list[str], env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """pkpin on a pty with standard output on a pipe: (exit code, stdout, the terminal)."""
    read_end, write_end = os.pipe()
    session = PkpinSession(argv, env, stdout=write_end)
    os.close(write_end)
    code = session.wait()
    with os.fdopen(read_end, encoding="utf-8") as out:
        return code, out.read(), session.transcript


def pin_tries(daemon: RunningDaemon) -> int:
    with daemon.client() as client:
        (status,) = client.get_pin_status(PK_READER, PinRef.PIN)
    tries: int = status.tries_left
    return tries


@pytest.fixture
def limited() -> Iterator[RunningDaemon]:
    """A pkcardd that pauses PIN entry for a card after 2 wrong secrets in an hour."""
    root = make_root()
    config = root / "pkcardd.toml"
    config.write_text("[limits]\nfailed_pin_limit = 2\nfailed_pin_window_s = 3600.0\n")
    daemon = start_daemon(root, "--config", str(config))
    yield daemon
    daemon.close()
    shutil.rmtree(root, ignore_errors=True)


def spend_pins(daemon: RunningDaemon, count: int) -> None:
    with daemon.client() as client:
        for _ in range(count):
            with pytest.raises(WrongPin):
                client.verify_pin(PK_READER, PinRef.PIN, WRONG, confirm_last_try=True)


# --- the failed-PIN pause is asked for before any prompt -------------------------


def test_paused_change_pin_asks_nothing_and_says_when(limited: RunningDaemon) -> None:
    limited.insert(PK_READER, "pk-regular")
    spend_pins(limited, 2)
    session = PkpinSession(args(limited, "change-pin"))
    session.expect_exit(ExitCode.RATE_LIMITED)
    shown = session.transcript
    assert re.search(  # the retry time, within the hour's window
        r"Too many wrong PINs for this card lately: pkcardd accepts the next one in "
        r"\d+ min( \d+ s)?\. Nothing was sent to the card\.", shown)
    assert "Current PIN" not in shown
    assert "Continue?" not in shown  # not even the last-try question
    assert "PIN pad" not in shown
    assert pin_tries(limited) == 1


def test_paused_unblock_asks_for_no_puk(limited: RunningDaemon) -> None:
    """The case measured in issue #11: unblock asked for the PUK and the new PIN twice."""
    limited.insert(PK_READER, "pk-blocked")
    with limited.client() as client:
        for _ in range(2):
            with pytest.raises(WrongPin):
                client.unblock_pin(PK_READER, WRONG_PUK, NEW_PIN, confirm_last_try=True)
    session = PkpinSession(args(limited, "unblock"), SLOVENIAN)
    session.expect_exit(ExitCode.RATE_LIMITED)
    shown = session.transcript
    assert "Preveč napačnih PIN-ov za to kartico v kratkem času: pkcardd sprejme naslednjega" in (
        shown
    )
    assert "PUK" not in shown


def test_status_shows_the_pause(limited: RunningDaemon) -> None:
    limited.insert(PK_READER, "pk-regular")
    code, out = run_pkpin(args(limited, "status"))
    assert code == ExitCode.OK
    assert "PIN entry:" not in out
    spend_pins(limited, 2)
    code, out = run_pkpin(args(limited, "status"))
    assert code == ExitCode.OK
    assert "PIN entry:" in out
    assert "paused by pkcardd after too many wrong PINs: possible again in " in out
    code, out = run_pkpin(args(limited, "status"), SLOVENIAN)
    assert "Vnos PIN-a:" in out
    assert "pkcardd ga je zaradi preveč napačnih PIN-ov začasno ustavil: spet mogoč čez" in out
    code, stdout, _ = run_split(args(limited, "status", "--json"))
    assert code == ExitCode.OK
    assert 0 < json.loads(stdout)["retry_after_s"] <= 3600


def test_status_json_without_a_pause() -> None:
    code, stdout, _ = run_split([*SIM, "status", "--json"])
    assert code == ExitCode.OK
    assert json.loads(stdout)["retry_after_s"] == 0


# --- a refused new PIN is asked for again; the current one is not -----------------


def test_weak_new_pin_is_asked_again() -> None:
    session = PkpinSession([*SIM, "change-pin"])
    session.type_secret("Current PIN: ", PIN)
    session.type_secret("New PIN: ", "12345678")
    between = session.expect("New PIN: ")
    assert "The new PIN must not be a sequence of digits such as 1234. " in between
    assert "Choose again (2 more attempts)." in between
    session.type_line(NEW_PIN)
    session.type_secret("New PIN again: ", NEW_PIN)
    session.expect_exit(ExitCode.OK)
    assert "PIN changed." in session.rest()
    assert session.transcript.count("Current PIN: ") == 1
    session.assert_no_secret_shown(PIN, NEW_PIN)


def test_mismatch_is_asked_again_in_slovenian() -> None:
    session = PkpinSession([*SIM, "change-pin"], SLOVENIAN)
    session.type_secret("Trenutni PIN: ", PIN)
    session.type_secret("Novi PIN: ", NEW_PIN)
    session.type_secret("Novi PIN še enkrat: ", "47158294")
    session.type_secret("Novi PIN: ", "1111")
    between = session.expect("Novi PIN: ")
    assert "Novi PIN ne sme biti ena sama ponovljena števka, kot je 1111." in between
    assert "Izberite znova (še 1 poskus)." in between
    session.type_line(NEW_PIN)
    session.type_secret("Novi PIN še enkrat: ", NEW_PIN)
    session.expect_exit(ExitCode.OK)
    assert session.transcript.count("Trenutni PIN: ") == 1
    assert "se pri ponovnem vnosu ne ujema" in session.transcript


def test_birth_date_refused_by_the_daemon_is_asked_again(pkcardd: RunningDaemon) -> None:
    pkcardd.insert(PK_READER, "pk-regular")
    session = PkpinSession(args(pkcardd, "change-pin"))
    session.type_secret("Current PIN: ", PIN)
    session.type_secret("New PIN: ", "1981")
    session.type_secret("New PIN again: ", "1981")
    between = session.expect("New PIN: ")
    assert "The new PIN must not be your birth date. Choose again (2 more attempts)." in between
    session.type_line(NEW_PIN)
    session.type_secret("New PIN again: ", NEW_PIN)
    session.expect_exit(ExitCode.OK)
    assert session.transcript.count("Current PIN: ") == 1
    assert pin_tries(pkcardd) == 3


# --- "type the PIN on the reader" only where a pad is, and only before typing ------


def test_no_pin_pad_notice_when_nothing_will_be_typed() -> None:
    code, out = run_pkpin([*SIM, "--profile", "pk-blocked", "change-pin"])
    assert code == ExitCode.BLOCKED
    assert "type the PIN on the reader" not in out


def test_no_pin_pad_notice_on_a_reader_without_a_pad(pkcardd: RunningDaemon) -> None:
    pkcardd.remove(PK_READER)
    pkcardd.insert(KZZ_READER, "pk-regular")
    try:
        session = PkpinSession(args(pkcardd, "change-pin"))
        before = session.expect("Current PIN: ")
        session.type_line("\x03")
        session.expect_exit(ExitCode.CANCELLED)
        assert "PIN pad" not in before
        assert "on the reader" not in session.transcript
    finally:
        pkcardd.insert(KZZ_READER, "kzz")
        pkcardd.insert(PK_READER, "pk-regular")


def test_pin_pad_notice_on_a_pad_reader_before_the_prompt() -> None:
    session = PkpinSession([*SIM, "change-pin"])
    before = session.expect("Current PIN: ")
    assert "This reader has a PIN pad: type the PIN on the reader" in before
    session.type_line("\x03")
    session.expect_exit(ExitCode.CANCELLED)


# --- a closed pipe ends pkpin quietly --------------------------------------------


@pytest.mark.parametrize("command", ["status", "readers"])
def test_closed_pipe_exits_quietly(command: str) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head -1` that has gone: every write meets a closed pipe
    session = PkpinSession([*SIM, command], stdout=write_end)
    os.close(write_end)
    session.expect_exit(ExitCode.CLOSED_PIPE)
    assert "Traceback" not in session.transcript
    assert "BrokenPipe" not in session.transcript
    assert session.transcript == ""


def test_closed_pipe_through_the_daemon(pkcardd: RunningDaemon) -> None:
    pkcardd.insert(PK_READER, "pk-regular")
    read_end, write_end = os.pipe()
    os.close(read_end)
    session = PkpinSession(args(pkcardd, "status", "--json"), stdout=write_end)
    os.close(write_end)
    session.expect_exit(ExitCode.CLOSED_PIPE)
    assert session.transcript == ""


# --- help and usage errors in Slovenian, argparse's own words too -----------------


def test_slovenian_help_has_no_english_left() -> None:
    code, out = run_pkpin(["--help"], SLOVENIAN)
    assert code == ExitCode.OK
    for slovenian in ("uporaba: pkpin", "položajni argumenti:", "možnosti:",
                      "izpiši to pomoč in končaj", "izhodne kode:", "počakaj, da bo vstavljena",
                      "z --wait: odnehaj po toliko sekundah"):
        assert slovenian in out
    for english in ("usage:", "positional arguments", "options:", "show this help", "wait for"):
        assert english not in out
    code, out = run_pkpin(["status", "--help"], SLOVENIAN)
    assert "uporaba: pkpin status [-h] [--json]" in out
    assert "strojno berljiv izpis" in out
    assert "options" not in out


@pytest.mark.parametrize(
    ("argv", "slovenian"),
    [
        (["frobnicate"], "pkpin: napaka: argument COMMAND: neveljavna izbira: 'frobnicate' "
                         "(izberite med "),
        ([], "pkpin: napaka: obvezni so naslednji argumenti: COMMAND"),
        (["--direct", "--simulated", "status"],
         "pkpin: napaka: argument --simulated: ni dovoljen skupaj z argumentom --direct"),
        (["status", "--frob"], "pkpin: napaka: neznani argumenti: --frob"),
        (["--reader"], "pkpin: napaka: argument --reader: pričakovan je en argument"),
        (["--wait-timeout", "x", "status"],
         "pkpin: napaka: argument --wait-timeout: neveljavna vrednost int: 'x'"),
        (["--wait-timeout", "0", "status"],
         "pkpin: napaka: --wait-timeout potrebuje pozitivno število sekund"),
    ],
)
def test_slovenian_usage_errors(argv: list[str], slovenian: str) -> None:
    code, out = run_pkpin(argv, SLOVENIAN)
    assert code == ExitCode.USAGE
    assert "uporaba: pkpin" in out
    assert slovenian in out
    assert "usage:" not in out
    assert "error:" not in out


def test_english_usage_error_keeps_argparse_words() -> None:
    code, out = run_pkpin(["--direct", "--simulated", "status"])
    assert code == ExitCode.USAGE
    assert "pkpin: error: argument --simulated: not allowed with argument --direct" in out


# --- --json errors are one JSON object on standard output -------------------------


def test_json_error_simulated() -> None:
    code, stdout, terminal = run_split([*SIM, "--reader", "no such", "status", "--json"])
    assert code == ExitCode.CARD
    assert json.loads(stdout) == {
        "error": {
            "reason": "READER_NOT_FOUND",
            "exit_code": 5,
            "message": "No such card reader: see pkpin readers.",
            "details": {},
        }
    }
    assert terminal == ""  # nothing but the object


def test_json_error_in_slovenian_with_details() -> None:
    code, stdout, _ = run_split([*SIM, "--reader", "gemalto", "status", "--json"], SLOVENIAN)
    assert code == ExitCode.USAGE
    error = json.loads(stdout)["error"]
    assert error["reason"] == "READER_AMBIGUOUS"
    assert error["message"].startswith("--reader gemalto ustreza več čitalnikom")
    assert error["details"] == {
        "matches": ["Gemalto GemPC Pinpad (simulated)", "Gemalto PC Twin Reader (simulated)"]
    }


def test_json_error_through_the_daemon(pkcardd: RunningDaemon) -> None:
    code, stdout, terminal = run_split(args(pkcardd, "--reader", KZZ_READER, "status", "--json"))
    assert code == ExitCode.CARD
    error = json.loads(stdout)["error"]
    assert error["reason"] == "WRONG_CARD_KIND"
    assert error["exit_code"] == 5
    assert error["message"] == "The card in the reader is not a professional card (PK)."
    assert terminal == ""


def test_json_error_when_the_daemon_is_away(tmp_path: Path) -> None:
    code, stdout, _ = run_split(["--socket", str(tmp_path / "x.sock"), "readers", "--json"])
    assert code == ExitCode.DAEMON
    error = json.loads(stdout)["error"]
    assert error["reason"] == "UNAVAILABLE"
    assert str(tmp_path / "x.sock") in error["message"]


# --- --reader: a part of a name, or a number ---------------------------------------


def test_readers_are_numbered() -> None:
    code, out = run_pkpin([*SIM, "readers"])
    assert code == ExitCode.OK
    assert "[0] Gemalto GemPC Pinpad (simulated): professional card (PK) (PIN pad)" in out
    assert "[1] Gemalto PC Twin Reader (simulated): no card" in out


@pytest.mark.parametrize("wanted", ["pinpad", "PINPAD", "GemPC", "0"])
def test_reader_by_part_or_number(wanted: str) -> None:
    code, out = run_pkpin([*SIM, "--reader", wanted, "status"])
    assert code == ExitCode.OK
    assert "Reader:" in out
    assert "Gemalto GemPC Pinpad (simulated)" in out


def test_reader_part_matching_several_is_an_error_listing_them() -> None:
    code, out = run_pkpin([*SIM, "--reader", "GEMALTO", "status"])
    assert code == ExitCode.USAGE
    assert "--reader GEMALTO matches more than one reader; give more of its name" in out
    assert "  Gemalto GemPC Pinpad (simulated)" in out
    assert "  Gemalto PC Twin Reader (simulated)" in out


def test_reader_number_out_of_range() -> None:
    code, out = run_pkpin([*SIM, "--reader", "7", "status"])
    assert code == ExitCode.CARD
    assert "No such card reader: see pkpin readers." in out


def test_reader_by_part_through_the_daemon(pkcardd: RunningDaemon) -> None:
    pkcardd.insert(PK_READER, "pk-regular")
    code, out = run_pkpin(args(pkcardd, "--reader", "twin", "status"))
    assert code == ExitCode.CARD
    assert "not a professional card" in out  # the twin reader holds the KZZ
    code, out = run_pkpin(args(pkcardd, "--reader", "pad", "status"))
    assert code == ExitCode.OK
    assert "PK0000100001" in out


# --- --wait: a live line until the card comes --------------------------------------


def test_wait_shows_a_live_line_until_the_card_comes(pkcardd: RunningDaemon) -> None:
    pkcardd.remove(PK_READER)
    session = PkpinSession(args(pkcardd, "--wait", "status"))
    session.expect("Waiting for a professional card (PK) in any reader... ")
    session.expect("(Ctrl-C to stop)")
    pkcardd.insert(PK_READER, "pk-regular")
    session.expect("Professional card (PK) found in Gemalto GemPC Pinpad (simulated).")
    session.expect_exit(ExitCode.OK)
    assert "Holder:" in session.rest()
    assert "\r\x1b[K" in session.transcript  # one line, redrawn in place
    assert "Gemalto GemPC Pinpad (simulated): professional card (PK) (PIN pad)" in (
        session.transcript
    )


def test_wait_in_slovenian_and_ctrl_c(pkcardd: RunningDaemon) -> None:
    pkcardd.remove(PK_READER)
    try:
        session = PkpinSession(args(pkcardd, "--wait", "status"), SLOVENIAN)
        session.expect("Čakam na profesionalno kartico (PK) v katerem koli čitalniku ... ")
        session.expect("(Ctrl-C za prekinitev)")
        session.type_line("\x03")
        session.expect_exit(ExitCode.CANCELLED)
        assert "Prekinjeno." in session.rest()
    finally:
        pkcardd.insert(PK_READER, "pk-regular")


def test_wait_gives_up_after_the_timeout_simulated() -> None:
    session = PkpinSession([*SIM, "--reader", "twin", "--wait", "--wait-timeout", "1", "status"])
    session.expect("Waiting for a professional card (PK) in Gemalto PC Twin Reader (simulated)")
    session.expect_exit(ExitCode.CARD)
    assert "No professional card (PK) was inserted within 1 s." in session.rest()


def test_wait_without_a_terminal_prints_plain_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pkcard.tools.pkpin", *SIM, "--reader", "1", "--wait",
         "--wait-timeout", "1", "status"],
        cwd=REPO, env=base_environment(), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, start_new_session=True, check=False,
    )
    assert done.returncode == ExitCode.CARD
    assert done.stderr == (
        "Waiting for a professional card (PK) in Gemalto PC Twin Reader (simulated)...\n"
        "No professional card (PK) was inserted within 1 s.\n"
    )
    assert done.stdout == ""


def test_wait_takes_a_card_that_is_there_without_a_word() -> None:
    code, stdout, terminal = run_split([*SIM, "--wait", "status", "--json"])
    assert code == ExitCode.OK
    assert json.loads(stdout)["reader"] == "Gemalto GemPC Pinpad (simulated)"
    assert terminal == ""
