"""The PKCS#11 flag and return-code mapping of pkcard.pkcs11, without a token."""

from __future__ import annotations

import hashlib

import PyKCS11
import pytest
from asn1crypto import algos
from hypothesis import given
from hypothesis import strategies as st

from pkcard.errors import (
    CardRemoved,
    CardReset,
    FormatError,
    KeyNeedsPin,
    MalformedPin,
    NotSupported,
    PinPadCancelled,
    TransportError,
)
from pkcard.pk_driver import PinOutcome
from pkcard.pkcs11 import (
    PinFlags,
    TokenInfo,
    TokenSelector,
    _answer_for,
    _module_error,
    digest_info_sha256,
)

USER_BITS = (
    PyKCS11.CKF_USER_PIN_COUNT_LOW
    | PyKCS11.CKF_USER_PIN_FINAL_TRY
    | PyKCS11.CKF_USER_PIN_LOCKED
    | PyKCS11.CKF_USER_PIN_TO_BE_CHANGED
)
SO_BITS = (
    PyKCS11.CKF_SO_PIN_COUNT_LOW
    | PyKCS11.CKF_SO_PIN_FINAL_TRY
    | PyKCS11.CKF_SO_PIN_LOCKED
    | PyKCS11.CKF_SO_PIN_TO_BE_CHANGED
)
token_flags = st.integers(min_value=0, max_value=2**32 - 1)
max_tries = st.integers(min_value=1, max_value=15)


@pytest.mark.parametrize(
    ("flags", "outcome", "tries"),
    [
        (0, PinOutcome.WRONG, 3),
        (PyKCS11.CKF_USER_PIN_COUNT_LOW, PinOutcome.WRONG, 2),
        (PyKCS11.CKF_USER_PIN_FINAL_TRY, PinOutcome.WRONG, 1),
        (PyKCS11.CKF_USER_PIN_COUNT_LOW | PyKCS11.CKF_USER_PIN_FINAL_TRY, PinOutcome.WRONG, 1),
        (PyKCS11.CKF_USER_PIN_LOCKED, PinOutcome.BLOCKED, None),
        (PyKCS11.CKF_USER_PIN_LOCKED | PyKCS11.CKF_USER_PIN_FINAL_TRY, PinOutcome.BLOCKED, None),
        (PyKCS11.CKF_SO_PIN_LOCKED, PinOutcome.WRONG, 3),  # the SO PIN is not the user's
    ],
)
def test_user_flags_table(flags: int, outcome: PinOutcome, tries: int | None) -> None:
    answer = PinFlags.user(flags).answer(3)
    assert answer.outcome is outcome
    assert answer.tries_left == tries


@pytest.mark.parametrize(
    ("flags", "outcome", "tries"),
    [
        (0, PinOutcome.WRONG, 5),
        (PyKCS11.CKF_SO_PIN_COUNT_LOW, PinOutcome.WRONG, 4),
        (PyKCS11.CKF_SO_PIN_FINAL_TRY, PinOutcome.WRONG, 1),
        (PyKCS11.CKF_SO_PIN_LOCKED, PinOutcome.BLOCKED, None),
        (PyKCS11.CKF_USER_PIN_LOCKED, PinOutcome.WRONG, 5),
    ],
)
def test_so_flags_table(flags: int, outcome: PinOutcome, tries: int | None) -> None:
    answer = PinFlags.so(flags).answer(5)
    assert answer.outcome is outcome
    assert answer.tries_left == tries


@given(token_flags, max_tries)
def test_user_answer_depends_only_on_user_pin_bits(flags: int, tries: int) -> None:
    assert PinFlags.user(flags).answer(tries) == PinFlags.user(flags & USER_BITS).answer(tries)
    assert PinFlags.so(flags).answer(tries) == PinFlags.so(flags & SO_BITS).answer(tries)


@given(token_flags, max_tries)
def test_answer_is_never_optimistic(flags: int, tries: int) -> None:
    answer = PinFlags.user(flags).answer(tries)
    if answer.outcome is PinOutcome.BLOCKED:
        assert flags & PyKCS11.CKF_USER_PIN_LOCKED
        return
    assert answer.outcome is PinOutcome.WRONG
    assert answer.tries_left is not None
    assert 1 <= answer.tries_left <= tries
    if flags & PyKCS11.CKF_USER_PIN_FINAL_TRY:
        assert answer.tries_left == 1
    elif flags & PyKCS11.CKF_USER_PIN_COUNT_LOW:
        assert answer.tries_left < tries or tries == 1


@given(token_flags)
def test_login_answers(flags: int) -> None:
    user = PinFlags.user(flags)
    assert _answer_for(PyKCS11.CKR_OK, user, 3).outcome is PinOutcome.OK
    assert _answer_for(PyKCS11.CKR_PIN_LOCKED, user, 3).outcome is PinOutcome.BLOCKED
    assert _answer_for(PyKCS11.CKR_PIN_INCORRECT, user, 3) == user.answer(3)
    expired = _answer_for(PyKCS11.CKR_PIN_EXPIRED, user, 3).outcome
    assert expired is (PinOutcome.BLOCKED if user.locked else PinOutcome.NOT_USABLE)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (PyKCS11.CKR_TOKEN_NOT_PRESENT, CardRemoved),
        (PyKCS11.CKR_DEVICE_REMOVED, CardRemoved),
        (PyKCS11.CKR_SESSION_HANDLE_INVALID, CardReset),
        (PyKCS11.CKR_SESSION_CLOSED, CardReset),
        (PyKCS11.CKR_USER_NOT_LOGGED_IN, KeyNeedsPin),
        (PyKCS11.CKR_PIN_LEN_RANGE, MalformedPin),
        (PyKCS11.CKR_FUNCTION_CANCELED, PinPadCancelled),
        (PyKCS11.CKR_MECHANISM_INVALID, NotSupported),
        (PyKCS11.CKR_DEVICE_ERROR, TransportError),
        (PyKCS11.CKR_GENERAL_ERROR, TransportError),
    ],
)
def test_return_codes(code: int, error: type[Exception]) -> None:
    mapped = _module_error(PyKCS11.PyKCS11Error(code))
    assert type(mapped) is error
    assert PyKCS11.CKR[code] in str(mapped)


def _token(description: str = "Gemalto PC Twin Reader 00 00") -> TokenInfo:
    return TokenInfo(1, description, "PK0000100001", "0A1B2C", "Thales", "IDPrime", 0)


def test_selector_matches_reader_prefix_and_serial() -> None:
    token = _token()
    assert TokenSelector().matches(token)
    assert TokenSelector(slot_description="Gemalto PC Twin Reader").matches(token)
    assert TokenSelector(slot_description="Gemalto PC Twin Reader", serial="0A1B2C").matches(token)
    assert not TokenSelector(slot_description="Gemalto GemPC Pinpad").matches(token)
    assert not TokenSelector(serial="0A1B2D").matches(token)
    assert not TokenSelector(label="PK0000100001 KPEP").matches(token)


@given(st.binary(min_size=32, max_size=32))
def test_digest_info_is_der_sha256(digest: bytes) -> None:
    info = algos.DigestInfo.load(digest_info_sha256(digest), strict=True)
    assert info["digest_algorithm"]["algorithm"].native == "sha256"
    assert info["digest"].native == digest


def test_digest_info_refuses_other_lengths() -> None:
    with pytest.raises(FormatError):
        digest_info_sha256(hashlib.sha1(b"x").digest())
