"""A small .po to .mo compiler (the subset of GNU msgfmt pkcard's catalogs use).

``python -m pkcard.tools.msgfmt FILE.po [-o FILE.mo]`` writes the binary catalog
next to the source by default. Supported: ``msgctxt``, ``msgid``,
``msgid_plural``, ``msgstr`` and ``msgstr[N]``, multi-line strings, the
C escapes ``\\n \\t \\" \\\\``, comments. Entries flagged ``fuzzy`` and
untranslated entries are left out, as GNU msgfmt does. The output is the
GNU .mo format (little-endian, sorted, no hash table), which
:class:`gettext.GNUTranslations` reads.
"""

from __future__ import annotations

import argparse
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MO_MAGIC = 0x950412DE
_HEADER_SIZE = 7 * 4
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}


class PoError(ValueError):
    """The .po source does not parse; the message names the line."""


@dataclass
class PoEntry:
    """One message of a catalog."""

    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    fuzzy: bool = False

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(self.msgstr.values())


def _unquote(text: str, line_number: int) -> str:
    text = text.strip()
    if len(text) < 2 or not text.startswith('"') or not text.endswith('"'):
        raise PoError(f"line {line_number}: expected a quoted string")
    body = text[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            if index + 1 >= len(body) or body[index + 1] not in _ESCAPES:
                raise PoError(f"line {line_number}: unknown escape")
            out.append(_ESCAPES[body[index + 1]])
            index += 2
            continue
        if char == '"':
            raise PoError(f"line {line_number}: unescaped quote")
        out.append(char)
        index += 1
    return "".join(out)


def parse_po(source: str) -> list[PoEntry]:
    """The entries of a .po file, in order."""
    entries: list[PoEntry] = []
    entry = PoEntry()
    started = False
    fuzzy_next = False
    target: tuple[str, int] | None = None  # which field continuation lines extend

    def finish() -> None:
        nonlocal entry, started
        if started:
            entries.append(entry)
        entry = PoEntry()
        started = False

    for number, raw in enumerate(source.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line[2:].replace(",", " ").split():
                fuzzy_next = True
            continue
        if line.startswith('"'):
            if target is None:
                raise PoError(f"line {number}: a string continues nothing")
            _extend(entry, target, _unquote(line, number))
            continue
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgctxt", "msgid") and (
            entry.msgstr or (keyword == "msgctxt" and started)
        ):
            finish()
        if keyword in ("msgctxt", "msgid") and not started:
            entry.fuzzy, fuzzy_next = fuzzy_next, False
        if keyword in ("msgctxt", "msgid"):
            started = True
        target = _set_field(entry, keyword, _unquote(rest, number), number)
    finish()
    return entries


def _set_field(entry: PoEntry, keyword: str, text: str, number: int) -> tuple[str, int]:
    """Store ``keyword``'s string; return the field later continuation lines extend."""
    if keyword == "msgctxt":
        entry.msgctxt = text
        return ("msgctxt", 0)
    if keyword == "msgid":
        entry.msgid = text
        return ("msgid", 0)
    if keyword == "msgid_plural":
        entry.msgid_plural = text
        return ("msgid_plural", 0)
    if keyword == "msgstr":
        entry.msgstr[0] = text
        return ("msgstr", 0)
    if keyword.startswith("msgstr[") and keyword.endswith("]"):
        index_text = keyword[len("msgstr[") : -1]
        if not index_text.isdigit():
            raise PoError(f"line {number}: bad plural index")
        entry.msgstr[int(index_text)] = text
        return ("msgstr", int(index_text))
    raise PoError(f"line {number}: unknown keyword {keyword[:20]!r}")


def _extend(entry: PoEntry, target: tuple[str, int], text: str) -> None:
    name, index = target
    if name == "msgctxt":
        entry.msgctxt = (entry.msgctxt or "") + text
    elif name == "msgid":
        entry.msgid += text
    elif name == "msgid_plural":
        entry.msgid_plural = (entry.msgid_plural or "") + text
    else:
        entry.msgstr[index] += text


def _key_value(entry: PoEntry) -> tuple[bytes, bytes]:
    key = entry.msgid
    if entry.msgctxt is not None:
        key = f"{entry.msgctxt}\x04{key}"
    if entry.msgid_plural is not None:
        key = f"{key}\0{entry.msgid_plural}"
        value = "\0".join(entry.msgstr[i] for i in sorted(entry.msgstr))
    else:
        value = entry.msgstr.get(0, "")
    return key.encode("utf-8"), value.encode("utf-8")


def compile_mo(entries: Sequence[PoEntry]) -> bytes:
    """The .mo bytes for ``entries`` (the header entry, msgid "", is kept)."""
    pairs = sorted(
        _key_value(entry)
        for entry in entries
        if not entry.fuzzy and (entry.translated or entry.msgid == "")
    )
    count = len(pairs)
    keys_offset = _HEADER_SIZE
    values_offset = keys_offset + count * 8
    data_offset = values_offset + count * 8
    data = bytearray()
    key_table = bytearray()
    value_table = bytearray()
    for key, _ in pairs:
        key_table += struct.pack("<II", len(key), data_offset + len(data))
        data += key + b"\0"
    for _, value in pairs:
        value_table += struct.pack("<II", len(value), data_offset + len(data))
        data += value + b"\0"
    # No hash table (size 0); its offset points past the tables, as GNU msgfmt writes it.
    header = struct.pack("<7I", MO_MAGIC, 0, count, keys_offset, values_offset, 0, data_offset)
    return header + bytes(key_table) + bytes(value_table) + bytes(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msgfmt", description="Compile a .po file to .mo.")
    parser.add_argument("po", type=Path)
    parser.add_argument("-o", "--output", type=Path, help="default: the .po path with .mo")
    args = parser.parse_args(argv)
    try:
        entries = parse_po(args.po.read_text(encoding="utf-8"))
    except (OSError, PoError) as error:
        parser.exit(1, f"msgfmt: {args.po}: {error}\n")
    output: Path = args.output or args.po.with_suffix(".mo")
    output.write_bytes(compile_mo(entries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
