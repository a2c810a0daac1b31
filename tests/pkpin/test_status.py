"""status and readers in process, over SimulatedReaderSystem with a chosen 'today'."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest

from pkcard.errors import ReaderNotFound, WrongCardKind
from pkcard.expiry import ExpiryKind, ExpiryWarning
from pkcard.simcard.card import load_card
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER, SimulatedReaderSystem
from pkcard.tools.pkpin.commands import Console, run_readers, run_status
from pkcard.tools.pkpin.errors import AmbiguousReader, NoPkCard
from pkcard.tools.pkpin.i18n import Language, translations
from pkcard.tools.pkpin.messages import ExitCode, Messages
from pkcard.tools.pkpin.service import DirectService


def service(today: date, *cards: tuple[str, str]) -> DirectService:
    system = SimulatedReaderSystem()
    for reader, profile in cards:
        system.insert(reader, load_card(profile))
    return DirectService(system, today=lambda: today)


def console(language: Language = Language.ENGLISH) -> Console:
    return Console(io.StringIO(), io.StringIO(), Messages(translations(language)))


def output(c: Console) -> str:
    assert isinstance(c.out, io.StringIO)
    return c.out.getvalue()


def test_replacement_warning_days_before_expiry() -> None:
    c = console()
    s = service(date(2030, 2, 10), (TWIN_READER.name, "pk-regular"))
    assert run_status(s, c, reader=None, as_json=False) is ExitCode.OK
    text = output(c)
    assert "Warning: card due for replacement in 18 days" in text
    assert "Warning: the signing certificate (KPEP) expires in" in text


def test_expired_card_json() -> None:
    c = console()
    s = service(date(2030, 3, 2), (TWIN_READER.name, "pk-regular"))
    run_status(s, c, reader=None, as_json=True)
    warnings = json.loads(output(c))["warnings"]
    assert {"kind": "CARD_EXPIRED", "expires_on": "2030-02-28", "days_left": -2} in warnings


def test_no_warning_long_before_expiry() -> None:
    c = console()
    run_status(service(date(2026, 1, 1), (TWIN_READER.name, "pk-regular")), c,
               reader=None, as_json=False)
    assert "Warning" not in output(c)


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (1, "Opozorilo: kartico je treba zamenjati čez 1 dan"),
        (2, "Opozorilo: kartico je treba zamenjati čez 2 dneva"),
        (3, "Opozorilo: kartico je treba zamenjati čez 3 dni"),
        (12, "Opozorilo: kartico je treba zamenjati čez 12 dni"),
    ],
)
def test_slovenian_replacement_warning(days: int, text: str) -> None:
    words = Messages(translations(Language.SLOVENIAN))
    warning = ExpiryWarning(ExpiryKind.CARD_REPLACEMENT_DUE, date(2030, 2, 28), days)
    assert words.warning(warning) == text


def test_english_warnings() -> None:
    words = Messages(translations(Language.ENGLISH))
    last_day = date(2030, 2, 28)
    assert words.warning(ExpiryWarning(ExpiryKind.CARD_REPLACEMENT_DUE, last_day, 12)) == (
        "Warning: card due for replacement in 12 days"
    )
    assert words.warning(ExpiryWarning(ExpiryKind.KPEP_EXPIRED, last_day, -1)) == (
        "Warning: the signing certificate (KPEP) expired on 2030-02-28"
    )


def test_reader_choice() -> None:
    today = date(2026, 1, 1)
    with pytest.raises(NoPkCard):
        service(today, (TWIN_READER.name, "kzz")).pick_reader(None)
    with pytest.raises(AmbiguousReader) as caught:
        service(
            today, (TWIN_READER.name, "pk-regular"), (PINPAD_READER.name, "pk-nurse")
        ).pick_reader(None)
    assert set(caught.value.readers) == {TWIN_READER.name, PINPAD_READER.name}
    with pytest.raises(ReaderNotFound):
        service(today).pick_reader("nope")
    both = service(today, (TWIN_READER.name, "kzz"), (PINPAD_READER.name, "pk-nurse"))
    assert both.pick_reader(None).reader.name == PINPAD_READER.name
    with pytest.raises(WrongCardKind):
        both.card(TWIN_READER.name)


def test_readers_json() -> None:
    c = console()
    run_readers(service(date(2026, 1, 1), (TWIN_READER.name, "kzz")), c, as_json=True)
    readers = {r["name"]: r for r in json.loads(output(c))["readers"]}
    assert readers[TWIN_READER.name]["card_kind"] == "KZZ"
    assert readers[TWIN_READER.name]["pin_pad"] is False
    assert readers[PINPAD_READER.name] == {
        "name": PINPAD_READER.name, "model": "IDBRIDGE_CT700", "pin_pad": True,
        "card_present": False, "card_kind": "NONE",
    }
