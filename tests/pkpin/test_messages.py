"""messages.py: every error has words and an exit code, and no words carry a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from pkcard import errors as e
from pkcard.pin import PinRef
from pkcard.tools.pkpin.errors import AmbiguousReader, Cancelled, NoPinPad, NoPkCard, NoTerminal
from pkcard.tools.pkpin.i18n import Language, translations
from pkcard.tools.pkpin.messages import ExitCode, Messages

MARK = "58392671"  # as if an error's text had leaked a PIN
DOCS = Path(__file__).resolve().parents[2] / "docs" / "pkpin.md"

CASES: list[tuple[e.PkcardError, ExitCode]] = [
    (e.WrongPin(2, MARK), ExitCode.WRONG_PIN),
    (e.PinBlocked(MARK), ExitCode.BLOCKED),
    (e.CardDead(MARK), ExitCode.BLOCKED),
    (e.PinDisabled(MARK), ExitCode.BLOCKED),
    (e.TransportPinActive(MARK), ExitCode.BLOCKED),
    (e.LastTryNotConfirmed(), ExitCode.LAST_TRY_REFUSED),
    (e.WeakPin(e.PinRule.SEQUENCE, MARK), ExitCode.REFUSED_PIN),
    (e.MalformedPin(MARK), ExitCode.REFUSED_PIN),
    (e.PinError(MARK), ExitCode.BLOCKED),
    (e.CardRemoved(MARK), ExitCode.CARD),
    (e.CardReset(MARK), ExitCode.CARD),
    (e.NoService(MARK), ExitCode.CARD),
    (e.ReaderNotFound(MARK), ExitCode.CARD),
    (e.ReaderBusy(MARK), ExitCode.CARD),
    (e.TransportTimeout(MARK), ExitCode.CARD),
    (e.TransportError(MARK), ExitCode.CARD),
    (e.WrongCardKind(MARK), ExitCode.CARD),
    (e.NotSupported(MARK), ExitCode.CARD),
    (e.ApduError(0x6F00, MARK), ExitCode.CARD),
    (e.ProtocolError(MARK), ExitCode.CARD),
    (e.FormatError(MARK), ExitCode.CARD),
    (e.DaemonUnavailable(MARK), ExitCode.DAEMON),
    (e.AccessDenied(MARK), ExitCode.DAEMON),
    (e.DaemonBusy(MARK), ExitCode.DAEMON),
    (e.CallTimeout(MARK), ExitCode.DAEMON),
    (e.InvalidRequest(MARK), ExitCode.DAEMON),
    (e.RateLimited(281, MARK), ExitCode.RATE_LIMITED),
    (e.DaemonInternalError("inc-7", MARK), ExitCode.INTERNAL),
    (e.PkcardError(MARK), ExitCode.INTERNAL),
    (e.HostPinEntryRefused(MARK), ExitCode.DAEMON),
    (e.PinPadTimeout(MARK), ExitCode.CANCELLED),
    (e.PinPadCancelled(MARK), ExitCode.CANCELLED),
    (e.PinPadWrongLength(MARK), ExitCode.REFUSED_PIN),
    (e.PinPadError(MARK), ExitCode.CARD),
    (NoPkCard(MARK), ExitCode.CARD),
    (AmbiguousReader(("Reader A", "Reader B")), ExitCode.USAGE),
    (NoTerminal(MARK), ExitCode.USAGE),
    (Cancelled(MARK), ExitCode.CANCELLED),
    (NoPinPad(MARK), ExitCode.CARD),
]


@pytest.fixture(params=list(Language), ids=lambda lang: lang.name)
def words(request: pytest.FixtureRequest) -> Messages:
    return Messages(translations(request.param))


@pytest.mark.parametrize(("error", "code"), CASES, ids=lambda c: type(c).__name__)
def test_every_error_has_words_and_an_exit_code(
    words: Messages, error: e.PkcardError, code: ExitCode
) -> None:
    outcome = words.describe(error, ref=PinRef.PIN, socket="/run/x.sock")
    assert outcome.exit_code is code
    assert outcome.text.strip()
    assert MARK not in outcome.text  # worded from the type, never from str(error)


def test_the_secret_named_is_the_one_presented() -> None:
    words = Messages(translations(Language.ENGLISH))
    assert words.describe(e.WrongPin(4), ref=PinRef.PUK).text == "Wrong PUK: 4 tries left"
    assert words.describe(e.WrongPin(1), ref=PinRef.TPIN).text == (
        "Wrong transport PIN: 1 try left"
    )
    assert words.describe(e.PinBlocked(), ref=PinRef.PUK).text.startswith("PUK blocked")
    weak = words.describe(e.WeakPin(e.PinRule.DATE), ref=PinRef.TPIN, new_ref=PinRef.SPIN)
    assert weak.text == "The new signing PIN must not be a date."


@pytest.mark.parametrize("ref", [PinRef.PIN, PinRef.SPIN])
def test_each_rule_has_its_own_words(words: Messages, ref: PinRef) -> None:
    texts = {rule: words.weak(ref, rule) for rule in e.PinRule}
    assert len(set(texts.values())) == len(e.PinRule)
    for text in texts.values():
        assert words.secret_name(ref) in text


def test_rule_words_in_english() -> None:
    words = Messages(translations(Language.ENGLISH))
    assert words.weak(PinRef.PIN, e.PinRule.SEQUENCE) == (
        "The new PIN must not be a sequence of digits such as 1234."
    )
    assert words.weak(PinRef.PIN, e.PinRule.LENGTH) == "The new PIN must be 4 to 8 digits."
    assert words.malformed(PinRef.TPIN) == "The transport PIN must be exactly 6 digits."
    assert words.malformed(PinRef.PUK) == "The PUK must be exactly 8 digits."


def test_slovenian_words() -> None:
    words = Messages(translations(Language.SLOVENIAN))
    assert words.weak(PinRef.PIN, e.PinRule.SEQUENCE) == (
        "Novi PIN ne sme biti zaporedje števk, kot je 1234."
    )
    assert words.malformed(PinRef.TPIN) == "Vneseni transportni PIN mora imeti natanko 6 števk."
    assert words.describe(e.CardDead()).text.startswith("PUK je blokiran")


@pytest.mark.parametrize(
    ("language", "answer", "yes"),
    [
        (Language.ENGLISH, "y", True),
        (Language.ENGLISH, " Yes ", True),
        (Language.ENGLISH, "", False),
        (Language.ENGLISH, "n", False),
        (Language.ENGLISH, "d", False),
        (Language.SLOVENIAN, "d", True),
        (Language.SLOVENIAN, "DA", True),
        (Language.SLOVENIAN, "y", True),
        (Language.SLOVENIAN, "ne", False),
        (Language.SLOVENIAN, "", False),
    ],
)
def test_yes_answers(language: Language, answer: str, yes: bool) -> None:
    assert Messages(translations(language)).is_yes(answer) is yes


def test_exit_codes_are_stable() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "USAGE": 1,
        "WRONG_PIN": 2,
        "BLOCKED": 3,
        "REFUSED_PIN": 4,
        "CARD": 5,
        "DAEMON": 6,
        "LAST_TRY_REFUSED": 7,
        "CANCELLED": 8,
        "INTERNAL": 9,
        "RATE_LIMITED": 10,
        "CLOSED_PIPE": 141,
    }


def test_docs_list_every_exit_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` |" in text
