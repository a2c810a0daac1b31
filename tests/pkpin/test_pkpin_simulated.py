"""pkpin on a pty, against a simulated card inside the pkpin process (``--simulated``).

Each run starts from the profile's fresh card, so every test is one session.
"""

from __future__ import annotations

import json
import subprocess
import sys

from pkpin_secrets import NEW_PIN, NEW_SPIN, PIN, PUK, SPIN, TPIN
from ptyrun import REPO, PkpinSession, base_environment, run_pkpin

from pkcard.tools.pkpin.commands import NEW_PIN_ATTEMPTS
from pkcard.tools.pkpin.messages import ExitCode

SIM = ["--simulated"]


def change_pin(session: PkpinSession, old: str, new: str, again: str | None = None) -> None:
    session.type_secret("Current PIN: ", old)
    session.type_secret("New PIN: ", new)
    session.type_secret("New PIN again: ", again if again is not None else new)


def test_status_shows_card_secrets_and_tries() -> None:
    code, out = run_pkpin([*SIM, "status"])
    assert code == ExitCode.OK
    assert "Ana Testna (90001), doctor" in out
    assert "PK0000100001, regular card, test" in out
    assert "PIN:" in out
    assert "3 of 3 tries left" in out
    assert "5 of 5 tries left" in out  # the PUK
    assert "Transport PIN:" in out
    assert "used, no longer needed" in out


def test_status_json_parses() -> None:
    code, out = run_pkpin([*SIM, "status", "--json"])
    assert code == ExitCode.OK
    document = json.loads(out)
    assert document["card"]["holder_id"] == "90001"
    assert document["card"]["profession"] == "DOCTOR"
    secrets = {s["ref"]: s for s in document["secrets"]}
    assert secrets["PIN"] == {"ref": "PIN", "state": "VERIFIABLE", "tries_left": 3, "max_tries": 3}
    assert secrets["TPIN"]["state"] == "DISABLED"
    assert isinstance(document["warnings"], list)


def test_readers_lists_the_pk_and_its_pin_pad() -> None:
    code, out = run_pkpin([*SIM, "readers"])
    assert code == ExitCode.OK
    assert "Gemalto GemPC Pinpad (simulated): professional card (PK) (PIN pad)" in out
    assert "Gemalto PC Twin Reader (simulated): no card" in out


def test_change_pin_succeeds_and_shows_no_pin() -> None:
    session = PkpinSession([*SIM, "change-pin"])
    change_pin(session, PIN, NEW_PIN)
    session.expect_exit(ExitCode.OK)
    assert "PIN changed." in session.rest()
    assert "type the PIN on the reader" in session.transcript  # the PIN-pad reader
    session.assert_no_secret_shown()


def test_wrong_pin_says_tries_left() -> None:
    session = PkpinSession([*SIM, "change-pin"])
    change_pin(session, "11223344", NEW_PIN)
    session.expect_exit(ExitCode.WRONG_PIN)
    assert "Wrong PIN: 2 tries left" in session.rest()
    session.assert_no_secret_shown()


def test_weak_pin_refused_naming_the_rule_before_confirmation() -> None:
    session = PkpinSession([*SIM, "change-pin"])
    session.type_secret("Current PIN: ", PIN)
    for _ in range(NEW_PIN_ATTEMPTS):
        session.type_secret("New PIN: ", "12345678")
    session.expect_exit(ExitCode.REFUSED_PIN)
    rest = session.rest()
    assert "The new PIN must not be a sequence of digits such as 1234." in rest
    assert "again" not in rest  # refused before the confirmation prompt
    session.assert_no_secret_shown()


def test_birth_date_refused_by_the_card_side_policy() -> None:
    session = PkpinSession([*SIM, "change-pin"])
    change_pin(session, PIN, "1981")  # the year Ana Testna was born: not a date, a birth date
    for _ in range(NEW_PIN_ATTEMPTS - 1):  # asked again, the current PIN not again
        session.type_secret("New PIN: ", "1981")
        session.type_secret("New PIN again: ", "1981")
    session.expect_exit(ExitCode.REFUSED_PIN)
    assert "The new PIN must not be your birth date." in session.rest()


def test_confirmation_mismatch_sends_nothing() -> None:
    session = PkpinSession([*SIM, "change-pin"])
    change_pin(session, PIN, NEW_PIN, again="47158294")
    for _ in range(NEW_PIN_ATTEMPTS - 1):
        session.type_secret("New PIN: ", NEW_PIN)
        session.type_secret("New PIN again: ", "47158294")
    session.expect_exit(ExitCode.REFUSED_PIN)
    assert "The two entries of the new PIN differ: nothing was changed." in session.rest()


def test_malformed_current_pin_is_refused_before_the_new_one_is_asked() -> None:
    session = PkpinSession([*SIM, "change-pin"])
    session.type_secret("Current PIN: ", "12a")
    session.expect_exit(ExitCode.REFUSED_PIN)
    rest = session.rest()
    assert "The PIN must be 4 to 8 digits." in rest
    assert "New PIN" not in rest


