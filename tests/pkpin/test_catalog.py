"""The Slovenian catalog: complete, consistent with the code, compiled, plural forms right."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pkcard.errors import WrongPin
from pkcard.tools.msgfmt import PoEntry, compile_mo, parse_po
from pkcard.tools.pkpin.i18n import LOCALE_DIR, Language, language_from_environment, translations
from pkcard.tools.pkpin.messages import Messages

REPO = Path(__file__).resolve().parents[2]
PO = LOCALE_DIR / "sl" / "LC_MESSAGES" / "pkpin.po"
MO = PO.with_suffix(".mo")
_GETTEXT_CALLS = {"tr", "gettext", "ngettext"}
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def messages_in_code() -> dict[str, str | None]:
    """Every msgid the pkpin code passes to the catalog (value: its plural msgid)."""
    found: dict[str, str | None] = {}
    for path in sorted((REPO / "tools" / "pkpin").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _GETTEXT_CALLS
            ):
                continue
            if [getattr(a, "id", None) for a in node.args] == ["text"]:
                continue  # Messages.tr itself
            texts = [
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ]
            assert texts, f"{path.name}:{node.lineno}: gettext needs literal strings"
            found[texts[0]] = texts[1] if node.func.attr == "ngettext" else None
    return found


def catalog() -> dict[str, PoEntry]:
    return {entry.msgid: entry for entry in parse_po(PO.read_text(encoding="utf-8"))}


def test_every_message_in_the_code_is_translated() -> None:
    entries = catalog()
    code = messages_in_code()
    assert len(code) > 100
    for msgid, plural in code.items():
        entry = entries.get(msgid)
        assert entry is not None, f"missing from pkpin.po: {msgid!r}"
        assert entry.translated, f"untranslated: {msgid!r}"
        assert not entry.fuzzy, f"fuzzy: {msgid!r}"
        assert entry.msgid_plural == plural
        if plural is not None:
            assert sorted(entry.msgstr) == [0, 1, 2, 3]


def test_catalog_has_no_stale_messages() -> None:
    stale = set(catalog()) - set(messages_in_code()) - {""}
    assert not stale


def test_placeholders_match() -> None:
    for entry in catalog().values():
        wanted = set(_PLACEHOLDER.findall(entry.msgid_plural or entry.msgid))
        for form in entry.msgstr.values():
            if entry.msgid:
                assert set(_PLACEHOLDER.findall(form)) == wanted, entry.msgid


def test_header_declares_slovenian_plural_forms() -> None:
    header = catalog()[""].msgstr[0]
    assert "charset=UTF-8" in header
    assert (
        "Plural-Forms: nplurals=4; plural=(n%100==1 ? 0 : n%100==2 ? 1 : "
        "n%100==3 || n%100==4 ? 2 : 3);"
    ) in header


def test_committed_mo_is_compiled_from_the_po() -> None:
    assert MO.read_bytes() == compile_mo(parse_po(PO.read_text(encoding="utf-8"))), (
        "run: python -m pkcard.tools.msgfmt pkcard/locale/sl/LC_MESSAGES/pkpin.po"
    )


@pytest.mark.parametrize(
    ("tries", "word"),
    [
        (1, "poskus"), (2, "poskusa"), (3, "poskusi"), (4, "poskusi"), (5, "poskusov"),
        (11, "poskusov"), (101, "poskus"), (102, "poskusa"), (104, "poskusi"), (111, "poskusov"),
    ],
)
def test_slovenian_plural_of_tries(tries: int, word: str) -> None:
    words = Messages(translations(Language.SLOVENIAN))
    assert words.describe(WrongPin(tries)).text == f"Napačen PIN: še {tries} {word}"


@pytest.mark.parametrize(("tries", "text"), [(1, "1 try left"), (2, "2 tries left")])
def test_english_plural_of_tries(tries: int, text: str) -> None:
    words = Messages(translations(Language.ENGLISH))
    assert words.describe(WrongPin(tries)).text == f"Wrong PIN: {text}"


@pytest.mark.parametrize(
    ("environ", "language"),
    [
        ({}, Language.ENGLISH),
        ({"LANG": "sl_SI.UTF-8"}, Language.SLOVENIAN),
        ({"LANG": "en_US.UTF-8"}, Language.ENGLISH),
        ({"LC_MESSAGES": "sl_SI", "LANG": "en_US"}, Language.SLOVENIAN),
        ({"LC_ALL": "C", "LC_MESSAGES": "sl_SI"}, Language.ENGLISH),
        ({"LC_ALL": "sl", "LANG": "en_US"}, Language.SLOVENIAN),
        ({"LANGUAGE": "sl:en", "LANG": "C"}, Language.SLOVENIAN),
        ({"LANGUAGE": "de:sl", "LANG": "sl_SI"}, Language.ENGLISH),
        ({"LANGUAGE": "", "LANG": "sl_SI.UTF-8"}, Language.SLOVENIAN),
        ({"LANG": "SL_si"}, Language.SLOVENIAN),
    ],
)
def test_language_from_environment(environ: dict[str, str], language: Language) -> None:
    assert language_from_environment(environ) is language


def test_missing_slovenian_catalog_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        translations(Language.SLOVENIAN, tmp_path)
