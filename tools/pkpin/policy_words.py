"""pkpin's words for the PIN-policy rules beyond the seeds, and the seed's advice.

:meth:`Messages.weak <pkcard.tools.pkpin.messages.Messages.weak>` words the
seeds' rules itself and asks :func:`rule_text` for the rules of
:mod:`pkcard.pin_policy` (issue 15): each refusal names its rule with an
example of what the rule refuses, never the value typed. :func:`advice` is
the seed's "Izbrano število naj bo čim bolj naključno", which pkpin prints
before a new PIN or signing PIN is chosen.
"""

from __future__ import annotations

import gettext

from pkcard.errors import PinRule


def rule_text(t: gettext.NullTranslations, rule: PinRule) -> str | None:
    """The refusal for ``rule`` (``%(secret)s`` names the secret), or None for the seeds' rules."""
    texts = {
        PinRule.YEAR: t.gettext("The new %(secret)s must not be a year, such as 1984."),
        PinRule.REPEATED_GROUP: t.gettext(
            "The new %(secret)s must not repeat a group of digits, such as 1212, 123123 or 1122."
        ),
        PinRule.MIRRORED: t.gettext(
            "The new %(secret)s must not read the same backwards, such as 1221 or 123321."
        ),
        PinRule.STEP: t.gettext(
            "The new %(secret)s must not count in equal steps, such as 2468 or 102030."
        ),
        PinRule.KEYPAD: t.gettext(
            "The new %(secret)s must not be a line or shape on the keypad, "
            "such as 2580, 159753 or 1254."
        ),
        PinRule.COMMON: t.gettext(
            "The new %(secret)s is one of the most common PINs in published studies."
        ),
    }
    return texts.get(rule)


def advice(t: gettext.NullTranslations) -> str:
    """The seed's advice for choosing a PIN."""
    return t.gettext(
        "The number you choose should be as random as possible: not a sequence of digits, "
        "a date (your birth date least of all), repeated digits or a keypad pattern."
    )


__all__ = ["advice", "rule_text"]