def test_slovenian_output() -> None:
    env = base_environment(LANG="sl_SI.UTF-8")
    session = PkpinSession([*SIM, "change-pin"], env)
    session.type_secret("Trenutni PIN: ", "11223344")
    session.type_secret("Novi PIN: ", NEW_PIN)
    session.type_secret("Novi PIN še enkrat: ", NEW_PIN)
    session.expect_exit(ExitCode.WRONG_PIN)
    assert "Napačen PIN: še 2 poskusa" in session.rest()
    code, out = run_pkpin([*SIM, "status"], env)
    assert code == ExitCode.OK
    assert "Imetnik:" in out
    assert "zdravnik" in out
    assert "preostali poskusi: 3 od 3" in out


def test_language_variable_wins_over_lang() -> None:
    env = base_environment(LANG="sl_SI.UTF-8", LANGUAGE="en_GB:sl")
    code, out = run_pkpin([*SIM, "status"], env)
    assert code == ExitCode.OK
    assert "Holder:" in out


def test_activate_signature_on_a_transport_card() -> None:
    session = PkpinSession([*SIM, "--profile", "pk-transport", "activate-signature"])
    session.type_secret("Current transport PIN: ", TPIN)
    session.type_secret("New signing PIN: ", NEW_SPIN)
    session.type_secret("New signing PIN again: ", NEW_SPIN)
    session.expect_exit(ExitCode.OK)
    assert "Signing PIN activated." in session.rest()
    session.assert_no_secret_shown()


def test_activate_signature_when_already_active_asks_nothing() -> None:
    code, out = run_pkpin([*SIM, "activate-signature"])
    assert code == ExitCode.BLOCKED
    assert "The signing PIN is already activated: use pkpin change-spin" in out
    assert "transport PIN:" not in out


def test_change_spin_on_a_transport_card_says_activate_first() -> None:
    code, out = run_pkpin([*SIM, "--profile", "pk-transport", "change-spin"])
    assert code == ExitCode.BLOCKED
    assert "Signature PIN not activated yet: run pkpin activate-signature" in out


def test_change_spin() -> None:
    session = PkpinSession([*SIM, "change-spin"])
    session.type_secret("Current signing PIN: ", SPIN)
    session.type_secret("New signing PIN: ", NEW_SPIN)
    session.type_secret("New signing PIN again: ", NEW_SPIN)
    session.expect_exit(ExitCode.OK)
    assert "Signing PIN changed." in session.rest()


def test_nurse_card_has_no_signing_pin() -> None:
    code, out = run_pkpin([*SIM, "--profile", "pk-nurse", "change-spin"])
    assert code == ExitCode.CARD
    assert "This card has no signing PIN." in out


def test_blocked_pin_is_reported_without_asking() -> None:
    code, out = run_pkpin([*SIM, "--profile", "pk-blocked", "change-pin"])
    assert code == ExitCode.BLOCKED
    assert "PIN blocked: unblock it with your PUK (pkpin unblock)" in out
    assert "Current PIN" not in out


def test_unblock_with_the_puk() -> None:
    session = PkpinSession([*SIM, "--profile", "pk-blocked", "unblock"])
    session.type_secret("Current PUK: ", PUK)
    session.type_secret("New PIN: ", NEW_PIN)
    session.type_secret("New PIN again: ", NEW_PIN)
    session.expect_exit(ExitCode.OK)
    assert "PIN unblocked: the new PIN is set." in session.rest()
    session.assert_no_secret_shown()


def test_wrong_puk_counts_the_puk() -> None:
    session = PkpinSession([*SIM, "--profile", "pk-blocked", "unblock"])
    session.type_secret("Current PUK: ", "19283746")
    session.type_secret("New PIN: ", NEW_PIN)
    session.type_secret("New PIN again: ", NEW_PIN)
    session.expect_exit(ExitCode.WRONG_PIN)
    assert "Wrong PUK: 4 tries left" in session.rest()


def test_pinpad_with_nobody_at_the_reader_times_out() -> None:
    code, out = run_pkpin([*SIM, "change-pin", "--pinpad"])
    assert code == ExitCode.CANCELLED
    assert "First the current PIN, then the new PIN twice." in out
    assert "Nobody typed the PIN on the reader in time." in out
    assert "Current PIN" not in out


def test_ctrl_c_at_a_prompt_cancels() -> None:
    session = PkpinSession([*SIM, "change-pin"])
    session.expect("Current PIN: ")
    session.type_line("\x03")
    session.expect_exit(ExitCode.CANCELLED)
    assert "Cancelled: nothing was sent to the card." in session.rest()


def test_no_terminal_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pkcard.tools.pkpin", *SIM, "change-pin"],
        cwd=REPO,
        env=base_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,  # no controlling terminal
        check=False,
    )
    assert done.returncode == ExitCode.USAGE
    assert "No terminal to read the PIN from" in done.stderr
    assert done.stdout == ""


def test_end_of_input_at_a_prompt_cancels() -> None:
    session = PkpinSession([*SIM, "unblock"])
    session.expect("Current PUK: ")
    session.type_line("\x04")  # Ctrl-D on an empty line
    session.expect_exit(ExitCode.CANCELLED)
    assert "Cancelled: nothing was sent to the card." in session.rest()
