"""The PIN policy (pkcard.pin.check_new_pin) against examples and an independent oracle."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pin_oracle import is_other_order_date, is_pattern

from pkcard.errors import (
    CardDead,
    LastTryNotConfirmed,
    MalformedPin,
    PinBlocked,
    PinDisabled,
    PinRule,
    TransportPinActive,
    WeakPin,
)
from pkcard.pin import (
    PIN_FORMATS,
    PadEntry,
    PinRef,
    PinState,
    PinStatus,
    check_confirmation,
    check_new_pin,
    check_presented,
    entry_from_field,
    field_of,
    format_pin_block,
    guard_last_try,
    host_secret,
    is_last_try,
    require_transport,
    require_usable,
    wipe,
)
from pkcard.secret import Secret

PIN = PIN_FORMATS[PinRef.PIN]
SPIN = PIN_FORMATS[PinRef.SPIN]
PASSWORD = PIN_FORMATS[PinRef.REACTIVATION]
BIRTH = date(1981, 3, 12)

ASCENDING = "0123456789" * 2
DESCENDING = "9876543210" * 2


def rule_of(pin: str, *, birth_date: date | None = None, old: str | None = None) -> PinRule | None:
    try:
        check_new_pin(
            Secret(pin), PIN, birth_date=birth_date, old=Secret(old) if old is not None else None
        )
    except WeakPin as exc:
        return exc.rule
    return None


# --- examples ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pin", "rule"),
    [
        ("1234", PinRule.SEQUENCE),
        ("3456789", PinRule.SEQUENCE),
        ("9876", PinRule.SEQUENCE),
        ("8901", PinRule.SEQUENCE),  # wrap-around counts
        ("1098", PinRule.SEQUENCE),
        ("2109", PinRule.SEQUENCE),  # a run before a date (21 Sep)
        ("1111", PinRule.REPEATED),  # a repeat before a date (11 Nov)
        ("333333", PinRule.REPEATED),
        ("31122000", PinRule.DATE),
        ("2902", PinRule.DATE),
        ("010190", PinRule.DATE),
        ("290200", PinRule.DATE),  # 2000 was a leap year
        ("123", PinRule.LENGTH),
        ("123456789", PinRule.LENGTH),
        ("12a4", PinRule.DIGITS_ONLY),
        ("", PinRule.LENGTH),
    ],
)
def test_weak_examples(pin: str, rule: PinRule) -> None:
    assert rule_of(pin) == rule


@pytest.mark.parametrize(
    "pin", ["1203", "0312", "1981", "0381", "120381", "810312", "031981", "12031981", "19810312"]
)
def test_own_birth_date_is_refused_with_priority(pin: str) -> None:
    assert rule_of(pin, birth_date=BIRTH) is PinRule.BIRTH_DATE


@pytest.mark.parametrize(
    # 290231: 29 Feb of no leap year in DDMMYY and no date in any other order
    # (it replaces 290201, which is 1 Feb 2029 read as YYMMDD, issue 15)
    "pin", ["4719", "123409", "290231", "3212", "31129999", "8264", "50718263"]
)
def test_accepted_examples(pin: str) -> None:
    assert rule_of(pin, birth_date=BIRTH) is None


def test_same_as_old_is_refused() -> None:
    assert rule_of("4719", old="4719") is PinRule.SAME_AS_OLD
    assert rule_of("4719", old="4718") is None


def test_refusal_names_the_rule_not_the_pin() -> None:
    with pytest.raises(WeakPin) as info:
        check_new_pin(Secret("120381"), PIN, birth_date=BIRTH)
    assert "120381" not in str(info.value)
    assert "BIRTH_DATE" in str(info.value)


def test_password_policy() -> None:
    check_new_pin(Secret("Kx7!pQ2#zz"), PASSWORD, birth_date=BIRTH)
    check_new_pin(Secret("correct horse 9"), PASSWORD, birth_date=BIRTH)
    with pytest.raises(WeakPin) as info:
        check_new_pin(Secret("aaaaaaaa"), PASSWORD, birth_date=None)
    assert info.value.rule is PinRule.REPEATED
    with pytest.raises(WeakPin) as info:
        check_new_pin(Secret("short"), PASSWORD, birth_date=None)
    assert info.value.rule is PinRule.LENGTH
    with pytest.raises(WeakPin) as info:
        check_new_pin(Secret("tab\there-pass"), PASSWORD, birth_date=None)
    assert info.value.rule is PinRule.DIGITS_ONLY


def test_spin_length_limits() -> None:
    with pytest.raises(WeakPin) as info:
        check_new_pin(Secret("4719"), SPIN, birth_date=None)
    assert info.value.rule is PinRule.LENGTH
    check_new_pin(Secret("471958"), SPIN, birth_date=None)


def test_confirmation() -> None:
    check_confirmation(Secret("4719"), Secret("4719"))
    with pytest.raises(WeakPin) as info:
        check_confirmation(Secret("4719"), Secret("4791"))
    assert info.value.rule is PinRule.CONFIRMATION_MISMATCH


@pytest.mark.parametrize("value", ["", "123", "123456789", "12a4", "12 4", "١٢٣٤"])
def test_presented_malformed(value: str) -> None:
    with pytest.raises(MalformedPin):
        check_presented(Secret(value), PIN)


def test_presented_wiped_is_malformed() -> None:
    secret = Secret("4719")
    secret.wipe()
    with pytest.raises(MalformedPin):
        check_presented(secret, PIN)


def test_pin_block_is_ascii_padded_and_wipeable() -> None:
    block = format_pin_block(Secret("4719"), PIN)
    assert bytes(block) == b"4719" + b"\xff" * 4
    wipe(block)
    assert bytes(block) == bytes(8)
    assert bytes(format_pin_block(Secret("Kx7!pQ2#zz"), PASSWORD)) == b"Kx7!pQ2#zz" + b"\xff" * 6


# --- hypothesis: generated weak PINs -----------------------------------------

lengths = st.integers(min_value=4, max_value=8)


@given(start=st.integers(0, 9), length=lengths, step=st.sampled_from([1, -1]))
def test_every_run_is_a_sequence(start: int, length: int, step: int) -> None:
    pin = "".join(str((start + step * i) % 10) for i in range(length))
    assert rule_of(pin) is PinRule.SEQUENCE


@given(digit=st.integers(0, 9), length=lengths)
def test_every_repeat_is_repeated(digit: int, length: int) -> None:
    assert rule_of(str(digit) * length) is PinRule.REPEATED


DATE_FORMATS = ("%d%m", "%d%m%y", "%d%m%Y")
BIRTH_FORMATS = ("%d%m", "%m%d", "%Y", "%m%y", "%d%m%y", "%y%m%d", "%m%Y", "%d%m%Y", "%Y%m%d")


@given(day=st.dates(date(1900, 1, 1), date(2099, 12, 31)), fmt=st.sampled_from(DATE_FORMATS))
def test_every_date_is_refused(day: date, fmt: str) -> None:
    pin = day.strftime(fmt)
    expected = PinRule.DATE
    if is_repeated(pin):
        expected = PinRule.REPEATED
    elif is_run(pin):
        expected = PinRule.SEQUENCE
    assert rule_of(pin) is expected


@given(birth=st.dates(date(1920, 1, 1), date(2010, 12, 31)), fmt=st.sampled_from(BIRTH_FORMATS))
def test_every_birth_date_rendering_is_refused(birth: date, fmt: str) -> None:
    assert rule_of(birth.strftime(fmt), birth_date=birth) is PinRule.BIRTH_DATE


# --- hypothesis: the policy agrees with an independent oracle ------------------


def is_repeated(pin: str) -> bool:
    return pin == pin[0] * len(pin)


def is_run(pin: str) -> bool:
    return pin in ASCENDING or pin in DESCENDING


def is_date(pin: str) -> bool:
    return is_ddmm_date(pin) or is_other_order_date(pin)


def is_ddmm_date(pin: str) -> bool:
    candidates = {4: [(pin + "2000", "%d%m%Y")], 6: [(pin, "%d%m%y")], 8: [(pin, "%d%m%Y")]}
    for text, fmt in candidates.get(len(pin), []):
        try:
            parsed = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if len(pin) == 8 and not 1900 <= parsed.year <= 2099:
            continue
        return True
    if len(pin) == 6:  # %y maps 00-68 to 20xx: also try the other century (29 Feb)
        try:
            datetime.strptime(pin[:4] + "19" + pin[4:], "%d%m%Y")
        except ValueError:
            return False
        return True
    return False


def is_birth(pin: str, birth: date) -> bool:
    return pin in {birth.strftime(fmt) for fmt in BIRTH_FORMATS}


@settings(max_examples=300)
@given(
    pin=st.text(alphabet="0123456789", min_size=4, max_size=8),
    birth=st.dates(date(1920, 1, 1), date(2010, 12, 31)),
)
def test_policy_matches_oracle(pin: str, birth: date) -> None:
    weak = (is_birth(pin, birth) or is_repeated(pin) or is_run(pin) or is_date(pin)
            or is_pattern(pin))
    rule = rule_of(pin, birth_date=birth)
    assert (rule is not None) == weak
    if is_birth(pin, birth):
        assert rule is PinRule.BIRTH_DATE


@given(pin=st.text(alphabet="0123456789", min_size=4, max_size=8))
def test_accepted_pins_are_not_weak(pin: str) -> None:
    if rule_of(pin) is None:
        assert not is_repeated(pin)
        assert not is_run(pin)
        assert not is_date(pin)


# --- the pure pre-checks shared by the card application and pkpin ----------------


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (PinState.DEAD, CardDead),
        (PinState.BLOCKED, PinBlocked),
        (PinState.TRANSPORT, TransportPinActive),
        (PinState.DISABLED, PinDisabled),
    ],
)
def test_require_usable_refuses_from_the_status_alone(
    state: PinState, error: type[Exception]
) -> None:
    with pytest.raises(error):
        require_usable(PinStatus(PinRef.PIN, state, 0, 3))


def test_require_usable_and_the_last_try_guard() -> None:
    require_usable(PinStatus(PinRef.PIN, PinState.VERIFIED, 3, 3))
    last = PinStatus(PinRef.PUK, PinState.VERIFIABLE, 1, 5)
    require_usable(last)
    assert is_last_try(last)
    assert not is_last_try(PinStatus(PinRef.PUK, PinState.VERIFIABLE, 2, 5))
    with pytest.raises(LastTryNotConfirmed):
        guard_last_try(last, confirm_last_try=False)
    guard_last_try(last, confirm_last_try=True)


def test_pin_entry_from_and_to_a_request_field() -> None:
    assert entry_from_field("") == PadEntry()
    typed = entry_from_field("1234")
    assert isinstance(typed, Secret)
    assert typed == Secret("1234")
    assert field_of(PadEntry()) == ""
    assert field_of(Secret("1234")) == "1234"
    assert field_of("5678") == "5678"
    empty = host_secret(PadEntry())
    assert isinstance(empty, Secret)
    assert len(empty) == 0
    assert host_secret(typed) is typed
    with PadEntry() as pad:
        assert pad == PadEntry()


@pytest.mark.parametrize("state", [s for s in PinState if s is not PinState.TRANSPORT])
def test_require_transport_refuses_an_active_spin(state: PinState) -> None:
    require_transport(PinStatus(PinRef.SPIN, PinState.TRANSPORT, 3, 3))
    with pytest.raises(PinDisabled):
        require_transport(PinStatus(PinRef.SPIN, state, 3, 3))
