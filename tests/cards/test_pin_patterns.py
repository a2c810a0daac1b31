"""The digit rules beyond the seeds (issue 15, point 6): patterns and published lists."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pin_oracle import (
    is_common,
    is_keypad,
    is_mirrored,
    is_other_order_date,
    is_repeated_group,
    is_step,
    is_year,
    keypad_lines,
)

from pkcard.errors import PinRule, WeakPin
from pkcard.pin import PIN_FORMATS, PinRef, check_new_pin
from pkcard.pin_policy import COMMON_PINS
from pkcard.secret import Secret

PIN = PIN_FORMATS[PinRef.PIN]
SPIN = PIN_FORMATS[PinRef.SPIN]
PASSWORD = PIN_FORMATS[PinRef.REACTIVATION]


def rule_of(value: str, fmt=PIN) -> PinRule | None:  # type: ignore[no-untyped-def]
    try:
        check_new_pin(Secret(value), fmt, birth_date=None)
    except WeakPin as refused:
        return refused.rule
    return None


@pytest.mark.parametrize(
    ("pin", "rule"),
    [
        ("3112", PinRule.DATE),  # DDMM
        ("1231", PinRule.DATE),  # MMDD
        ("122581", PinRule.DATE),  # MMDDYY
        ("811225", PinRule.DATE),  # YYMMDD
        ("121981", PinRule.DATE),  # MMYYYY
        ("198112", PinRule.DATE),  # YYYYMM
        ("12251981", PinRule.DATE),  # MMDDYYYY
        ("19811225", PinRule.DATE),  # YYYYMMDD
        ("1984", PinRule.YEAR),
        ("1962", PinRule.YEAR),
        ("6969", PinRule.REPEATED_GROUP),
        ("147147", PinRule.REPEATED_GROUP),
        ("58395839", PinRule.REPEATED_GROUP),
        ("447799", PinRule.REPEATED_GROUP),  # each digit doubled
        ("777999", PinRule.REPEATED_GROUP),  # each digit tripled
        ("4994", PinRule.MIRRORED),
        ("47974", PinRule.MIRRORED),
        ("580085", PinRule.MIRRORED),
        ("2468", PinRule.STEP),
        ("9630", PinRule.STEP),
        ("13579", PinRule.STEP),
        ("404142", PinRule.STEP),  # 40 41 42
        ("70605040", PinRule.STEP),  # 70 60 50 40
        ("2580", PinRule.KEYPAD),
        ("0852", PinRule.KEYPAD),
        ("159753", PinRule.KEYPAD),  # the X
        ("147258", PinRule.KEYPAD),  # two columns
        ("789456", PinRule.KEYPAD),
        ("6985", PinRule.KEYPAD),  # around the lower right square
        ("7931", PinRule.KEYPAD),  # the corners
        ("4862", PinRule.KEYPAD),  # the diamond
        ("14789", PinRule.KEYPAD),  # an L turning on the 7
        ("5150", PinRule.COMMON),
        ("0007", PinRule.COMMON),
        ("315475", PinRule.COMMON),
        ("142536", PinRule.COMMON),
        ("73501505", PinRule.COMMON),
    ],
)
def test_each_rule_by_example(pin: str, rule: PinRule) -> None:
    assert rule_of(pin) is rule


PASSING = ("4719", "8264", "3212", "9021", "47195", "503817", "836194", "902143",
           "5817293", "58392671", "60718293", "73105926")


@pytest.mark.parametrize("pin", PASSING)
def test_what_passes(pin: str) -> None:
    assert rule_of(pin) is None


def test_the_spin_gets_the_same_policy() -> None:
    assert rule_of("333333", SPIN) is PinRule.REPEATED  # the seed's own SPIN example
    assert rule_of("159753", SPIN) is PinRule.KEYPAD
    assert rule_of("121981", SPIN) is PinRule.DATE
    assert rule_of("315475", SPIN) is PinRule.COMMON
    assert rule_of("503817", SPIN) is None


def test_a_reactivation_password_of_digits_gets_the_digit_rules() -> None:
    assert rule_of("12251981", PASSWORD) is PinRule.DATE
    assert rule_of("10203040", PASSWORD) is PinRule.STEP
    assert rule_of("147258369", PASSWORD) is PinRule.KEYPAD
    assert rule_of("abcabcabc", PASSWORD) is PinRule.REPEATED_GROUP
    assert rule_of("58392671", PASSWORD) is None
    assert rule_of("Kx7!pQ2#zz", PASSWORD) is None


def test_the_published_lists_are_as_documented() -> None:
    """Sizes and heads as pkcard/pin_data/SOURCES.md states them."""
    assert {n: len(pins) for n, pins in COMMON_PINS.items()} == {4: 513, 6: 605, 8: 552}
    assert all(len(p) == n and p.isdigit() for n, pins in COMMON_PINS.items() for p in pins)
    assert {b"1234", b"1111", b"0000", b"1212", b"7777"} <= COMMON_PINS[4]
    assert {b"123456", b"111111", b"123123", b"696969"} <= COMMON_PINS[6]


def test_every_four_digit_pin_agrees_with_the_oracle() -> None:
    """All 10,000: refused exactly when a rule of the oracle says so."""
    from pin_oracle import is_pattern  # noqa: PLC0415

    from pkcard.pin_policy import is_date, is_repeated, is_sequence  # noqa: PLC0415

    for n in range(10_000):
        pin = f"{n:04d}"
        digits = tuple(int(c) for c in pin)
        weak = is_repeated(digits) or is_sequence(digits) or is_date(digits) or is_pattern(pin)
        assert (rule_of(pin) is not None) == weak, pin


# --- hypothesis: generated patterns are refused --------------------------------

six_or_eight = st.sampled_from([6, 8])


@given(day=st.dates(date(1900, 1, 1), date(2099, 12, 31)),
       fmt=st.sampled_from(["%d%m", "%m%d", "%d%m%y", "%m%d%y", "%y%m%d", "%m%Y", "%Y%m",
                            "%d%m%Y", "%m%d%Y", "%Y%m%d"]))
def test_every_date_in_every_order_is_refused(day: date, fmt: str) -> None:
    assert rule_of(day.strftime(fmt)) is not None
    assert is_other_order_date(day.strftime(fmt)) or fmt in ("%d%m", "%d%m%y", "%d%m%Y")


@given(year=st.integers(1900, 2099))
def test_every_year_is_refused(year: int) -> None:
    assert rule_of(str(year)) is not None


@given(group=st.text("0123456789", min_size=1, max_size=4), times=st.integers(2, 8))
def test_every_repeated_group_is_refused(group: str, times: int) -> None:
    pin = group * times
    if 4 <= len(pin) <= 8:
        assert rule_of(pin) is not None


@given(half=st.text("0123456789", min_size=2, max_size=4),
       middle=st.sampled_from(["", *"0123456789"]))
def test_every_mirrored_pin_is_refused(half: str, middle: str) -> None:
    pin = half + middle + half[::-1]
    if len(pin) <= 8:
        assert rule_of(pin) is not None


@given(start=st.integers(0, 9), step=st.sampled_from([2, 3, 4, -2, -3, -4]),
       length=st.integers(4, 5))
def test_every_constant_step_is_refused(start: int, step: int, length: int) -> None:
    digits = [start + step * i for i in range(length)]
    if all(0 <= d <= 9 for d in digits):
        assert rule_of("".join(map(str, digits))) is PinRule.STEP


@given(first=st.sampled_from(sorted(keypad_lines())),
       second=st.sampled_from(sorted(keypad_lines())), shared=st.booleans())
def test_every_pair_of_keypad_lines_is_refused(first: str, second: str, shared: bool) -> None:
    pin = first + (second[1:] if shared and second[0] == first[-1] else second)
    if 4 <= len(pin) <= 8:
        assert rule_of(pin) is not None


@given(pin=st.text("0123456789", min_size=4, max_size=8))
def test_the_policy_matches_the_oracle_on_any_pin(pin: str) -> None:
    from pin_oracle import is_pattern  # noqa: PLC0415

    from pkcard.pin_policy import is_date, is_repeated, is_sequence  # noqa: PLC0415

    digits = tuple(int(c) for c in pin)
    weak = is_repeated(digits) or is_sequence(digits) or is_date(digits) or is_pattern(pin)
    assert (rule_of(pin) is not None) == weak


@given(length=six_or_eight, data=st.data())
def test_every_published_pin_is_refused(length: int, data: st.DataObject) -> None:
    pin = data.draw(st.sampled_from(sorted(COMMON_PINS[length]))).decode()
    assert rule_of(pin) is not None
    assert is_common(pin)


def test_the_oracle_helpers_agree_on_examples() -> None:
    assert is_year("1984")
    assert not is_year("2100")
    assert is_repeated_group("1122")
    assert is_mirrored("1221")
    assert is_step("2468")
    assert is_keypad("2580")
    assert is_keypad("1254")
    assert not is_keypad("8264")
