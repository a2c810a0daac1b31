"""PIN references, formats, states and the PIN policy of the PK card.

The formats are the table in docs/card-profile.md ("Secrets (PK)") and
nothing else. Two kinds of checks live here:

* :func:`check_presented` for a secret the holder presents to the card
  (current PIN, PUK, TPIN, password). It raises
  :class:`~pkcard.errors.MalformedPin` when the value can never be right
  (empty, wrong length, wrong characters), so it is refused before any APDU
  and never spends a try.
* :func:`check_new_pin` for a value that is about to be set. It raises
  :class:`~pkcard.errors.WeakPin` naming the broken :class:`PinRule`.

The policy for digit secrets (PIN, SPIN), rules checked in this order, the
first broken one is reported:

1. ``DIGITS_ONLY``: only ``0``-``9``. (Passwords: printable ASCII 0x20-0x7E.)
2. ``LENGTH``: within the reference's minimum and maximum length.
3. ``BIRTH_DATE``: the whole PIN is the holder's birth date in one of these
   renderings: DDMM, MMDD, YYYY, MMYY, DDMMYY, YYMMDD, MMYYYY, DDMMYYYY,
   YYYYMMDD (for 12 Mar 1981: 1203, 0312, 1981, 0381, 120381, 810312,
   031981, 12031981, 19810312). Takes priority over every rule below.
4. The digit rules of :mod:`pkcard.pin_policy`, in its order: ``REPEATED``
   (1111), ``SEQUENCE`` (one run with step +1 or -1 modulo 10: 1234, 8901;
   partial runs do not count, 123409 is accepted), ``DATE`` (a valid date
   in a common order: DDMM, MMDD, DDMMYY, MMDDYY, YYMMDD, MMYYYY, YYYYMM,
   DDMMYYYY, MMDDYYYY, YYYYMMDD), ``YEAR``, ``REPEATED_GROUP``,
   ``MIRRORED``, ``STEP``, ``KEYPAD`` and ``COMMON`` (the published lists).
5. ``SAME_AS_OLD``: the new value equals the old one (constant time).

Passwords (reference ``85``) are checked for characters, length, a single
repeated character, a repeated group of characters and ``SAME_AS_OLD``; a
password of digits only gets the digit rules too (and ``BIRTH_DATE``).

A refusal names the rule, never the PIN. Digit lists derived from a secret
are plain tuples that Python cannot wipe; they live only inside these
functions.

How a secret is entered is a type, :data:`PinEntry`: a :class:`Secret` typed
on the host, or :class:`PadEntry`, the holder types it on the reader's PIN
pad and nothing reaches the host. The API's wire convention (an empty secret
field asks for the PIN pad, docs/api.md) is turned into it in one place,
:func:`entry_from_field`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from types import MappingProxyType
from typing import TypeAlias

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
from pkcard.pin_policy import first_broken_rule, is_repeated_group
from pkcard.secret import Secret

PAD_BYTE = 0xFF


@dataclass(frozen=True)
class PadEntry:
    """The holder types the secret on the reader's PIN pad: no secret reaches the host.

    A context manager like :class:`Secret` (it holds nothing to wipe), so a
    :data:`PinEntry` is wiped the same way whichever it is.
    """

    def __enter__(self) -> PadEntry:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to wipe: the secret never reached the host."""


PinEntry: TypeAlias = Secret | PadEntry
"""How one secret is entered: typed on the host, or on the reader's PIN pad."""


def entry_from_field(value: str) -> PinEntry:
    """A request's secret field as an entry: empty asks for the PIN pad (docs/api.md).

    The caller owns the returned :class:`Secret` (wipe it when done).
    """
    return Secret(value) if value else PadEntry()


def host_secret(entry: PinEntry) -> Secret:
    """The secret typed on the host: an empty :class:`Secret` for a :class:`PadEntry`.

    Where the secret must come from the host (no PIN pad on the reader), nothing
    typed is an empty secret, which the checks refuse before any APDU
    (:class:`MalformedPin`, or ``WeakPin(LENGTH)`` for a new value).
    """
    return entry if isinstance(entry, Secret) else Secret(b"")


