"""pkpin on a pty, both languages: the PIN policy beyond the seeds and KPEP activation
as the seed describes it (issue 15, points 6 and 7).

Simulated cards inside pkpin (``--simulated``) and a real ``pkcardd --simulated``
process (``--socket``), whose cards keep their state between runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from daemon_harness import PK_READER, RunningDaemon, make_root, start_daemon
from pkpin_secrets import NEW_SPIN, PIN, SPIN, TPIN
from ptyrun import PkpinSession, base_environment

from pkcard.errors import CardDead, PinBlocked, WrongPin
from pkcard.pin import PinRef
from pkcard.tools.pkpin.commands import NEW_PIN_ATTEMPTS
from pkcard.tools.pkpin.messages import ExitCode

SIM = ["--simulated"]
SLOVENIAN = base_environment(LANG="sl_SI.UTF-8")
ADVICE_EN = "The number you choose should be as random as possible"
ADVICE_SL = "Izbrano število naj bo čim bolj naključno"


def args(daemon: RunningDaemon, *rest: str) -> list[str]:
    return ["--socket", str(daemon.socket_path), *rest]


@pytest.fixture(scope="module")
def lenient() -> Iterator[RunningDaemon]:
    """A ``pkcardd --simulated`` without the failed-PIN pause (these tests spend secrets)."""
    root = make_root()
    config = root / "pkcardd.toml"
    config.write_text("[limits]\nfailed_pin_limit = 1000\n")
    daemon = start_daemon(root, "--config", str(config))
    yield daemon
    daemon.close()
    shutil.rmtree(root, ignore_errors=True)


def test_new_rules_are_named_and_the_advice_given_in_english() -> None:
    session = PkpinSession([*SIM, "change-pin"])
    session.type_secret("Current PIN: ", PIN)
    for weak in ("0852", "5656", "0007"):
        session.type_secret("New PIN: ", weak)
    session.expect_exit(ExitCode.REFUSED_PIN)
    said = session.transcript
    assert ADVICE_EN in said
    assert said.index(ADVICE_EN) < said.index("New PIN: ")  # before the choice
    assert "must not be a line or shape on the keypad, such as 2580, 159753 or 1254." in said
    assert "must not repeat a group of digits, such as 1212, 123123 or 1122." in said
    assert "is one of the most common PINs in published studies." in said
    session.assert_no_secret_shown("0852", "5656", "0007")


def test_new_rules_are_named_and_the_advice_given_in_slovenian() -> None:
    session = PkpinSession([*SIM, "change-pin"], SLOVENIAN)
    session.type_secret("Trenutni PIN: ", PIN)
    for weak in ("7931", "4994", "9630"):
        session.type_secret("Novi PIN: ", weak)
    session.expect_exit(ExitCode.REFUSED_PIN)
    said = session.transcript
    assert ADVICE_SL in said
    assert "Novi PIN ne sme biti črta ali lik na tipkovnici, kot 2580, 159753 ali 1254." in said
    assert "Novi PIN se ne sme enako brati nazaj, kot 1221 ali 123321." in said
    assert "Novi PIN ne sme šteti v enakih korakih, kot 2468 ali 102030." in said
    session.assert_no_secret_shown("7931", "4994", "9630")


def test_the_spin_gets_the_same_policy(daemon: RunningDaemon) -> None:
    """Through pkcardd: the seed's own SPIN example, then a published one, then a good one."""
    session = PkpinSession(args(daemon, "change-spin"), SLOVENIAN)
    session.type_secret("Trenutni podpisni PIN: ", SPIN)
    session.type_secret("Novi podpisni PIN: ", "333333")
    session.type_secret("Novi podpisni PIN: ", "315475")
    session.type_secret("Novi podpisni PIN: ", NEW_SPIN)
    session.type_secret("Novi podpisni PIN še enkrat: ", NEW_SPIN)
    session.expect_exit(ExitCode.OK)
    said = session.transcript
    assert ADVICE_SL in said
    assert "Novi podpisni PIN ne sme biti ena sama ponovljena števka, kot je 1111." in said
    assert "Novi podpisni PIN je med najpogostejšimi PIN-i v objavljenih raziskavah." in said
    session.assert_no_secret_shown("333333", "315475")


