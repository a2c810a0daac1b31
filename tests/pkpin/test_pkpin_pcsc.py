"""pkpin on a pty over the real pcscd + vpcd path (``--direct``)."""

from __future__ import annotations

import json

import pytest
from pkpin_secrets import NEW_PIN, PIN
from ptyrun import PkpinSession, run_pkpin

from pkcard.simcard.card import SimulatedCard, load_card
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.spec import SecretRef
from pkcard.tools.pkpin.messages import ExitCode

pytestmark = pytest.mark.pcsc

TWIN = 0  # "Gemalto PC Twin Reader": no PIN pad
PINPAD = 1  # "Gemalto GemPC Pinpad": PIN pad
WRONG = "11223344"


def change_pin(session: PkpinSession, old: str, new: str) -> None:
    session.type_secret("Current PIN: ", old)
    session.type_secret("New PIN: ", new)
    session.type_secret("New PIN again: ", new)


def insert(env: PcscdHarness, slot: int, profile: str = "pk-regular") -> SimulatedCard:
    card = load_card(profile)
    env.insert(slot, card)
    return card


def test_status_and_readers_direct(pcscd_env: PcscdHarness) -> None:
    insert(pcscd_env, TWIN)
    code, out = run_pkpin(["--direct", "status", "--json"])
    assert code == ExitCode.OK
    document = json.loads(out)
    assert document["reader"] == pcscd_env.reader_name(TWIN)
    assert {s["ref"] for s in document["secrets"]} >= {"PIN", "PUK", "SPIN", "TPIN"}
    code, out = run_pkpin(["--direct", "readers"])
    assert code == ExitCode.OK
    assert f"{pcscd_env.reader_name(TWIN)}: professional card (PK)\r\n" in out


def test_change_pin_direct(pcscd_env: PcscdHarness) -> None:
    card = insert(pcscd_env, TWIN)
    session = PkpinSession(["--direct", "change-pin"])
    change_pin(session, PIN, NEW_PIN)
    session.expect_exit(ExitCode.OK)
    assert "PIN changed." in session.rest()
    assert "PIN pad" not in session.transcript
    assert card.tries_left(SecretRef.PIN) == 3
    session.assert_no_secret_shown()


def test_wrong_pin_and_declined_last_try_direct(pcscd_env: PcscdHarness) -> None:
    card = insert(pcscd_env, TWIN)
    for tries_left in (2, 1):
        session = PkpinSession(["--direct", "change-pin"])
        change_pin(session, WRONG, NEW_PIN)
        session.expect_exit(ExitCode.WRONG_PIN)
        plural = "try" if tries_left == 1 else "tries"
        assert f"Wrong PIN: {tries_left} {plural} left" in session.rest()
    assert card.tries_left(SecretRef.PIN) == 1
    session = PkpinSession(["--direct", "change-pin"])
    session.expect("Only 1 try left. A wrong PIN blocks the card. Continue? [y/N] ")
    session.type_line("")  # the default is no
    session.expect_exit(ExitCode.LAST_TRY_REFUSED)
    assert card.tries_left(SecretRef.PIN) == 1
    session.assert_no_secret_shown(WRONG, PIN)


def test_pin_pad_reader_direct(pcscd_env: PcscdHarness) -> None:
    insert(pcscd_env, PINPAD)
    reader = pcscd_env.reader_name(PINPAD)
    code, out = run_pkpin(
        ["--direct", "--reader", pcscd_env.reader_name(TWIN), "change-pin", "--pinpad"]
    )
    assert code == ExitCode.CARD  # that reader has no PIN pad (nor a card)
    assert "This reader has no PIN pad: run without --pinpad." in out
    session = PkpinSession(["--direct", "--reader", reader, "change-pin"])
    session.expect("This reader has a PIN pad: type the PIN on the reader (pkpin COMMAND")
    change_pin(session, PIN, NEW_PIN)
    session.expect_exit(ExitCode.OK)


def test_two_cards_need_reader_choice(pcscd_env: PcscdHarness) -> None:
    insert(pcscd_env, TWIN)
    insert(pcscd_env, PINPAD)
    code, out = run_pkpin(["--direct", "status"])
    assert code == ExitCode.USAGE
    assert "More than one reader holds a professional card; choose one with --reader:" in out
    assert pcscd_env.reader_name(TWIN) in out
    assert pcscd_env.reader_name(PINPAD) in out
