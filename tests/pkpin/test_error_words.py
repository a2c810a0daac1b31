"""error_words.py: one table, found through the class hierarchy, covers every pkcard error."""

from __future__ import annotations

import ast
import inspect
import typing
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

import pytest

from pkcard import errors as e
from pkcard.daemon import workers  # its CallCancelled joins the tree whatever else ran
from pkcard.pin import PinRef
from pkcard.tools.pkpin import error_words
from pkcard.tools.pkpin import errors as pkpin_errors
from pkcard.tools.pkpin.i18n import Language, translations
from pkcard.tools.pkpin.messages import ExitCode, Messages
from pkcard.tools.pkpin.reactivate import REACTIVATE_WORDS

PKPIN = Path(__file__).resolve().parents[2] / "tools" / "pkpin"
SAMPLES: dict[str, object] = {
    "tries_left": 2,
    "sw": 0x6F00,
    "retry_after_s": 281,
    "incident_id": "inc-7",
    "readers": ("Reader A", "Reader B"),
    "matches": ("Reader A", "Reader B"),
    "wanted": "reader",
    "timeout_s": 30,
    "backend_reason": "CARD_UNKNOWN",
    "detail": None,
    "message": None,
    "found_uid": 1000,
    "path": "/var/lib/pkcardd/audit.jsonl",
    "why": "writable by others",
    "trusted_uids": (0,),
    "reader": "Reader A",
}


def every_subclass(cls: type[e.PkcardError]) -> Iterator[type[e.PkcardError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from every_subclass(sub)


ALL_ERRORS = sorted({pkpin_errors.NoPkCard, *every_subclass(e.PkcardError)},
                    key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def instance(cls: type[e.PkcardError]) -> e.PkcardError:
    """An instance of ``cls``, its constructor's arguments filled by name or type."""
    hints = typing.get_type_hints(cls.__init__)
    arguments: dict[str, object] = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        hint = hints.get(name)
        if isinstance(hint, type) and issubclass(hint, Enum):
            arguments[name] = next(iter(hint))
        elif name in SAMPLES:
            arguments[name] = SAMPLES[name]
        elif parameter.default is inspect.Parameter.empty:
            raise AssertionError(f"no sample for {cls.__name__}({name})")
    return cls(**arguments)


@pytest.fixture(params=list(Language), ids=lambda lang: lang.name)
def words(request: pytest.FixtureRequest) -> Messages:
    return Messages(translations(request.param))


def test_the_walk_finds_the_whole_tree() -> None:
    names = {cls.__name__ for cls in ALL_ERRORS}
    assert {"RateLimited", "CardDead", "PinPadWrongLength", "TokenRefused", "RegistryConflict",
            "SessionEnded", "ReaderChoiceAmbiguous", "WaitTimedOut"} <= names
    assert len(ALL_ERRORS) >= 60
    assert workers.CallCancelled in ALL_ERRORS


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_reaches_a_row_of_its_own_kind(cls: type[e.PkcardError]) -> None:
    """No pkcard error falls through to the catch-all 'Unexpected error'."""
    found = error_words.lookup(cls)
    assert found.error_type is not e.PkcardError
    assert issubclass(cls, found.error_type)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_has_words_in_both_languages(cls: type[e.PkcardError]) -> None:
    error = instance(cls)
    english = Messages(translations(Language.ENGLISH)).describe(error, socket="/run/x.sock")
    slovenian = Messages(translations(Language.SLOVENIAN)).describe(error, socket="/run/x.sock")
    assert english.text.strip()
    assert slovenian.text.strip()
    assert slovenian.text != english.text, f"{cls.__name__}: not translated"
    assert english.exit_code is slovenian.exit_code
    assert english.reason == slovenian.reason != ""
    assert english.details == slovenian.details


def test_the_most_specific_row_wins() -> None:
    assert error_words.lookup(e.CardDead).error_type is e.CardDead
    assert error_words.lookup(e.PinNotVerified).error_type is e.PinError
    assert error_words.lookup(e.RegistryConflict).error_type is e.RegistryError
    assert error_words.lookup(e.SessionEnded).error_type is e.DaemonError


def test_overrides_win_for_their_class_and_its_subclasses() -> None:
    assert error_words.lookup(e.MalformedPin, REACTIVATE_WORDS) in REACTIVATE_WORDS
    assert error_words.lookup(e.WeakPin, REACTIVATE_WORDS).error_type is e.WeakPin
    assert error_words.lookup(e.BackendRefused, REACTIVATE_WORDS) in REACTIVATE_WORDS


def test_rate_limited_has_its_own_words_with_the_retry_time(words: Messages) -> None:
    outcome = words.describe(e.RateLimited(281))
    assert outcome.exit_code is ExitCode.RATE_LIMITED
    assert outcome.reason == "RATE_LIMITED"
    assert dict(outcome.details) == {"retry_after_s": 281}
    assert "4 min 41 s" in outcome.text
    assert "refused the request" not in outcome.text


def test_english_rate_limit_words() -> None:
    words = Messages(translations(Language.ENGLISH))
    assert words.describe(e.RateLimited(41)).text == (
        "Too many wrong PINs for this card lately: pkcardd accepts the next one in 41 s. "
        "Nothing was sent to the card."
    )
    assert words.duration(120) == "2 min"


def test_slovenian_rate_limit_words() -> None:
    words = Messages(translations(Language.SLOVENIAN))
    assert words.describe(e.RateLimited(281)).text == (
        "Preveč napačnih PIN-ov za to kartico v kratkem času: pkcardd sprejme naslednjega "
        "čez 4 min 41 s. Kartici ni bilo nič poslano."
    )


def test_details_carry_typed_fields() -> None:
    words = Messages(translations(Language.ENGLISH))
    wrong = words.describe(e.WrongPin(2), ref=PinRef.PUK)
    assert (wrong.reason, dict(wrong.details)) == ("WRONG_PIN", {"tries_left": 2})
    weak = words.describe(e.WeakPin(e.PinRule.DATE))
    assert (weak.reason, dict(weak.details)) == ("WEAK_PIN", {"rule": "DATE"})
    several = words.describe(pkpin_errors.AmbiguousReader(("A", "B")))
    assert several.reason == "SEVERAL_PK_CARDS"
    assert dict(several.details) == {"readers": ["A", "B"]}


def test_no_isinstance_chain_is_left_in_pkpin() -> None:
    """The wording is found through the table only (issue #13, finding 5)."""
    error_names = {cls.__name__ for cls in ALL_ERRORS} | {"PkcardError"}
    for path in sorted(PKPIN.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance"):
                continue
            used = {
                name.attr if isinstance(name, ast.Attribute) else name.id
                for name in ast.walk(node.args[1])
                if isinstance(name, ast.Name | ast.Attribute)
            }
            assert not used & error_names, f"{path.name}:{node.lineno}: isinstance on an error"


def test_a_key_that_needs_its_pin_has_its_own_words_on_every_path() -> None:
    """The PKCS#11 driver's KeyNeedsPin and an APDU card's 6982 read the same."""
    for error_type in (e.KeyNeedsPin, e.SecurityStatusNotSatisfied):
        assert error_words.lookup(error_type).error_type is e.KeyNeedsPin
    assert error_words.lookup(e.KeyNotFound).error_type is e.KeyNotFound
