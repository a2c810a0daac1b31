"""Authorization rules of the backend, independent of the store: why a code is withdrawn,
why a requested code is refused, and the employer's eight-day reporting rule.

The seed (ZZZS, "Profesionalna kartica"): the employer orders a holder's
authorizations and "mora v osmih dneh sporočiti vsako spremembo pooblastil";
ZZZS may withdraw authorizations ex officio for the eight reasons of
:class:`WithdrawalReason` 1-8. A redemption answers every requested code as
granted or refused with its :class:`AuthorizationRefusal` (and, for a withdrawn
code, its withdrawal reason), so the clinic can tell the person why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

REPORTING_DEADLINE = timedelta(days=8)
"""An employer reports every change of authorizations within eight days of it."""

MAX_CHANGES = 32  # codes in one employer order (a token requests at most 32 as well)
AUTH_CODE_RE = re.compile(r"[A-Z][A-Z0-9]{1,15}")  # the token's `authorizations` syntax
EMPLOYER_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MAX_CODE_NAME = 200


class WithdrawalReason(IntEnum):
    """Why an authorization was withdrawn: 1-8 are ZZZS's ex officio reasons of the seed
    ("ZZZS lahko po uradni dolžnosti odvzame pooblastila"), 9 the employer's order."""

    LICENCE_WITHDRAWN = 1  # the health worker's licence was revoked
    CONTRACT_EXPIRED = 2  # the provider's contract with ZZZS expired
    WRONG_PROFESSIONAL_GROUP = 3  # the code does not belong to the holder's professional group
    COURT_ORDER = 4  # on the basis of a court order
    MISUSE = 5  # misuse of the PK or of the qualified signing certificate (KPEP) was detected
    HOLDER_REQUEST = 6  # at the holder's request
    IRREGULAR_DATA_ACCESS = 7  # irregular access to personal data in the backend was found
    NO_LONGER_ENTITLED = 8  # other cases: the holder is no longer entitled to the data
    EMPLOYER_ORDER = 9  # the employer withdrew it (ChangeAuthorizations), not ZZZS


class AuthorizationRefusal(IntEnum):
    """Why a requested code was not granted in a redemption."""

    NOT_HELD = 1  # the holder was never given it
    WITHDRAWN = 2  # it was withdrawn; the withdrawal reason says why
    NOT_IN_RESTRICTED_SET = 3  # held, but a restricted session may not use it


class ChangeAction(IntEnum):
    """What an employer's order does to one code."""

    GRANT = 1
    WITHDRAW = 2


@dataclass(frozen=True)
class HeldAuthorization:
    """One row of a holder's authorizations: granted, and perhaps withdrawn since."""

    code: str
    granted: int  # seconds since the epoch
    withdrawn: int | None = None
    reason: WithdrawalReason | None = None


@dataclass(frozen=True)
class AuthorizationOutcome:
    """A requested code in a redemption's answer."""

    code: str
    refusal: AuthorizationRefusal | None = None  # None: granted
    withdrawal_reason: WithdrawalReason | None = None
    withdrawn: int | None = None

    @property
    def granted(self) -> bool:
        return self.refusal is None

    def explain(self) -> str:
        """``GRANTED``, ``NOT_HELD``, ``NOT_IN_RESTRICTED_SET`` or ``WITHDRAWN:<reason>``."""
        if self.refusal is None:
            return "GRANTED"
        if self.refusal is AuthorizationRefusal.WITHDRAWN and self.withdrawal_reason is not None:
            return f"WITHDRAWN:{self.withdrawal_reason.name}"
        return self.refusal.name


def outcomes(requested: Iterable[str], granted: frozenset[str],
             held: Mapping[str, HeldAuthorization], *, restricted: bool
             ) -> tuple[AuthorizationOutcome, ...]:
    """Each requested code (in request order) as granted or refused with its reason.

    ``granted`` is what the verifier granted; a code it did not grant is
    WITHDRAWN (with the reason) or NOT_HELD by the registry's rows, and
    otherwise, in a restricted session, NOT_IN_RESTRICTED_SET.
    """
    answer: list[AuthorizationOutcome] = []
    for code in requested:
        row = held.get(code)
        if code in granted:
            answer.append(AuthorizationOutcome(code))
        elif row is None:
            answer.append(AuthorizationOutcome(code, AuthorizationRefusal.NOT_HELD))
        elif row.withdrawn is not None:
            answer.append(AuthorizationOutcome(code, AuthorizationRefusal.WITHDRAWN,
                                               row.reason, row.withdrawn))
        elif restricted:
            answer.append(AuthorizationOutcome(code, AuthorizationRefusal.NOT_IN_RESTRICTED_SET))
        else:  # granted meanwhile (after the verifier read the rows): not in this session
            answer.append(AuthorizationOutcome(code, AuthorizationRefusal.NOT_HELD))
    return tuple(answer)


def explain_all(answer: Iterable[AuthorizationOutcome]) -> str:
    """``I002 GRANTED, I003 WITHDRAWN:COURT_ORDER``: for audit details and messages."""
    return ", ".join(f"{item.code} {item.explain()}" for item in answer)


@dataclass(frozen=True)
class CatalogueCode:
    """An authorization code of the catalogue (the annex of the Pravilnik o KZZ)."""

    code: str
    name: str


@dataclass(frozen=True)
class ChangeRecord:
    """One code of an employer's order, as the backend recorded it.

    ``changed`` is when the change took effect at the employer (the order
    says), ``reported`` when the backend received it; ``late`` when more than
    :data:`REPORTING_DEADLINE` lies between them.
    """

    id: int
    employer_id: str
    holder_id: str
    code: str
    action: ChangeAction
    changed: int
    reported: int
    client_id: str | None

    @property
    def late(self) -> bool:
        return is_late(self.changed, self.reported)

    @property
    def days_after_change(self) -> int:
        return (self.reported - self.changed) // 86400


def is_late(changed: int, reported: int) -> bool:
    """A change reported more than eight days after it took effect."""
    return reported - changed > int(REPORTING_DEADLINE.total_seconds())


def check_order(employer_id: str, holder_id: str, changes: Iterable[tuple[str, ChangeAction]],
                *, changed: datetime, now: datetime, max_skew: timedelta = timedelta(minutes=5),
                ) -> tuple[tuple[str, ChangeAction], ...]:
    """Validate an employer's order; raises ValueError naming the problem."""
    items = tuple(changes)
    if not EMPLOYER_ID_RE.fullmatch(employer_id):
        raise ValueError("employer_id must be 1-64 characters of [A-Za-z0-9._:-]")
    if not holder_id:
        raise ValueError("holder_id must be set")
    if not 1 <= len(items) <= MAX_CHANGES:
        raise ValueError(f"an order changes 1-{MAX_CHANGES} codes")
    codes = [code for code, _action in items]
    if len(set(codes)) != len(codes):
        raise ValueError("an order names each code once")
    for code, action in items:
        if not AUTH_CODE_RE.fullmatch(code):
            raise ValueError("each code is [A-Z][A-Z0-9]{1,15}")
        if action not in (ChangeAction.GRANT, ChangeAction.WITHDRAW):
            raise ValueError("each change is GRANT or WITHDRAW")
    if changed > now + max_skew:
        raise ValueError("changed_unix lies in the future: report a change once it took effect")
    return items