def field_of(entry: PinEntry | str) -> str:
    """The text for a request's secret field: empty for :class:`PadEntry` (docs/api.md)."""
    if isinstance(entry, PadEntry):
        return ""
    if isinstance(entry, Secret):
        return entry.reveal().decode("utf-8")
    return entry


class PinRef(IntEnum):
    """The reference (VERIFY P2) of each PK secret."""

    PIN = 0x81
    PUK = 0x82
    SPIN = 0x83
    TPIN = 0x84
    REACTIVATION = 0x85


class Charset(IntEnum):
    DIGITS = 1
    PRINTABLE = 2  # ASCII 0x20-0x7E (space included, as the card accepts)


class PinState(IntEnum):
    """What the holder can do with a reference right now."""

    VERIFIED = 1  # verified in this card session
    VERIFIABLE = 2  # not verified, tries left
    TRANSPORT = 3  # SPIN before activation with the TPIN
    BLOCKED = 4  # try counter exhausted; the PIN can be unblocked with the PUK
    DEAD = 5  # the PUK is exhausted (PUK itself, or the PIN when both are blocked)
    DISABLED = 6  # TPIN after signature activation: never usable again


@dataclass(frozen=True)
class PinFormat:
    """The format and try limit of one reference."""

    ref: PinRef
    min_length: int
    max_length: int
    charset: Charset
    block_length: int
    max_tries: int

    @property
    def digits_only(self) -> bool:
        return self.charset is Charset.DIGITS


PIN_FORMATS: Mapping[PinRef, PinFormat] = MappingProxyType(
    {
        PinRef.PIN: PinFormat(PinRef.PIN, 4, 8, Charset.DIGITS, 8, 3),
        PinRef.PUK: PinFormat(PinRef.PUK, 8, 8, Charset.DIGITS, 8, 5),
        PinRef.SPIN: PinFormat(PinRef.SPIN, 6, 8, Charset.DIGITS, 8, 3),
        PinRef.TPIN: PinFormat(PinRef.TPIN, 6, 6, Charset.DIGITS, 8, 3),
        PinRef.REACTIVATION: PinFormat(PinRef.REACTIVATION, 8, 16, Charset.PRINTABLE, 16, 5),
    }
)


@dataclass(frozen=True)
class PinStatus:
    """The state of one reference as read from the card without spending a try.

    ``tries_left`` is the maximum when the reference is verified or in
    transport state (the card resets the counter on success), and 0 when it
    is blocked, dead or disabled.
    """

    ref: PinRef
    state: PinState
    tries_left: int
    max_tries: int

    @property
    def usable(self) -> bool:
        return self.state in (PinState.VERIFIED, PinState.VERIFIABLE)


def require_usable(status: PinStatus) -> None:
    """Refuse a secret that cannot be presented now, from its status alone (pure).

    Raises :class:`CardDead`, :class:`PinBlocked`, :class:`TransportPinActive`
    or :class:`PinDisabled`; returns for a verified or verifiable secret. The
    card application runs it before every PIN command, and pkpin runs it
    before it asks anybody for a secret.
    """
    state = status.state
    if state is PinState.DEAD:
        raise CardDead("the PUK is exhausted: the card can no longer be used with a PIN")
    if state is PinState.BLOCKED:
        raise PinBlocked(f"the {status.ref.name} is blocked")
    if state is PinState.TRANSPORT:
        raise TransportPinActive("the signing PIN is in transport state: activate it first")
    if state is PinState.DISABLED:
        raise PinDisabled(f"the {status.ref.name} can no longer be used")


def require_transport(spin: PinStatus) -> None:
    """Refuse signature activation unless the SPIN is in transport state (pure).

    Raises :class:`PinDisabled`: the TPIN was used, the SPIN is already active.
    The card application runs it before activation, and pkpin before it asks
    for the TPIN.
    """
    if spin.state is not PinState.TRANSPORT:
        raise PinDisabled("the signing PIN is already active: the TPIN was used")


def is_last_try(status: PinStatus) -> bool:
    """Whether presenting the secret now would spend its last try (pure)."""
    return status.state is PinState.VERIFIABLE and status.tries_left == 1


