"""argparse in pkpin's language: help, usage and error messages, with pkpin's exit code.

argparse words its own texts ("usage:", "options", "the following arguments
are required", ...) through the process-wide gettext domain. pkpin keeps no
process-wide state, so :class:`Parser` says them itself from pkpin's catalog:
the section titles and ``-h`` at construction, the usage prefix through its
formatter, and error messages by matching argparse's English templates
(:func:`translate_error`). A message argparse adds later that is not in the
table stays English rather than breaking.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

from pkcard.tools.pkpin.messages import Messages
from pkcard.tools.pkpin.outcome import ExitCode

_PLACEHOLDER = re.compile(r"%\((\w+)\)[sr]|%[sr]")


def argparse_texts(words: Messages) -> tuple[tuple[str, str], ...]:
    """argparse's English error templates and their translations (Python 3.11+)."""
    t = words
    return (
        ("argument %(argument_name)s: %(message)s",
         t.tr("argument %(argument_name)s: %(message)s")),
        ("the following arguments are required: %s",
         t.tr("the following arguments are required: %s")),
        ("one of the arguments %s is required", t.tr("one of the arguments %s is required")),
        ("unrecognized arguments: %s", t.tr("unrecognized arguments: %s")),
        ("not allowed with argument %s", t.tr("not allowed with argument %s")),
        ("ignored explicit argument %r", t.tr("ignored explicit argument %r")),
        ("expected one argument", t.tr("expected one argument")),
        ("expected at most one argument", t.tr("expected at most one argument")),
        ("expected at least one argument", t.tr("expected at least one argument")),
        ("invalid choice: %(value)r (choose from %(choices)s)",
         t.tr("invalid choice: %(value)r (choose from %(choices)s)")),
        ("invalid %(type)s value: %(value)r", t.tr("invalid %(type)s value: %(value)r")),
        ("ambiguous option: %(option)s could match %(matches)s",
         t.tr("ambiguous option: %(option)s could match %(matches)s")),
        ("unexpected option string: %s", t.tr("unexpected option string: %s")),
    )


def _pattern(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    last = 0
    for number, found in enumerate(_PLACEHOLDER.finditer(template)):
        parts.append(re.escape(template[last : found.start()]))
        parts.append(f"(?P<{found.group(1) or f'_{number}'}>.+?)")
        last = found.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts), re.DOTALL)


def _fill(template: str, values: dict[str, str]) -> str:
    """``template`` with each placeholder replaced by the text captured for it."""
    numbers = iter(sorted(name for name in values if name.startswith("_")))

    def one(found: re.Match[str]) -> str:
        name = found.group(1) or next(numbers)
        return values[name]

    return _PLACEHOLDER.sub(one, template)


def translate_error(message: str, texts: Iterable[tuple[str, str]]) -> str:
    """``message`` (built by argparse from an English template) in the catalog's language."""
    table = tuple(texts)
    for english, translated in table:
        found = _pattern(english).fullmatch(message)
        if found is None:
            continue
        values = {name: value for name, value in found.groupdict().items() if value is not None}
        if "message" in values:
            values["message"] = translate_error(values["message"], table)
        return _fill(translated, values)
    return message


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help layout as given (the exit-code table), with a translated usage prefix."""

    def __init__(self, prog: str, usage_prefix: str) -> None:
        super().__init__(prog)
        self._usage_prefix = usage_prefix

    def add_usage(
        self,
        usage: str | None,
        actions: Iterable[argparse.Action],
        groups: Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        super().add_usage(usage, actions, groups, self._usage_prefix if prefix is None else prefix)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that speaks ``words``' language and exits with :attr:`ExitCode.USAGE`.

    Subcommand parsers must be made with ``add_parser(name, words=words, ...)``.
    """

    def __init__(self, *args: Any, words: Messages, **kwargs: Any) -> None:
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._words = words
        self._positionals.title = words.tr("positional arguments")
        self._optionals.title = words.tr("options")
        self.add_argument(
            "-h", "--help", action="help", default=argparse.SUPPRESS,
            help=words.tr("show this help message and exit"),
        )

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        if kwargs.get("action") == "version" and "help" not in kwargs:
            kwargs["help"] = self._words.tr("show program's version number and exit")
        return super().add_argument(*args, **kwargs)

    def _get_formatter(self) -> argparse.HelpFormatter:
        return _Formatter(self.prog, self._words.tr("usage: "))

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        text = translate_error(message, argparse_texts(self._words))
        self.exit(
            ExitCode.USAGE,
            self._words.tr("%(prog)s: error: %(message)s\n") % {"prog": self.prog, "message": text},
        )
