"""tools.msgfmt: .po parsing and .mo output, checked against gettext and GNU msgfmt."""

from __future__ import annotations

import gettext
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pkcard.tools.msgfmt import PoEntry, PoError, compile_mo, main, parse_po
from pkcard.tools.pkpin.i18n import LOCALE_DIR

PO = LOCALE_DIR / "sl" / "LC_MESSAGES" / "pkpin.po"
HEADER = (
    'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
    '"Plural-Forms: nplurals=4; plural=(n%100==1 ? 0 : n%100==2 ? 1 : '
    'n%100==3 || n%100==4 ? 2 : 3);\\n"\n\n'
)


def quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t")
    return '"' + escaped + '"'


def load(mo: bytes) -> gettext.GNUTranslations:
    return gettext.GNUTranslations(io.BytesIO(mo))


texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00")
    | st.sampled_from(["\n", "\t", '"', "\\"]),
    min_size=1,
    max_size=30,
)


@given(st.dictionaries(texts, texts, min_size=1, max_size=8))
@example({"0": "\u2028"})  # a line separator inside a string is not a line end in a .po
@example({"\x85": "\u2029"})
def test_singular_messages_round_trip(messages: dict[str, str]) -> None:
    source = HEADER + "".join(
        f"msgid {quote(k)}\nmsgstr {quote(v)}\n\n" for k, v in messages.items()
    )
    catalog = load(compile_mo(parse_po(source)))
    for msgid, msgstr in messages.items():
        assert catalog.gettext(msgid) == msgstr


@given(texts, texts, st.lists(texts, min_size=4, max_size=4))
def test_plural_messages_round_trip(singular: str, plural: str, forms: list[str]) -> None:
    source = HEADER + f"msgid {quote(singular)}\nmsgid_plural {quote(plural)}\n" + "".join(
        f"msgstr[{i}] {quote(form)}\n" for i, form in enumerate(forms)
    )
    catalog = load(compile_mo(parse_po(source)))
    for n, index in ((1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (101, 0), (112, 3)):
        assert catalog.ngettext(singular, plural, n) == forms[index]


def test_multiline_strings_context_and_comments() -> None:
    source = HEADER + (
        "# translator comment\n#: somewhere.py\n"
        'msgctxt "menu"\nmsgid ""\n"Open "\n"file"\nmsgstr "Odpri "\n"datoteko"\n\n'
        'msgid "Open file"\nmsgstr "Odpri datoteko brez konteksta"\n'
    )
    entries = parse_po(source)
    assert [e.msgctxt for e in entries] == [None, "menu", None]
    catalog = load(compile_mo(entries))
    assert catalog.pgettext("menu", "Open file") == "Odpri datoteko"
    assert catalog.gettext("Open file") == "Odpri datoteko brez konteksta"


def test_fuzzy_and_untranslated_entries_are_left_out() -> None:
    source = HEADER + (
        '#, fuzzy, python-format\nmsgid "guess"\nmsgstr "ugib"\n\n'
        'msgid "empty"\nmsgstr ""\n\n'
        'msgid "kept"\nmsgstr "ohranjen"\n'
    )
    entries = parse_po(source)
    assert [e.fuzzy for e in entries] == [False, True, False, False]
    catalog = load(compile_mo(entries))
    assert catalog.gettext("guess") == "guess"
    assert catalog.gettext("empty") == "empty"
    assert catalog.gettext("kept") == "ohranjen"


@pytest.mark.parametrize(
    "source",
    [
        'msgid "a"\nmsgstr "b\n',  # unterminated
        'msgid "a"\nmsgstr "b" "c"\n',  # two strings on one line
        '"orphan"\n',  # a continuation of nothing
        'msgid "a"\nmsgtxt "b"\n',  # unknown keyword
        'msgid "a"\nmsgstr[x] "b"\n',  # bad plural index
        'msgid "a\\q"\nmsgstr "b"\n',  # unknown escape
    ],
)
def test_malformed_po_is_refused(source: str) -> None:
    with pytest.raises(PoError, match="line"):
        parse_po(source)


def test_translated_means_every_form() -> None:
    assert not PoEntry("a", "as", msgstr={0: "x", 1: ""}).translated
    assert PoEntry("a", "as", msgstr={0: "x", 1: "y"}).translated
    assert not PoEntry("a").translated


def test_command_line_writes_the_mo_beside_the_po(tmp_path: Path) -> None:
    po = tmp_path / "x.po"
    po.write_text(HEADER + 'msgid "yes"\nmsgstr "da"\n', encoding="utf-8")
    assert main([str(po)]) == 0
    assert load((tmp_path / "x.mo").read_bytes()).gettext("yes") == "da"


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext's msgfmt not installed")
def test_same_bytes_as_gnu_msgfmt(tmp_path: Path) -> None:
    gnu = tmp_path / "gnu.mo"
    subprocess.run(
        ["msgfmt", "--check", "--no-hash", "-o", str(gnu), str(PO)], check=True
    )
    assert compile_mo(parse_po(PO.read_text(encoding="utf-8"))) == gnu.read_bytes()