def guard_last_try(status: PinStatus, *, confirm_last_try: bool) -> None:
    """Raise :class:`LastTryNotConfirmed` for an unconfirmed last try (pure)."""
    if is_last_try(status) and not confirm_last_try:
        raise LastTryNotConfirmed(1)


def _charset_ok(raw: bytes, charset: Charset) -> bool:
    if charset is Charset.DIGITS:
        return all(0x30 <= b <= 0x39 for b in raw)
    return all(0x20 <= b <= 0x7E for b in raw)


def check_presented(secret: Secret, fmt: PinFormat) -> None:
    """Refuse a presented secret that can never be right, before any APDU.

    Raises :class:`MalformedPin` when ``secret`` is empty, wiped, of the
    wrong length or holds characters outside the reference's charset.
    """
    if secret.wiped or len(secret) == 0:
        raise MalformedPin(f"{fmt.ref.name} is empty")
    if not fmt.min_length <= len(secret) <= fmt.max_length:
        raise MalformedPin(
            f"{fmt.ref.name} must be {fmt.min_length}-{fmt.max_length} characters long"
        )
    if not _charset_ok(secret.reveal(), fmt.charset):
        what = "digits" if fmt.digits_only else "printable ASCII characters"
        raise MalformedPin(f"{fmt.ref.name} must hold only {what}")


def birth_date_renderings(birth_date: date) -> frozenset[str]:
    """Every rendering of ``birth_date`` the BIRTH_DATE rule refuses."""
    dd, mm = f"{birth_date.day:02d}", f"{birth_date.month:02d}"
    yyyy = f"{birth_date.year:04d}"
    yy = yyyy[2:]
    return frozenset(
        {
            dd + mm,
            mm + dd,
            yyyy,
            mm + yy,
            dd + mm + yy,
            yy + mm + dd,
            mm + yyyy,
            dd + mm + yyyy,
            yyyy + mm + dd,
        }
    )


def _is_birth_date(raw: bytes, birth_date: date) -> bool:
    found = False
    for rendering in birth_date_renderings(birth_date):
        # No early exit: the loop takes the same path whatever the PIN is.
        found |= hmac.compare_digest(raw, rendering.encode("ascii"))
    return found


def check_new_pin(
    new: Secret,
    fmt: PinFormat,
    *,
    birth_date: date | None,
    old: Secret | None = None,
) -> None:
    """Apply the PIN policy (see the module docstring) to a value about to be set.

    Raises :class:`WeakPin` with the first broken rule. Never spends a try:
    call it before any APDU.
    """
    if new.wiped or len(new) == 0:
        raise WeakPin(PinRule.LENGTH)
    raw = new.reveal()
    if not _charset_ok(raw, fmt.charset):
        raise WeakPin(PinRule.DIGITS_ONLY)
    if not fmt.min_length <= len(raw) <= fmt.max_length:
        raise WeakPin(PinRule.LENGTH)
    if fmt.digits_only or raw.isdigit():
        if birth_date is not None and _is_birth_date(raw, birth_date):
            raise WeakPin(PinRule.BIRTH_DATE)
        rule = first_broken_rule(new.digits(), raw)
        if rule is not None:
            raise WeakPin(rule)
    elif len(set(raw)) == 1:
        raise WeakPin(PinRule.REPEATED)
    elif is_repeated_group(tuple(raw)):
        raise WeakPin(PinRule.REPEATED_GROUP)
    if old is not None and not old.wiped and hmac.compare_digest(raw, old.reveal()):
        raise WeakPin(PinRule.SAME_AS_OLD)


def check_confirmation(new: Secret, confirmation: Secret) -> None:
    """Refuse a new value whose typed confirmation differs (constant time)."""
    if new != confirmation:
        raise WeakPin(PinRule.CONFIRMATION_MISMATCH)


def format_pin_block(secret: Secret, fmt: PinFormat) -> bytearray:
    """The secret as ASCII padded with ``FF`` to the reference's block length.

    The caller owns the returned buffer and must :func:`wipe` it after use.
    """
    check_presented(secret, fmt)
    block = bytearray([PAD_BYTE]) * fmt.block_length
    block[: len(secret)] = secret.reveal()
    return block


def wipe(buffer: bytearray) -> None:
    """Overwrite a PIN block in place."""
    for i in range(len(buffer)):
        buffer[i] = 0
