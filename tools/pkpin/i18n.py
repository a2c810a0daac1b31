"""Which language pkpin speaks, and its gettext catalog.

Slovenian when the first set of ``LANGUAGE`` (its first entry), ``LC_ALL``,
``LC_MESSAGES`` and ``LANG`` starts with ``sl``; English otherwise. The
catalog is ``pkcard/locale/<lang>/LC_MESSAGES/pkpin.mo`` (built from the
``.po`` beside it by ``python -m pkcard.tools.msgfmt``). Nothing is installed into
builtins: callers pass the translations object along.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from enum import IntEnum
from pathlib import Path

import pkcard

DOMAIN = "pkpin"
LOCALE_DIR = Path(pkcard.__file__).resolve().parent / "locale"
_LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


class Language(IntEnum):
    ENGLISH = 1
    SLOVENIAN = 2

    @property
    def code(self) -> str:
        return "sl" if self is Language.SLOVENIAN else "en"


def language_from_environment(environ: Mapping[str, str]) -> Language:
    """The language the locale variables ask for (the first one set wins)."""
    for name in _LOCALE_VARIABLES:
        value = environ.get(name, "")
        if name == "LANGUAGE":
            value = value.split(":", 1)[0]
        if value:
            return Language.SLOVENIAN if value.lower().startswith("sl") else Language.ENGLISH
    return Language.ENGLISH


def catalog_path(language: Language, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / language.code / "LC_MESSAGES" / f"{DOMAIN}.mo"


def translations(language: Language, locale_dir: Path = LOCALE_DIR) -> gettext.NullTranslations:
    """The catalog for ``language``; English is the msgids themselves.

    A missing Slovenian catalog is an installation defect and raises
    :class:`FileNotFoundError` rather than silently speaking English.
    """
    if language is Language.ENGLISH:
        return gettext.NullTranslations()
    with catalog_path(language, locale_dir).open("rb") as catalog:
        return gettext.GNUTranslations(catalog)
