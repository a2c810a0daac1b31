"""Expiry warnings for the PK card and its KPEP signing certificate.

A pure function of dates: the caller passes ``today`` explicitly (the daemon
its clock, the tests fixed dates). Dates are inclusive: a card whose
``valid_until`` is today is still valid, with 0 days left. A certificate's
``not_after`` counts by its UTC calendar day.

* ``CARD_REPLACEMENT_DUE``: 0 <= days left <= 30 (order the new card).
* ``CARD_EXPIRED``: today is after ``valid_until``.
* ``KPEP_RENEWAL_DUE``: 0 <= days left <= 72 (renewal takes that long).
* ``KPEP_EXPIRED``: today is after the certificate's last day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import IntEnum

CARD_REPLACEMENT_DAYS = 30
KPEP_RENEWAL_DAYS = 72


class ExpiryKind(IntEnum):
    CARD_REPLACEMENT_DUE = 1
    KPEP_RENEWAL_DUE = 2
    CARD_EXPIRED = 3
    KPEP_EXPIRED = 4


@dataclass(frozen=True)
class ExpiryWarning:
    """One warning. ``days_left`` is negative once expired (days since the last valid day)."""

    kind: ExpiryKind
    expires_on: date  # the last valid day
    days_left: int


def _last_day(moment: date | datetime) -> date:
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return moment.date()
    return moment


def _warning(
    last_day: date, today: date, window: int, due: ExpiryKind, expired: ExpiryKind
) -> ExpiryWarning | None:
    days_left = (last_day - today).days
    if days_left < 0:
        return ExpiryWarning(expired, last_day, days_left)
    if days_left <= window:
        return ExpiryWarning(due, last_day, days_left)
    return None


def expiry_warnings(
    *,
    today: date,
    card_valid_until: date,
    kpep_not_after: date | datetime | None = None,
) -> tuple[ExpiryWarning, ...]:
    """The warnings due on ``today``: card first, then the KPEP certificate."""
    found = [
        _warning(
            card_valid_until,
            today,
            CARD_REPLACEMENT_DAYS,
            ExpiryKind.CARD_REPLACEMENT_DUE,
            ExpiryKind.CARD_EXPIRED,
        )
    ]
    if kpep_not_after is not None:
        found.append(
            _warning(
                _last_day(kpep_not_after),
                today,
                KPEP_RENEWAL_DAYS,
                ExpiryKind.KPEP_RENEWAL_DUE,
                ExpiryKind.KPEP_EXPIRED,
            )
        )
    return tuple(w for w in found if w is not None)
