from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard import errors
from pkcard.errors import WrongPin, tries_left_text
from pkcard.sw import (
    SW,
    available_length,
    describe,
    error_for_sw,
    is_more_data,
    is_verification_failed,
    is_wrong_le,
    retries_left,
)


@pytest.mark.parametrize(
    ("sw", "error"),
    [
        (0x6A82, errors.FileNotFound),
        (0x6982, errors.SecurityStatusNotSatisfied),
        (0x6985, errors.ConditionsNotSatisfied),
        (0x6983, errors.AuthMethodBlocked),
        (0x6984, errors.ReferenceDataNotUsable),
        (0x6A88, errors.ReferenceNotFound),
        (0x6700, errors.WrongLength),
        (0x6A80, errors.WrongData),
        (0x6986, errors.CommandNotAllowed),
        (0x6A86, errors.IncorrectParameters),
        (0x6B00, errors.IncorrectParameters),
        (0x6D00, errors.InsNotSupported),
        (0x6E00, errors.ClaNotSupported),
        (0x63C2, errors.VerificationFailed),
    ],
)
def test_error_for_sw_classes(sw: int, error: type[errors.ApduError]) -> None:
    exc = error_for_sw(sw)
    assert type(exc) is error
    assert exc.sw == sw
    assert f"{sw:04X}" in str(exc)


def test_verification_failed_carries_retries_and_is_not_a_pin_error() -> None:
    exc = error_for_sw(0x63C1)
    assert isinstance(exc, errors.VerificationFailed)
    assert exc.retries_left == 1
    assert not isinstance(exc, errors.PinError)


@given(st.integers(0, 0xFFFF).filter(lambda sw: sw != 0x9000))
def test_error_for_sw_total(sw: int) -> None:
    exc = error_for_sw(sw)
    assert isinstance(exc, errors.ApduError)
    assert exc.sw == sw
    assert describe(sw).startswith(f"{sw:04X} (")


def test_ranges() -> None:
    assert is_more_data(0x6100)
    assert is_more_data(0x61FF)
    assert not is_more_data(0x6200)
    assert is_wrong_le(0x6C10)
    assert not is_wrong_le(0x6D00)
    assert available_length(0x6100) == 256
    assert available_length(0x6C20) == 0x20
    assert is_verification_failed(0x63C0)
    assert not is_verification_failed(0x6300)
    assert retries_left(0x63C3) == 3
    assert retries_left(0x63C0) == 0
    assert retries_left(0x6300) is None
    assert retries_left(0x9000) is None


def test_describe() -> None:
    assert describe(SW.OK) == "9000 (success)"
    assert describe(0x6A82) == "6A82 (file or application not found)"
    assert describe(0x6110) == "6110 (16 more bytes available)"
    assert describe(0x6C00) == "6C00 (wrong Le, 256 bytes available)"
    assert describe(0x63C2) == "63C2 (verification failed, 2 retries left)"
    assert describe(0x1234) == "1234 (unknown status)"


def test_descriptions_use_the_singular_for_one() -> None:
    assert describe(0x6101) == "6101 (1 more byte available)"
    assert describe(0x6C01) == "6C01 (wrong Le, 1 byte available)"
    assert describe(0x63C1) == "63C1 (verification failed, 1 retry left)"


def test_library_errors_use_the_singular_for_one_try() -> None:
    assert str(WrongPin(1)) == "wrong PIN, 1 try left"
    assert str(WrongPin(2)) == "wrong PIN, 2 tries left"
    assert tries_left_text(0) == "0 tries left"