def test_a_date_in_another_order_is_refused_by_the_daemon(daemon: RunningDaemon) -> None:
    """YYMMDD (1 Feb 2029): left to the card library in pkcardd, which refuses it."""
    session = PkpinSession(args(daemon, "change-pin"))
    session.type_secret("Current PIN: ", PIN)
    for _ in range(NEW_PIN_ATTEMPTS):
        session.type_secret("New PIN: ", "290201")
        session.type_secret("New PIN again: ", "290201")
    session.expect_exit(ExitCode.REFUSED_PIN)
    assert "The new PIN must not be a date." in session.transcript
    with daemon.client() as client:
        (status,) = client.get_pin_status(PK_READER, PinRef.PIN)
    assert status.tries_left == 3  # nothing reached the card


@pytest.mark.parametrize(
    ("env", "notice"),
    [
        (None, "You need the transport PIN (TPIN) from the envelope that came with the card. "
               "If you lost the envelope, a new professional card (PK) must be ordered."),
        (SLOVENIAN, "Če ste kuverto z gesli izgubili, boste morali naročiti novo "
                    "profesionalno kartico (PK)."),
    ],
)
def test_activation_names_the_envelope_before_the_tpin(
    env: dict[str, str] | None, notice: str
) -> None:
    session = PkpinSession([*SIM, "--profile", "pk-transport", "activate-signature"], env)
    session.expect(notice)
    prompts = ("Current transport PIN: ", "New signing PIN: ", "New signing PIN again: ")
    if env is SLOVENIAN:
        prompts = ("Trenutni transportni PIN: ", "Novi podpisni PIN: ",
                   "Novi podpisni PIN še enkrat: ")
    session.type_secret(prompts[0], TPIN)
    session.type_secret(prompts[1], NEW_SPIN)
    session.type_secret(prompts[2], NEW_SPIN)
    session.expect_exit(ExitCode.OK)
    session.assert_no_secret_shown()


@pytest.mark.parametrize(
    ("env", "words"),
    [
        (None, "Transport PIN blocked: the signing PIN can no longer be activated. "
               "A new professional card (PK) must be ordered."),
        (SLOVENIAN, "Transportni PIN je blokiran: podpisnega PIN-a ni več mogoče aktivirati. "
                    "Naročiti morate novo profesionalno kartico (PK)."),
    ],
)
def test_a_blocked_tpin_means_a_new_pk(
    lenient: RunningDaemon, env: dict[str, str] | None, words: str
) -> None:
    pkcardd = lenient
    pkcardd.insert(PK_READER, "pk-transport")
    wrong = "470193" if TPIN != "470193" else "836195"
    with pkcardd.client() as client:
        for _ in range(3):
            with pytest.raises((WrongPin, PinBlocked)):
                client.activate_signature_pin(PK_READER, wrong, NEW_SPIN, confirm_last_try=True)
    session = PkpinSession(args(pkcardd, "activate-signature"), env)
    session.expect_exit(ExitCode.BLOCKED)
    assert words in session.transcript


@pytest.mark.parametrize(
    ("env", "words"),
    [
        (None, "PUK blocked: this card can no longer be used. Return it to ZZZS"),
        (SLOVENIAN, "PUK je blokiran: kartice ni več mogoče uporabljati. Vrnite jo ZZZS"),
    ],
)
def test_a_dead_puk_says_the_card_is_returned(
    lenient: RunningDaemon, env: dict[str, str] | None, words: str
) -> None:
    pkcardd = lenient
    pkcardd.insert(PK_READER, "pk-regular")
    with pkcardd.client() as client:
        for _ in range(5):
            with pytest.raises((WrongPin, CardDead)):
                client.unblock_pin(PK_READER, "19283746", "47158293", confirm_last_try=True)
    session = PkpinSession(args(pkcardd, "unblock"), env)
    session.expect_exit(ExitCode.BLOCKED)
    assert words in session.transcript
    assert "Miklošičeva cesta 24, 1507 Ljubljana" in session.transcript
