"""The digit rules of the PIN policy: the patterns people pick, and the published lists.

:func:`pkcard.pin.check_new_pin` applies the length, charset, birth-date and
same-as-old rules itself and asks :func:`first_broken_rule` for everything a
string of digits can say on its own. The rules, in the order they are
checked (the first broken one is reported; docs/pkpin.md lists them with
examples of what passes):

``REPEATED``        one digit throughout: 1111, 333333.
``SEQUENCE``        one run with step +1 or -1, modulo 10: 1234, 8901, 3456789.
``DATE``            a valid date in a common order. 4 digits: DDMM, MMDD (any day
                    of a leap year). 6 digits: DDMMYY, MMDDYY, YYMMDD (valid in
                    19YY or 20YY), MMYYYY, YYYYMM. 8 digits: DDMMYYYY, MMDDYYYY,
                    YYYYMMDD. Years 1900-2099.
``YEAR``            a 4-digit year 1900-2099: 1984, 2001.
``REPEATED_GROUP``  a group of digits repeated (1212, 123123, 12341234), or each
                    digit doubled or tripled (1122, 112233, 111222).
``MIRRORED``        the second half mirrors the first: 1221, 12321, 123321.
``STEP``            a constant step other than 0 and 1: 2468, 1357, 9630, 02468;
                    or 6 or 8 digits in 2-digit groups counting by 1 or 10:
                    010203, 121314, 102030, 10203040.
``KEYPAD``          a line or shape on the telephone keypad (1-2-3 on top, 0
                    under 8, as on PIN-pad readers): straight lines of at least
                    three keys one after the other or turning on a shared key
                    (2580, 147258, 159753, 14789), or four keys traced around a
                    2x2 square, the corners or the diamond (1254, 1397, 2684).
``COMMON``          among the most frequent PINs of its length in the published
                    lists in ``pkcard/pin_data`` (sources and licences in
                    ``pkcard/pin_data/SOURCES.md``).

All functions are pure. Digit tuples derived from a secret cannot be wiped;
they live only inside these calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType

from pkcard.errors import PinRule

Digits = tuple[int, ...]

FIRST_YEAR = 1900
LAST_YEAR = 2099


def _load_common() -> Mapping[int, frozenset[bytes]]:
    # Beside this module (importlib.resources would load zipfile for a plain directory).
    data = Path(__file__).resolve().parent / "pin_data"
    lists: dict[int, frozenset[bytes]] = {}
    for length in (4, 6, 8):
        text = (data / f"common-{length}.txt").read_text(encoding="ascii")
        pins = frozenset(line.strip().encode("ascii") for line in text.splitlines() if line.strip())
        lists[length] = pins
    return MappingProxyType(lists)


COMMON_PINS: Mapping[int, frozenset[bytes]] = _load_common()
"""The published lists by PIN length (read-only, loaded once at import)."""

# Telephone keypad: (row, column) of each key.
KEYPAD_POSITIONS: Mapping[int, tuple[int, int]] = MappingProxyType(
    {1: (0, 0), 2: (0, 1), 3: (0, 2), 4: (1, 0), 5: (1, 1), 6: (1, 2),
     7: (2, 0), 8: (2, 1), 9: (2, 2), 0: (3, 1)}
)

# Four-key shapes, each in the order one traces it around.
KEYPAD_SHAPES: tuple[Digits, ...] = (
    (1, 2, 5, 4), (2, 3, 6, 5), (4, 5, 8, 7), (5, 6, 9, 8),  # 2x2 squares
    (1, 3, 9, 7),  # corners
    (2, 6, 8, 4),  # diamond
)


def _number(digits: Digits) -> int:
    value = 0
    for d in digits:
        value = value * 10 + d
    return value


def _valid(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def is_repeated(digits: Digits) -> bool:
    return len(set(digits)) == 1


def is_sequence(digits: Digits) -> bool:
    steps = {(b - a) % 10 for a, b in pairwise(digits)}
    return steps in ({1}, {9})


def _year_ok(year: int) -> bool:
    return FIRST_YEAR <= year <= LAST_YEAR


def _dmy2(day: int, month: int, yy: int) -> bool:
    return _valid(1900 + yy, month, day) or _valid(2000 + yy, month, day)


def _dates(digits: Digits) -> Iterator[bool]:
    """One answer per date order of this length (lazily: stops at the first match)."""
    n = len(digits)
    two = [_number(digits[i : i + 2]) for i in range(0, n - 1, 2)]
    if n == 4:
        yield _valid(2000, two[1], two[0])  # DDMM
        yield _valid(2000, two[0], two[1])  # MMDD
    elif n == 6:
        yield _dmy2(two[0], two[1], two[2])  # DDMMYY
        yield _dmy2(two[1], two[0], two[2])  # MMDDYY
        yield _dmy2(two[2], two[1], two[0])  # YYMMDD
        yield 1 <= two[0] <= 12 and _year_ok(_number(digits[2:]))  # MMYYYY
        yield 1 <= two[2] <= 12 and _year_ok(_number(digits[:4]))  # YYYYMM
    elif n == 8:
        last4, first4 = _number(digits[4:]), _number(digits[:4])
        yield _year_ok(last4) and _valid(last4, two[1], two[0])  # DDMMYYYY
        yield _year_ok(last4) and _valid(last4, two[0], two[1])  # MMDDYYYY
        yield _year_ok(first4) and _valid(first4, two[2], two[3])  # YYYYMMDD


def is_date(digits: Digits) -> bool:
    return any(_dates(digits))


def is_year(digits: Digits) -> bool:
    return len(digits) == 4 and _year_ok(_number(digits))


def is_repeated_group(digits: Digits) -> bool:
    n = len(digits)
    for size in range(1, n // 2 + 1):
        if n % size == 0 and digits == digits[:size] * (n // size):
            return True
    for times in (2, 3):  # each digit doubled or tripled: 1122, 112233, 111222
        if n % times == 0 and n // times >= 2 and all(
            len(set(digits[i : i + times])) == 1 for i in range(0, n, times)
        ):
            return True
    return False


def is_mirrored(digits: Digits) -> bool:
    return len(digits) >= 4 and digits == digits[::-1]


def is_step(digits: Digits) -> bool:
    steps = {b - a for a, b in pairwise(digits)}
    if len(steps) == 1 and abs(next(iter(steps))) >= 2:
        return True
    n = len(digits)
    if n % 2 == 0 and n >= 6:
        groups = [_number(digits[i : i + 2]) for i in range(0, n, 2)]
        group_steps = {b - a for a, b in pairwise(groups)}
        return group_steps in ({1}, {-1}, {10}, {-10})
    return False


def _direction(a: int, b: int) -> tuple[int, int] | None:
    """The unit step from key ``a`` to key ``b``, or None when they are not neighbours."""
    (r1, c1), (r2, c2) = KEYPAD_POSITIONS[a], KEYPAD_POSITIONS[b]
    dr, dc = r2 - r1, c2 - c1
    if (dr, dc) == (0, 0) or max(abs(dr), abs(dc)) != 1:
        return None
    return dr, dc


def _is_line(digits: Digits) -> bool:
    if len(digits) < 3:
        return False
    directions = {_direction(a, b) for a, b in pairwise(digits)}
    return len(directions) == 1 and None not in directions


def _is_keypad_lines(digits: Digits) -> bool:
    """Straight lines of 3+ keys, each starting after the last or on its last key."""
    n = len(digits)
    ends: set[int] = set()
    starts = {0}
    for start in range(n):
        if start not in starts:
            continue
        for end in range(start + 2, n):
            if not _is_line(digits[start : end + 1]):
                break
            ends.add(end)
            starts.update((end, end + 1))
    return n - 1 in ends


def _is_keypad_shape(digits: Digits) -> bool:
    if len(digits) != 4:
        return False
    for shape in KEYPAD_SHAPES:
        for turn in range(4):
            cycle = shape[turn:] + shape[:turn]
            if digits in (cycle, cycle[:1] + cycle[:0:-1]):
                return True
    return False


def is_keypad(digits: Digits) -> bool:
    return _is_keypad_lines(digits) or _is_keypad_shape(digits)


def is_common(raw: bytes) -> bool:
    return raw in COMMON_PINS.get(len(raw), frozenset())


def first_broken_rule(digits: Digits, raw: bytes) -> PinRule | None:
    """The first digit rule (see the module docstring) that ``digits`` break, or None.

    ``raw`` is the same value as ASCII (for the published lists).
    """
    checks = (
        (PinRule.REPEATED, is_repeated),
        (PinRule.SEQUENCE, is_sequence),
        (PinRule.DATE, is_date),
        (PinRule.YEAR, is_year),
        (PinRule.REPEATED_GROUP, is_repeated_group),
        (PinRule.MIRRORED, is_mirrored),
        (PinRule.STEP, is_step),
        (PinRule.KEYPAD, is_keypad),
    )
    for rule, broken in checks:
        if broken(digits):
            return rule
    if is_common(raw):
        return PinRule.COMMON
    return None


def is_weak_digits(text: str) -> bool:
    """Whether an all-digit string breaks a digit rule (for measurements; not for secrets)."""
    return first_broken_rule(tuple(int(c) for c in text), text.encode("ascii")) is not None


__all__ = [
    "COMMON_PINS",
    "KEYPAD_POSITIONS",
    "KEYPAD_SHAPES",
    "first_broken_rule",
    "is_common",
    "is_date",
    "is_keypad",
    "is_mirrored",
    "is_repeated",
    "is_repeated_group",
    "is_sequence",
    "is_step",
    "is_weak_digits",
    "is_year",
]
